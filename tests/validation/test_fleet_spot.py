"""Spot serving is not free money: pre-emptions take replicas out for their reload, the autoscaler
keeps the headroom that needs, and the requests in flight are retried."""

from __future__ import annotations

import pytest

from simulator.economics.pricing import spot_down_fraction
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.schema import SpotPricing
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

MM1 = mm1_provider(2.0, 3000)


def scenario(kind: str, rate: float = 0.0):
    data = minimal_scenario_dict()
    data["training_jobs"] = []
    data["pools"][0]["gpus_per_node"] = 1
    data["workloads"][0]["traffic"]["requests_per_second"] = 15
    data["deployments"][0]["autoscaling"]["max_replicas"] = 64
    data["pools"][0]["pricing"] = (
        {"kind": "spot", "usd_per_gpu_hour": 3.0, "preemptions_per_gpu_day": rate, "startup_s": 600}
        if kind == "spot" else {"kind": "on_demand", "usd_per_gpu_hour": 3.0}
    )  # fmt: skip
    return validate_scenario_data(data)


def test_down_fraction_by_hand():
    p = SpotPricing(kind="spot", usd_per_gpu_hour=1.0, preemptions_per_gpu_day=2.4, reload_gb_per_s=2.0, startup_s=90)
    # TP 2 replica: 0.2 pre-emptions an hour; reload 90 s + 16 GB / 2 GPUs / 2 GB/s = 94 s
    assert spot_down_fraction(p, 2, 16e9) == pytest.approx(0.2 * 94 / 3600)


def test_spot_without_preemptions_is_on_demand_and_with_them_costs_more():
    on_demand = run(scenario("on_demand"), curve_provider=MM1).summary
    calm = run(scenario("spot", 0.0), curve_provider=MM1).summary
    assert calm["total_cost_usd"] == pytest.approx(on_demand["total_cost_usd"], rel=1e-12)
    assert calm["workloads"]["chat"]["requests_retried_after_preemption"] == 0
    costs, retried = [], []
    for rate in (1.0, 5.0, 20.0):
        s = run(scenario("spot", rate), curve_provider=MM1).summary
        costs.append(s["total_cost_usd"])
        retried.append(s["workloads"]["chat"]["requests_retried_after_preemption"])
        assert s["pools"]["gpus"]["serving_preemptions"] > 0
        assert s["workloads"]["chat"]["slo_attainment"] >= calm["workloads"]["chat"]["slo_attainment"] - 1e-9
    assert costs == sorted(costs) and costs[0] >= calm["total_cost_usd"]
    assert costs[-1] > calm["total_cost_usd"]
    assert retried == sorted(retried) and retried[0] > 0
