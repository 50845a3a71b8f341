"""All-in cost per token: every pool's idle cost is carried by those who use the pool.

Marginal $/1M tokens divides a workload's own inference cost by its tokens; all-in adds its share
(by GPU-hours on each pool) of the pool's idle cost: unused commitments, idle owned GPUs,
write-offs. Summed over workloads and training jobs, nothing is lost or counted twice.
"""

from __future__ import annotations

import pytest

from simulator.results.compare import compare
from simulator.results.runner import plan_names, run
from simulator.scenario.loading import load_scenario
from tests.conftest import ROOT
from tests.synthetic import mm1_provider

MM1 = mm1_provider(2.0, 3000)
BUNDLED = ["buy-vs-rent", "chat-assistant", "training-lab", "lifecycle", "enterprise-rag"]


def summaries(name: str, months: int = 6) -> list[dict]:
    s = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    s = s.model_copy(update={"horizon": s.horizon.model_copy(update={"months": months})})
    return [run(s, plan=plan, curve_provider=MM1).summary for plan in plan_names(s)]


@pytest.mark.parametrize("name", BUNDLED)
def test_all_in_plus_training_adds_up_to_the_total_to_the_cent(name):
    for summary in summaries(name):
        workloads = summary["workloads"].values()
        jobs = summary["training_jobs"].values()
        carried = sum(w["all_in_cost_usd"] for w in workloads)
        carried += sum(j["cost_usd"] + j["idle_share_usd"] for j in jobs)
        unused_pools = sum(
            p["cost_usd"] for p in summary["pools"].values() if p["gpu_hours_busy"] == 0
        )
        assert carried + unused_pools == pytest.approx(summary["total_cost_usd"], abs=0.01), summary["plan"]
        for w in workloads:
            assert w["idle_share_usd"] >= 0
            if w["cost_per_million_tokens_usd"] is not None:
                assert w["cost_per_million_tokens_usd"] <= w["all_in_cost_per_million_tokens_usd"] + 1e-12


def test_a_pool_used_by_one_workload_puts_all_its_idle_cost_on_it():
    for summary in summaries("buy-vs-rent"):
        (workload,) = summary["workloads"].values()
        assert workload["idle_share_usd"] == pytest.approx(summary["idle_cost_usd"], abs=0.01)
        tokens = workload["input_tokens"] + workload["output_tokens"]
        pool_cost = sum(p["cost_usd"] for p in summary["pools"].values())
        assert workload["all_in_cost_per_million_tokens_usd"] == pytest.approx(pool_cost / tokens * 1e6, rel=1e-9)


def test_compare_shows_all_in_beside_marginal():
    comparison = compare(summaries("buy-vs-rent", months=3))
    keys = [m.key for m in comparison.metrics]
    name = next(k.split(".")[0] for k in keys if k.endswith(".all_in_cost_per_million_tokens_usd"))
    assert keys.index(f"{name}.all_in_cost_per_million_tokens_usd") < keys.index(f"{name}.cost_per_million_tokens_usd")
