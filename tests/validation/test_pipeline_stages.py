"""Pipeline stages before and after the model (``stages:``, :mod:`simulator.scenario.stages`).

- Bad stages are FILE:LINE errors: a negative latency, an unknown deployment (named), shares
  outside 0-1, a name taken twice.
- ``retrieval:`` and the same stage written under ``stages:`` give the same summary, billing and
  engine requests.
- In the engine a before-model stage's latency adds to TTFT and E2E (at low load by its mean,
  applies_share included), an after-model stage's to E2E only; blocked requests never reach
  the model.
- In the projection blocked requests conserve traffic (arrived = served + failed + unserved +
  cache hits + blocked), each stage bills its own lines, and a stage backed by a deployment
  gets GPU cost on that deployment's pool through its derived workload ``<workload>/<stage>``.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import pytest

from simulator.inference import serve
from simulator.report.focus import focus_table
from simulator.report.runs import ReportRun
from simulator.results.runner import plan_names, run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import load_scenario, scenario_for_plan
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider
from tests.unit.test_scenario import BASE, problems_of
from tests.validation.test_report_workbook_values import load, summary_table, write_report

MM1 = mm1_provider(service_rate=10.0, slo_ms=500.0)
HOURS = (31 + 28) * 24  # January + February 2027
LOGNORMAL_120 = {"distribution": "lognormal", "mean": 120, "sigma": 0.5}
RETRIEVAL = {"latency_ms": LOGNORMAL_120, "retrieved_tokens": 1000, "usd_per_hour": 2.5,
             "usd_per_thousand_queries": 0.3}  # fmt: skip
AS_STAGE = {"name": "retrieval", "kind": "retrieval", "position": "before_model", "latency_ms": LOGNORMAL_120,
            "added_prompt_tokens": 1000, "usd_per_hour": 2.5, "usd_per_thousand_calls": 0.3}  # fmt: skip


def scenario_data(stages=None, retrieval=None, rps=10.0, cache=0.2) -> dict:
    data = minimal_scenario_dict()
    data["training_jobs"][0]["failures_per_gpu_day"] = 0.0
    chat = data["workloads"][0]
    chat["traffic"].update(requests_per_second=rps, diurnal_peak_to_mean=1.5)
    chat["response_cache_hit_rate"] = cache
    if retrieval is not None:
        chat["retrieval"] = retrieval
    if stages is not None:
        chat["stages"] = stages
    return data


def scenario(stages=None, retrieval=None, **kwargs):
    return validate_scenario_data(scenario_data(stages, retrieval, **kwargs))


def with_guard(data: dict) -> dict:
    """A second pool and a small classifier deployment on it."""
    data["pools"].append({"name": "guard-pool", "gpu": "h100-sxm", "max_gpus": 16,
                          "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 2.0}})  # fmt: skip
    data["deployments"].append({"name": "guard", "pool": "guard-pool", "model": "llama-3-8b", "dtype": "bf16",
                                "tensor_parallel": 1, "autoscaling": {"min_replicas": 1, "max_replicas": 4}})  # fmt: skip
    return data


MODERATION = {"name": "input-guard", "kind": "moderation", "latency_ms": {"distribution": "fixed", "value": 30},
              "block_share": 0.05, "usd_per_thousand_calls": 0.02, "deployment": "guard",
              "latency_budget_ms": 200}  # fmt: skip
OUTPUT_CHECK = {"name": "output-guard", "kind": "moderation", "position": "after_model", "applies_share": 0.5,
                "latency_ms": {"distribution": "fixed", "value": 40}, "block_share": 0.1, "usd_per_hour": 1.0}  # fmt: skip


# ---------------------------------------------------------------------- schema


STAGED = BASE + """\
    stages:
      - name: guard
        kind: moderation
        latency_ms: {distribution: fixed, value: 30}
        applies_share: 1.0
        block_share: 0.0
"""


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize("latency", ["{distribution: fixed, value: -5}", "{distribution: uniform, low: -10, high: 20}",
                                     "{distribution: normal, mean: -1, sd: 3}"])  # fmt: skip
def test_a_negative_stage_latency_is_a_file_line_error(tmp_path, latency):
    text = STAGED.replace("{distribution: fixed, value: 30}", latency)
    lines = problems_of(tmp_path, text)
    assert len(lines) == 1
    assert f"s.yaml:{_line_of(text, 'latency_ms')}: workloads.w.stages.guard.latency_ms: a stage's latency is >= 0 ms" \
        in lines[0]  # fmt: skip
    assert load_scenario(_written(tmp_path, STAGED)).workload("w").stages[0].latency_ms.mean == 30


def _written(tmp_path, text: str):
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    return path


def test_an_unknown_stage_deployment_is_named_at_its_line(tmp_path):
    text = STAGED.replace("block_share: 0.0", "block_share: 0.0\n        deployment: llama-guard")
    lines = problems_of(tmp_path, text)
    where = f"{tmp_path / 's.yaml'}:{_line_of(text, 'llama-guard')}"
    assert lines == [f"{where}: workloads.w.stages.guard.deployment: unknown deployment 'llama-guard' (known: d)"]


def test_shares_out_of_range_are_file_line_errors(tmp_path):
    text = STAGED.replace("applies_share: 1.0", "applies_share: 1.5").replace("block_share: 0.0", "block_share: 1.0")
    lines = problems_of(tmp_path, text)
    assert len(lines) == 2
    assert any(f":{_line_of(text, 'applies_share')}: workloads.w.stages.guard.applies_share:" in x for x in lines)
    assert any(f":{_line_of(text, 'block_share')}: workloads.w.stages.guard.block_share:" in x and "less than 1" in x
               for x in lines)  # fmt: skip


def test_stage_names_are_unique_and_fields_fit_the_position(tmp_path):
    twice = STAGED + """\
      - name: guard
        latency_ms: {distribution: fixed, value: 1}
"""
    lines = problems_of(tmp_path, twice)
    assert [line.split("s.yaml:")[1] for line in lines] == [
        "19: workloads.w.stages.guard.name: duplicate stage name 'guard'",
        "24: workloads.w.stages.guard.name: duplicate stage name 'guard'"]  # fmt: skip
    clash = STAGED.replace("name: guard", "name: retrieval") + "    retrieval: {latency_ms: {distribution: fixed, value: 5}}\n"
    assert "retrieval: is the stage 'retrieval'" in problems_of(tmp_path, clash)[0]
    after = STAGED.replace("kind: moderation", "kind: moderation\n        position: after_model\n"
                                                "        added_prompt_tokens: 10")
    assert "only a before_model stage adds" in problems_of(tmp_path, after)[0]
    budget = STAGED.replace("block_share: 0.0", "block_share: 0.0\n        latency_budget_ms: 100")
    assert "only a stage with a deployment" in problems_of(tmp_path, budget)[0]


# ---------------------------------------------------------------------- retrieval: = one stage


def test_retrieval_and_the_same_stage_give_the_same_results():
    written = run(scenario(retrieval=RETRIEVAL), curve_provider=MM1)
    staged = run(scenario(stages=[AS_STAGE]), curve_provider=MM1)
    assert staged.summary == written.summary
    chat = staged.summary["workloads"]["chat"]
    assert set(chat) >= {"retrieval_cost_usd", "retrieval_queries"} and "requests_blocked" not in chat
    for table in ("billing", "monthly", "hourly", "latency"):
        assert getattr(staged, table).equals(getattr(written, table)), table
    assert set(staged.billing.loc[staged.billing["pool"] == "retrieval:chat", "line_item"]) == {
        "retrieval_queries", "retrieval_hours"}  # fmt: skip
    a = serve(scenario(retrieval=RETRIEVAL), "small", rps=2, duration_s=300, seed=3)
    b = serve(scenario(stages=[AS_STAGE]), "small", rps=2, duration_s=300, seed=3)
    assert a.requests.equals(b.requests) and a.summary == b.summary
    assert "retrieval_ms" in b.requests


# ---------------------------------------------------------------------- engine latency


def _stage(**fields) -> dict:
    return {"name": "s", "latency_ms": {"distribution": "fixed", "value": 80}, **fields}


def _requests(stages, rps=0.5, duration=800.0, cache=0.0):
    return serve(scenario(stages=stages, cache=cache), "small", rps=rps, duration_s=duration, seed=11)


def test_a_before_model_stage_shifts_ttft_and_e2e_by_its_latency():
    plain = _requests(None).requests
    staged = _requests([_stage(kind="tool")]).requests
    n = int((plain["arrival_s"] < 790).sum())
    a, b = plain.iloc[:n], staged.iloc[:n]
    np.testing.assert_allclose(b["ttft_ms"] - a["ttft_ms"], 80.0, atol=1e-6)
    np.testing.assert_allclose(b["e2e_ms"] - a["e2e_ms"], 80.0, atol=1e-6)
    np.testing.assert_allclose(b["tpot_ms"], a["tpot_ms"], atol=1e-9)
    assert (b["before_model_ms"] == 80).all() and "retrieval_ms" not in staged


def test_at_low_load_ttft_grows_by_the_stage_mean_latency():
    """A lognormal stage on half the requests: mean TTFT grows by 0.5 x 120 ms (the GPUs are
    idle between requests at this load, so nothing else moves)."""
    plain = _requests(None, rps=0.3, duration=4000)
    staged = _requests([_stage(latency_ms=LOGNORMAL_120, applies_share=0.5)], rps=0.3, duration=4000)
    shift = staged.summary["ttft_ms"]["mean"] - plain.summary["ttft_ms"]["mean"]
    sd = np.sqrt(0.5 * 120**2 * np.exp(0.25) - (0.5 * 120) ** 2)  # of 1{applies} x latency
    served = staged.requests[staged.requests["measured"] & (staged.requests["status"] == "completed")]
    assert abs(shift - 0.5 * 120) < 4 * sd / np.sqrt(len(served)) + 1.0
    assert (served["before_model_ms"] > 0).mean() == pytest.approx(0.5, abs=4 * 0.5 / np.sqrt(len(served)))


def test_an_after_model_stage_adds_to_e2e_only():
    plain = _requests(None).requests
    staged = _requests([_stage(position="after_model")]).requests
    done = plain["status"] == "completed"
    np.testing.assert_allclose(staged.loc[done, "ttft_ms"], plain.loc[done, "ttft_ms"], atol=1e-9)
    np.testing.assert_allclose(staged.loc[done, "tpot_ms"], plain.loc[done, "tpot_ms"], atol=1e-9)
    np.testing.assert_allclose(staged.loc[done, "e2e_ms"] - plain.loc[done, "e2e_ms"], 80.0, atol=1e-6)
    assert (staged.loc[done, "after_model_ms"] == 80).all()


def test_blocked_requests_never_reach_the_model():
    result = _requests([_stage(kind="moderation", block_share=0.3), _stage(name="out", position="after_model",
                                                                          block_share=0.2)], rps=2, cache=0.1)  # fmt: skip
    r = result.requests
    blocked = r["status"] == "blocked"
    share = blocked.sum() / (~(r["status"] == "cache_hit")).sum()
    assert share == pytest.approx(0.3, abs=4 * np.sqrt(0.3 * 0.7 / len(r)))
    assert (r.loc[blocked, "before_model_ms"] == 80).all() and r.loc[blocked, "ttft_ms"].isna().all()
    gpu = r[~r["status"].isin(["cache_hit", "blocked"])]
    assert result.summary["requests_arrived"] == len(gpu)  # blocked ones are not GPU requests
    withheld = gpu["blocked"] & (gpu["status"] == "completed")
    assert withheld.mean() == pytest.approx(0.2, abs=4 * np.sqrt(0.2 * 0.8 / len(gpu)))
    assert result.summary["requests_blocked"] == int((r["blocked"] & r["measured"]).sum())


# ---------------------------------------------------------------------- projection


def test_blocked_requests_conserve_and_each_stage_bills_its_lines():
    result = run(scenario(stages=[OUTPUT_CHECK, {**MODERATION, "deployment": None, "latency_budget_ms": None}],
                          retrieval=RETRIEVAL), curve_provider=MM1)  # fmt: skip
    s = result.summary
    chat = s["workloads"]["chat"]
    past_cache = chat["requests"] - chat["requests_cache_hits"]
    assert past_cache == pytest.approx(0.8 * chat["requests"], rel=1e-9)
    # the moderation stage runs on every request past the cache and blocks 5% before the model
    before = 0.05 * past_cache
    reached = past_cache - before
    assert chat["retrieval_queries"] == pytest.approx(past_cache, rel=1e-9)  # retrieval runs first
    answered = reached - chat["unserved_requests"] - chat["failed_requests"]
    after = 0.5 * 0.1 * answered  # the output check: half the answers, 10% of those withheld
    assert chat["requests_blocked_after_model"] == pytest.approx(after, rel=1e-9)
    assert chat["requests_blocked"] == pytest.approx(before + after, rel=1e-9)
    assert chat["requests"] == pytest.approx(chat["requests_served"] + chat["failed_requests"] + chat["unserved_requests"]
                                             + chat["requests_cache_hits"] + chat["requests_blocked"], rel=1e-12)  # fmt: skip
    assert chat["moderation_calls"] == pytest.approx(past_cache + 0.5 * answered, rel=1e-9)
    expected = past_cache / 1000 * 0.02 + HOURS * 1.0
    assert chat["moderation_cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert s["moderation_cost_usd"] == pytest.approx(expected, rel=1e-9)
    billing = result.billing.groupby(["pool", "line_item"])["quantity"].sum()
    assert billing[("input-guard:chat", "input-guard_calls")] == pytest.approx(past_cache / 1000, rel=1e-9)
    assert billing[("output-guard:chat", "output-guard_hours")] == pytest.approx(HOURS, rel=1e-12)
    monthly = result.monthly[result.monthly["entity_kind"] == "moderation"]
    assert set(monthly["pool"]) == {"input-guard:chat", "output-guard:chat"} and set(monthly["entity"]) == {"chat"}
    total = s["total_cost_usd"]
    pools = sum(p["cost_usd"] for p in s["pools"].values())
    assert pools + s["retrieval_cost_usd"] + s["moderation_cost_usd"] == pytest.approx(total, abs=0.005)
    entities = sum(w["cost_usd"] for w in s["workloads"].values()) + sum(j["cost_usd"] for j in s["training_jobs"].values())
    assert entities + s["idle_cost_usd"] == pytest.approx(total, abs=0.005)
    latency = result.latency
    assert latency["requests_blocked"].sum() == pytest.approx(chat["requests_blocked"], rel=1e-12)
    assert 0 < chat["availability"] <= 1


def test_a_classifier_stage_gets_gpu_cost_on_its_pool():
    data = with_guard(scenario_data(stages=[MODERATION, {**OUTPUT_CHECK, "deployment": "guard"}]))
    s = validate_scenario_data(data)
    guard_in, guard_out = s.workload("chat/input-guard"), s.workload("chat/output-guard")
    assert guard_in.routes[0].deployment == "guard" and guard_in.slo.ttft_p95_ms == 200
    assert guard_in.traffic.requests_per_second == pytest.approx(10 * 0.8)
    assert guard_out.traffic.requests_per_second == pytest.approx(10 * 0.8 * 0.95 * 0.5)
    assert guard_out.prompt_tokens.mean == 600 and guard_in.output_tokens.mean == 1
    result = run(s, curve_provider=MM1)
    summary = result.summary
    chat, derived = summary["workloads"]["chat"], summary["workloads"]["chat/input-guard"]
    assert derived["stage_of"] == {"workload": "chat", "stage": "input-guard"}
    assert derived["requests"] == pytest.approx(chat["requests"] - chat["requests_cache_hits"], rel=1e-9)
    assert derived["cost_usd"] > 0 and summary["pools"]["guard-pool"]["cost_usd"] > 0
    assert chat["stage_gpu_cost_usd"] == pytest.approx(
        derived["cost_usd"] + summary["workloads"]["chat/output-guard"]["cost_usd"], rel=1e-12)  # fmt: skip
    on_pool = result.monthly[(result.monthly["pool"] == "guard-pool") & (result.monthly["entity_kind"] == "workload")]
    assert set(on_pool["entity"]) == {"chat/input-guard", "chat/output-guard"}
    assert on_pool["cost_usd"].sum() == pytest.approx(
        derived["cost_usd"] + summary["workloads"]["chat/output-guard"]["cost_usd"], rel=1e-9)  # fmt: skip
    entities = sum(w["cost_usd"] for w in summary["workloads"].values()) + sum(
        j["cost_usd"] for j in summary["training_jobs"].values())  # fmt: skip
    assert entities + summary["idle_cost_usd"] == pytest.approx(summary["total_cost_usd"], abs=0.005)
    # plans re-derive the stage's workload from the parent they change
    data["plans"] = [{"name": "double", "set": {"workloads.chat.traffic.requests_per_second": 20.0}}]
    doubled = scenario_for_plan(validate_scenario_data(copy.deepcopy(data)), "double")
    assert doubled.workload("chat/input-guard").traffic.requests_per_second == pytest.approx(16.0)
    assert [w.name for w in doubled.workloads].count("chat/input-guard") == 1


def test_workbook_and_focus_show_the_stages():
    data = with_guard(scenario_data(stages=[MODERATION, OUTPUT_CHECK], retrieval=RETRIEVAL))
    data["plans"] = [{"name": "dearer", "set": {"workloads.chat.stages.input-guard.usd_per_thousand_calls": 0.05}}]
    s = validate_scenario_data(data)
    runs = [ReportRun(plan, scenario_for_plan(s, plan), run(s, plan=plan, curve_provider=MM1)) for plan in plan_names(s)]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_report(Path(tmp), runs)
        table = summary_table(load(path))
        names = set(load(path, data_only=False).defined_names)
    for r in runs:
        chat = r.result.summary["workloads"]["chat"]
        section = "Workload chat"
        assert table[(section, "Inference spend")][r.label] == pytest.approx(chat["cost_usd"], abs=0.005)
        assert table[(section, "of which moderation (calls + hours)")][r.label] == pytest.approx(
            chat["moderation_cost_usd"], abs=0.005)  # fmt: skip
        assert table[(section, "of which retrieval (queries + hours)")][r.label] == pytest.approx(
            chat["retrieval_cost_usd"], abs=0.005)  # fmt: skip
        assert table[(section, "requests blocked by a pipeline stage (guardrail)")][r.label] == pytest.approx(
            chat["requests_blocked"], abs=0.5)  # fmt: skip
    assert {"input_guard_chat_usd_per_thousand_calls_base", "input_guard_chat_usd_per_thousand_calls_dearer",
            "output_guard_chat_usd_per_hour"} <= names  # fmt: skip
    focus = focus_table(runs[0].result)
    stage_rows = focus[focus["x_pool"] == "input-guard:chat"]
    assert set(stage_rows["ServiceName"]) == {"input-guard stage of chat"}
    assert set(stage_rows["ProviderName"]) == {"moderation service"} and set(stage_rows["x_workload"]) == {"chat"}
