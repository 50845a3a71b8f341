"""Lifetime projection: conservation, bounds, monotonicity, determinism, hand-computed costs.

The latency curve is the closed-form M/M/1 curve of tests/synthetic.py, so expectations follow
from arithmetic; the real inference engine is exercised end to end in tests/cli.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

MM1 = mm1_provider(service_rate=10.0, slo_ms=500.0)


def scenario(mutate=None, **traffic):
    data = minimal_scenario_dict()
    data["workloads"][0]["traffic"].update(traffic)
    data["training_jobs"][0]["failures_per_gpu_day"] = 0.0
    if mutate:
        mutate(data)
    return validate_scenario_data(data)


def test_totals_add_up_to_the_cent():
    result = run(scenario(requests_per_second=20, diurnal_peak_to_mean=1.8), curve_provider=MM1)
    s = result.summary
    assert result.monthly["cost_usd"].sum() == pytest.approx(s["total_cost_usd"], abs=0.005)
    parts = s["training_cost_usd"] + s["inference_cost_usd"] + s["idle_cost_usd"]
    assert parts == pytest.approx(s["total_cost_usd"], abs=0.005)
    assert sum(p["cost_usd"] for p in s["pools"].values()) == pytest.approx(s["total_cost_usd"], abs=0.005)
    hourly_total = result.hourly[["inference_usd", "training_usd", "idle_usd"]].to_numpy().sum()
    assert hourly_total == pytest.approx(s["total_cost_usd"], abs=0.005)
    per_entity = sum(w["cost_usd"] for w in s["workloads"].values()) + sum(
        j["cost_usd"] for j in s["training_jobs"].values())
    assert per_entity + s["idle_cost_usd"] == pytest.approx(s["total_cost_usd"], abs=0.005)


def test_billed_at_least_busy_and_utilisation_bounded():
    result = run(scenario(requests_per_second=30, growth_per_month=0.3), curve_provider=MM1)
    h = result.hourly
    assert (h["gpus_billed"] + 1e-9 >= h["gpus_busy"]).all()
    for pool in result.summary["pools"].values():
        assert 0 <= pool["mean_utilization"] <= 1


def test_on_demand_cost_is_gpu_hours_times_price():
    result = run(scenario(requests_per_second=5), curve_provider=MM1)
    s = result.summary
    assert s["total_cost_usd"] == pytest.approx(s["gpu_hours_billed"] * 3.0, rel=1e-9)


def test_replicas_follow_capacity_and_target():
    # constant 20 req/s, capacity = 10 - ln(20)/0.5 = 4.009 req/s: the SLO capacity, no second
    # margin by default -> ceil(4.99) = 5; target 0.7 -> ceil(7.13) = 8; a 1.3 within-hour peak
    # -> ceil(6.49) = 7
    capacity = 10 - np.log(20) / 0.5
    held = run(scenario(requests_per_second=20), curve_provider=MM1).deployments_hourly["replicas_held"]
    assert held.iloc[0] == np.ceil(20 / capacity) == 5

    def target(data):
        data["deployments"][0]["autoscaling"]["target_utilization"] = 0.7

    held = run(scenario(target, requests_per_second=20), curve_provider=MM1).deployments_hourly["replicas_held"]
    assert held.iloc[0] == np.ceil(20 / capacity / 0.7) == 8
    peaky = run(scenario(requests_per_second=20, peak_to_mean_within_hour=1.3), curve_provider=MM1)
    assert peaky.deployments_hourly["replicas_held"].iloc[0] == np.ceil(20 * 1.3 / capacity) == 7
    # latency is read at the hour's mean load: more replicas, lower load each, no worse latency
    assert peaky.summary["workloads"]["chat"]["ttft_p95_ms"] <= run(
        scenario(requests_per_second=20), curve_provider=MM1).summary["workloads"]["chat"]["ttft_p95_ms"]


def test_max_replicas_leaves_unserved_demand_reported():
    result = run(scenario(requests_per_second=500), curve_provider=MM1)
    chat = result.summary["workloads"]["chat"]
    # 8 replicas at most, each serving at most the curve's top rate (9.8 req/s)
    hours = result.summary["horizon_months"] and len(result.deployments_hourly)
    served_max = 8 * 9.8 * 3600 * hours
    assert chat["requests_served"] == pytest.approx(served_max, rel=1e-6)
    total = chat["requests_served"] + chat["unserved_requests"] + chat["requests_cache_hits"]
    assert total == pytest.approx(chat["requests"])
    assert chat["unserved_requests"] > 0 and not chat["slo_met"]


def test_reserved_commitment_paid_when_unused():
    def reserved(data):
        data["pools"][0]["pricing"] = {"kind": "reserved", "committed_gpus": 40, "term_months": 12,
                                       "usd_per_gpu_hour": 2.0, "overflow_usd_per_gpu_hour": 5.0}
        data["training_jobs"] = []

    result = run(scenario(reserved, requests_per_second=2), curve_provider=MM1)
    s = result.summary
    hours = len(result.deployments_hourly)
    held = result.hourly["gpus_inference"].to_numpy()
    assert s["total_cost_usd"] == pytest.approx(40 * 2.0 * hours, rel=1e-9)
    assert s["idle_cost_usd"] == pytest.approx(((40 - held) * 2.0).sum(), rel=1e-9)


def test_owned_buys_peak_and_amortises():
    def owned(data):
        data["pools"][0]["pricing"] = {"kind": "owned", "capex_usd_per_gpu": 30000, "lifetime_years": 4,
                                       "power_usd_per_kwh": 0.0, "pue": 1.3, "colocation_usd_per_kw_month": 0,
                                       "network_capex_usd_per_gpu": 0, "support_fraction_per_year": 0,
                                       "cost_of_capital_per_year": 0}  # capex alone, by hand
        data["pools"][0]["gpus_per_node"] = 1
        data["training_jobs"] = []

    result = run(scenario(owned, requests_per_second=20, growth_per_month=0.2), curve_provider=MM1)
    pool = result.summary["pools"]["gpus"]
    hours = len(result.deployments_hourly)
    assert pool["owned_gpus"] == pool["peak_gpus"]
    expected = pool["owned_gpus"] * 30000 / (4 * 365.25 * 24) * hours
    assert result.summary["total_cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_same_seed_identical_different_seed_only_stochastic_parts():
    def flaky(data):
        data["training_jobs"][0]["failures_per_gpu_day"] = 0.5
        data["training_jobs"][0]["tokens"] = 5e10

    s = scenario(flaky, requests_per_second=10)
    a = run(s, curve_provider=MM1).summary
    b = run(s, curve_provider=MM1).summary
    c = run(s, seed=99, curve_provider=MM1).summary
    assert a == b
    assert a["inference_cost_usd"] == c["inference_cost_usd"]
    # a workload's share of the pool's idle cost follows the training runs (stochastic) it shares with
    shared = ("idle_share_of_pools", "idle_share_usd", "all_in_cost")

    def serving(summary):
        return {n: {k: v for k, v in w.items() if not k.startswith(shared)} for n, w in summary["workloads"].items()}

    assert serving(a) == serving(c) or a["pools"]["gpus"]["peak_gpus"] != c["pools"]["gpus"]["peak_gpus"]
    assert a["training_jobs"]["ft"]["failures"] != c["training_jobs"]["ft"]["failures"] or \
        a["training_jobs"]["ft"]["gpu_hours"] != c["training_jobs"]["ft"]["gpu_hours"]


def test_scale_up_delay_shows_as_lower_attainment():
    def launch(data):
        data["workloads"][0]["traffic"]["events"] = [{"start": "2027-01-10", "days": 1, "multiplier": 3}]
        data["deployments"][0]["autoscaling"]["max_replicas"] = 64

    def slow(data):
        launch(data)
        data["deployments"][0]["autoscaling"]["scale_up_delay_minutes"] = 45

    fast = run(scenario(launch, requests_per_second=10), curve_provider=MM1)
    lagging = run(scenario(slow, requests_per_second=10), curve_provider=MM1)
    jan_fast = fast.latency.iloc[0]["slo_attainment"]
    jan_slow = lagging.latency.iloc[0]["slo_attainment"]
    assert jan_slow < jan_fast


def test_training_priority_pushes_serving_out():
    def crowded(data, priority):
        data["pools"][0]["max_gpus"] = 16
        data["pools"][0]["priority"] = priority
        data["training_jobs"][0].update(gpus=12, tokens=5e11)
        data["deployments"][0]["autoscaling"]["max_replicas"] = 16

    inference_first = run(scenario(lambda d: crowded(d, "inference"), requests_per_second=60), curve_provider=MM1)
    training_first = run(scenario(lambda d: crowded(d, "training"), requests_per_second=60), curve_provider=MM1)
    unserved_inf = inference_first.summary["workloads"]["chat"]["unserved_requests"]
    unserved_train = training_first.summary["workloads"]["chat"]["unserved_requests"]
    assert unserved_train > unserved_inf
    start_inf = inference_first.summary["training_jobs"]["ft"]["first_start"]
    start_train = training_first.summary["training_jobs"]["ft"]["first_start"]
    assert start_train == "2027-01-05T00:00:00"
    assert start_inf is None or start_inf > start_train


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    price=st.floats(0.5, 10), bump=st.floats(1.01, 3),
    growth=st.floats(0.0, 0.3), more_growth=st.floats(0.01, 0.3),
    kind=st.sampled_from(["on_demand", "reserved", "owned"]),
)  # fmt: skip
def test_cost_rises_with_price_and_growth(price, bump, growth, more_growth, kind):
    def priced(p, g):
        def mutate(data):
            pricing = {"on_demand": {"kind": "on_demand", "usd_per_gpu_hour": p},
                       "reserved": {"kind": "reserved", "committed_gpus": 4, "term_months": 2,
                                    "usd_per_gpu_hour": p, "overflow_usd_per_gpu_hour": 2 * p},
                       "owned": {"kind": "owned", "capex_usd_per_gpu": 10000 * p, "lifetime_years": 4}}[kind]
            data["pools"][0]["pricing"] = copy.deepcopy(pricing)
            data["workloads"][0]["traffic"]["growth_per_month"] = g
        return scenario(mutate, requests_per_second=15)

    base = run(priced(price, growth), curve_provider=MM1).summary["total_cost_usd"]
    pricier = run(priced(price * bump, growth), curve_provider=MM1).summary["total_cost_usd"]
    growing = run(priced(price, growth + more_growth), curve_provider=MM1).summary["total_cost_usd"]
    assert pricier > base
    assert growing >= base - 1e-6


def test_billing_line_items_rebuild_costs():
    def reserved(data):
        data["pools"][0]["pricing"] = {"kind": "reserved", "committed_gpus": 6, "term_months": 1,
                                       "usd_per_gpu_hour": 2.0, "overflow_usd_per_gpu_hour": 5.0}

    result = run(scenario(reserved, requests_per_second=20), curve_provider=MM1)
    billing = result.billing
    rebuilt = (billing["quantity"] * billing["unit_price_usd"]).sum()
    assert rebuilt == pytest.approx(result.summary["total_cost_usd"], abs=0.005)
    by_cat = billing.groupby("category")["cost_usd"].sum()
    assert by_cat["idle"] == pytest.approx(result.summary["idle_cost_usd"], abs=0.005)
    monthly = billing.groupby("month")["cost_usd"].sum()
    assert monthly.iloc[1] > 0 and set(billing["line_item"]) == {"committed_gpu_hours", "overflow_gpu_hours"}


def test_training_only_and_serving_only_scenarios_run():
    def no_serving(data):
        data["deployments"], data["workloads"] = [], []

    def no_training(data):
        data["training_jobs"] = []

    only_training = run(scenario(no_serving), curve_provider=MM1).summary
    assert only_training["inference_cost_usd"] == 0 and only_training["training_cost_usd"] > 0
    only_serving = run(scenario(no_training, requests_per_second=3), curve_provider=MM1).summary
    assert only_serving["training_cost_usd"] == 0 and only_serving["inference_cost_usd"] > 0
