"""The optimizer: its search space, the winner and the reasons the cheaper plans failed.

The synthetic M/M/1 curve stands in for the engine's (closed-form capacity), so these run in
seconds and in this process.
"""

from __future__ import annotations

import pytest

from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import scenario_for_plan
from simulator.sweep import space
from simulator.sweep.grid import PlanSpec
from simulator.sweep.optimize import failure_reasons, optimize
from simulator.sweep.runner import Execution, Executor
from tests.synthetic import MM1Curve, mm1_provider


@pytest.fixture
def scenario(mini):
    mini["horizon"]["months"] = 1
    return validate_scenario_data(mini)


def serial() -> Executor:
    return Executor(Execution(workers=1))


def tp_scaled(scenario, deployment, workload):
    """A replica serves 2 x TP requests/s: TP 1 and 2 cannot meet a 500 ms SLO at any load."""
    tp = scenario.deployment(deployment).tensor_parallel
    return MM1Curve(service_rate=2.0 * tp, slo_ms=500.0, deployment=deployment, workload=workload)


def test_options_fit_the_gpu_and_skip_fp8_without_fp8_units(mini):
    mini["deployments"][0]["model"] = "llama-3-70b"
    mini["deployments"][0]["tensor_parallel"] = 2
    s = validate_scenario_data(mini)
    pool, dep = s.pool("gpus"), s.deployment("small")
    h100 = {(o.tensor_parallel, o.dtype) for o in space.deployment_options(s, pool, "h100-sxm", dep)}
    assert (1, "bf16") not in h100 and (1, "fp8") in h100 and (2, "bf16") in h100
    a100 = {(o.tensor_parallel, o.dtype) for o in space.deployment_options(s, pool, "a100-80-sxm", dep)}
    assert not any(dtype == "fp8" for _, dtype in a100)


def test_prices_come_from_the_scenario_for_its_own_gpu_else_the_catalog(scenario):
    pool = scenario.pool("gpus")  # on demand at $3.00 in the scenario
    assert space.prices(scenario, pool, "h100-sxm") == (3.0, 2.0)  # reserved: catalog
    assert space.prices(scenario, pool, "h200") == (3.7, 2.5)
    options = space.pricing_options(scenario, pool, "h100-sxm", peak_gpus=32)
    assert options[0] == {"kind": "on_demand", "usd_per_gpu_hour": 3.0}
    # commitments at 1/4 .. 1 of the peak, in whole 8-GPU nodes
    assert [o["committed_gpus"] for o in options[1:]] == [8, 16, 24, 32]
    assert all(o["term_months"] == 1 and o["overflow_usd_per_gpu_hour"] == 3.0 for o in options[1:])
    small = space.pricing_options(scenario, pool, "h100-sxm", peak_gpus=8)
    assert [o["committed_gpus"] for o in small[1:]] == [8]  # never less than one node


def test_default_search_finds_the_cheapest_plan_meeting_the_slo(scenario):
    with serial() as executor:
        result = optimize(scenario, executor, curves=mm1_provider())
    winner = result.winner
    assert winner is not None and winner["meets_slo"]
    feasible = result.frame[(result.frame["status"] == "ok") & result.frame["meets_slo"]]
    assert winner["total_cost_usd"] == feasible["total_cost_usd"].min()
    base = result.frame[result.frame["plan_id"] == result.base_id].iloc[0]
    assert winner["total_cost_usd"] <= base["total_cost_usd"]
    assert set(result.frame["stage"]) >= {"hardware", "buying"}


def test_the_plan_entry_pastes_into_the_scenario_and_reproduces_the_winner(mini):
    mini["horizon"]["months"] = 1
    mini["deployments"][0]["tensor_parallel"] = 4  # twice the GPUs per replica that it needs
    with serial() as executor:
        result = optimize(validate_scenario_data(mini), executor, curves=mm1_provider())
    entry = result.plan_entry("cheapest")
    assert entry["name"] == "cheapest"
    assert entry["set"]["deployments.small.tensor_parallel"] == 1
    assert result.changes(result.base_id) == {}
    mini["plans"] = [entry]
    pasted = validate_scenario_data(mini)
    again = run(pasted, plan="cheapest", curve_provider=mm1_provider()).summary
    assert again["total_cost_usd"] == pytest.approx(result.winner["total_cost_usd"], rel=1e-12)


def test_options_that_can_never_meet_the_slo_are_dropped_with_the_reason(scenario):
    with serial() as executor:
        result = optimize(scenario, executor, curves=tp_scaled, gpus=[])
    dropped = {d["option"]: d["reason"] for d in result.dropped_options}
    assert dropped["small: TP1 bf16"] == "cannot meet the SLO at any load (capacity 0)"
    assert "small: TP4 bf16" not in dropped
    tps = {int(v) for v in result.frame["plan"].str.extract(r"TP(\d)")[0].dropna()}
    assert tps <= {4, 8}


def test_grid_search_explains_why_cheaper_plans_failed(scenario):
    busy = validate_scenario_data(
        scenario.model_dump(mode="python", by_alias=True)
        | {"workloads": [scenario.workloads[0].model_copy(update={"traffic": scenario.workloads[0].traffic.model_copy(
            update={"requests_per_second": 15.0})}).model_dump(mode="python", by_alias=True)]}
    )  # fmt: skip
    plans = [PlanSpec(i, f"max {n}", {"deployments.small.autoscaling.max_replicas": n}, {}) for i, n in
             enumerate([1, 8])]  # fmt: skip
    with serial() as executor:
        result = optimize(busy, executor, plans=plans, curves=mm1_provider())
    assert result.winner["plan"] in ("max 8", "as written")
    failures, total = result.cheaper_failures()
    assert total == 1 and failures[0]["plan"] == "max 1"
    assert any("requests unserved" in r for r in failures[0]["reasons"])


def test_failure_reasons():
    row = {"status": "ok", "workload.chat.slo_met": False, "workload.chat.slo_attainment": 0.9,
           "workload.chat.slo_attainment_target": 0.95, "workload.chat.unserved_requests": 1234.0,
           "workload.rag.slo_met": True, "workload.rag.slo_attainment": 0.99,
           "workload.rag.slo_attainment_target": 0.95, "workload.rag.unserved_requests": 0.0}  # fmt: skip
    assert failure_reasons(row) == ["chat: SLO attainment 90.0% < target 95%",
                                    "chat: 1,234 requests unserved for lack of capacity"]
    # requests past the model's context are not the plan's capacity: they count as misses
    row |= {"workload.chat.unserved_too_long_requests": 1234.0, "workload.chat.slo_met": True}
    assert failure_reasons(row) == []
    assert failure_reasons(row | {"meets_slo": False})[0].startswith("chat: 1,234 requests past the model's context")
    assert failure_reasons({"status": "error", "error": "x: no fit"}) == ["invalid: x: no fit"]


def test_scenario_for_plan_accepts_the_entry(scenario):
    """The entry's paths are the same dotted paths plans use."""
    with serial() as executor:
        result = optimize(scenario, executor, curves=mm1_provider(), gpus=[])
    entry = result.plan_entry()
    data = scenario.model_dump(mode="python", by_alias=True)
    data["plans"] = [entry]
    scenario_for_plan(validate_scenario_data(data), "optimized")
