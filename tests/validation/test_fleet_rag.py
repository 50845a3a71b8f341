"""The projection with retrieval stages and LoRA fine-tunes, with the closed-form M/M/1 curve
(tests/synthetic.py) so every figure follows from arithmetic: the retrieval lines equal
queries x price + hours x hourly price, totals still add up to the cent, and scenarios without
the new fields give exactly what they gave before."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

MM1 = mm1_provider(service_rate=10.0, slo_ms=500.0)
HOURS = (31 + 28) * 24  # January + February 2027
RETRIEVAL = {"latency_ms": {"distribution": "lognormal", "mean": 120, "sigma": 0.5},
             "retrieved_tokens": 1000, "usd_per_hour": 2.5, "usd_per_thousand_queries": 0.3}  # fmt: skip


def scenario(mutate=None, retrieval=RETRIEVAL, **traffic):
    data = minimal_scenario_dict()
    data["training_jobs"][0]["failures_per_gpu_day"] = 0.0
    data["workloads"][0]["traffic"].update(traffic)
    data["workloads"][0]["response_cache_hit_rate"] = 0.2
    if retrieval is not None:
        data["workloads"][0]["retrieval"] = retrieval
    if mutate:
        mutate(data)
    return validate_scenario_data(data)


def test_retrieval_cost_is_queries_times_price_plus_hours_times_hourly_price():
    result = run(scenario(requests_per_second=20, diurnal_peak_to_mean=1.5), curve_provider=MM1)
    chat = result.summary["workloads"]["chat"]
    # response-cache hits skip retrieval; every other request queries it
    queries = chat["requests_served"] + chat["unserved_requests"]
    assert chat["retrieval_queries"] == pytest.approx(queries, rel=1e-12)
    assert queries == pytest.approx(0.8 * chat["requests"], rel=1e-9)
    expected = queries / 1000 * 0.3 + HOURS * 2.5
    assert chat["retrieval_cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert result.summary["retrieval_cost_usd"] == pytest.approx(expected, rel=1e-12)
    billing = result.billing[result.billing["pool"] == "retrieval:chat"]
    by_item = billing.groupby("line_item")[["quantity", "cost_usd"]].sum()
    assert by_item.loc["retrieval_queries", "quantity"] == pytest.approx(queries / 1000, rel=1e-12)
    assert by_item.loc["retrieval_hours", "quantity"] == pytest.approx(HOURS, rel=1e-12)
    assert set(billing["category"][billing["quantity"] != 0]) == {"inference"}
    monthly = result.monthly[result.monthly["entity_kind"] == "retrieval"]
    assert set(monthly["entity"]) == {"chat"} and set(monthly["pool"]) == {"retrieval:chat"}
    assert monthly["cost_usd"].sum() == pytest.approx(expected, rel=1e-12)
    assert (monthly["gpu_hours"] == 0).all()


def test_totals_still_add_up_to_the_cent():
    result = run(scenario(requests_per_second=20, diurnal_peak_to_mean=1.8), curve_provider=MM1)
    s = result.summary
    total = s["total_cost_usd"]
    assert result.monthly["cost_usd"].sum() == pytest.approx(total, abs=0.005)
    assert s["training_cost_usd"] + s["inference_cost_usd"] + s["idle_cost_usd"] == pytest.approx(
        total, abs=0.005
    )
    pools = sum(p["cost_usd"] for p in s["pools"].values())
    assert pools + s["retrieval_cost_usd"] == pytest.approx(total, abs=0.005)
    hourly = result.hourly[["inference_usd", "training_usd", "idle_usd"]].to_numpy().sum()
    assert hourly == pytest.approx(total, abs=0.005)
    entities = sum(w["cost_usd"] for w in s["workloads"].values()) + sum(
        j["cost_usd"] for j in s["training_jobs"].values()
    )
    assert entities + s["idle_cost_usd"] == pytest.approx(total, abs=0.005)
    rebuilt = (result.billing["quantity"] * result.billing["unit_price_usd"]).sum()
    assert rebuilt == pytest.approx(total, abs=0.005)
    assert sum(s["cost_by_fiscal_year_usd"].values()) == pytest.approx(total, abs=0.005)
    # the retrieval pseudo-pool holds no GPUs
    stage = result.hourly[result.hourly["pool"] == "retrieval:chat"]
    assert len(stage) == HOURS and (stage["gpus_billed"] == 0).all()
    assert s["gpu_hours_billed"] == pytest.approx(result.hourly["gpus_billed"].sum())


def test_workload_cost_and_tokens_include_retrieval():
    with_stage = run(scenario(requests_per_second=10), curve_provider=MM1).summary
    without = run(scenario(requests_per_second=10, retrieval=None), curve_provider=MM1).summary
    a, b = with_stage["workloads"]["chat"], without["workloads"]["chat"]
    # the same curve and demand: GPU cost is the same, retrieval comes on top
    assert a["cost_usd"] == pytest.approx(b["cost_usd"] + a["retrieval_cost_usd"], rel=1e-12)
    answered = a["requests_served"] + a["requests_cache_hits"]
    assert a["input_tokens"] == pytest.approx(answered * (500 + 1000), rel=1e-12)
    assert b["input_tokens"] == pytest.approx(answered * 500, rel=1e-12)
    assert a["cost_per_million_tokens_usd"] == pytest.approx(
        a["cost_usd"] / (a["input_tokens"] + a["output_tokens"]) * 1e6
    )
    assert "retrieval_cost_usd" not in b and "retrieval_cost_usd" not in without
    assert with_stage["inference_cost_usd"] == pytest.approx(
        without["inference_cost_usd"] + a["retrieval_cost_usd"], rel=1e-12
    )


def test_retrieval_runs_only_while_the_workload_is_served():
    def late(data):
        data["deployments"][0]["from"] = "2027-01-15"

    result = run(scenario(late, requests_per_second=10), curve_provider=MM1)
    chat = result.summary["workloads"]["chat"]
    hours = (31 + 28 - 14) * 24
    items = (
        result.billing[result.billing["pool"] == "retrieval:chat"]
        .groupby("line_item")["quantity"]
        .sum()
    )
    assert items["retrieval_hours"] == pytest.approx(hours, rel=1e-12)
    # unrouted requests before the launch query nothing
    assert chat["unserved_requests"] > 0
    assert items["retrieval_queries"] * 1000 == pytest.approx(chat["retrieval_queries"], rel=1e-12)
    assert chat["retrieval_queries"] == pytest.approx(
        chat["requests_served"], rel=1e-9
    )  # no capacity shortfall


def test_defaults_give_exactly_the_results_without_the_new_fields():
    def explicit(data):
        data["deployments"][0].update(adapters=0, adapter_rank=16, max_adapters_per_batch=None)
        data["workloads"][0].update(adapters=0, adapter_zipf_exponent=0.0, retrieval=None)
        data["training_jobs"][0].update(method="full", lora_rank=16)

    plain = run(scenario(retrieval=None, requests_per_second=10), curve_provider=MM1)
    spelled = run(scenario(explicit, retrieval=None, requests_per_second=10), curve_provider=MM1)
    assert plain.summary == spelled.summary
    assert "retrieval_cost_usd" not in plain.summary
    assert not plain.monthly["pool"].str.startswith("retrieval:").any()
    assert set(plain.hourly["pool"]) == {"gpus"}


def test_lora_fine_tune_takes_about_two_thirds_of_the_gpu_hours():
    def job(method):
        def mutate(data):
            data["training_jobs"][0].update(method=method, tokens=5e10, mfu=0.4)

        return run(
            scenario(mutate, retrieval=None, requests_per_second=2), curve_provider=MM1
        ).summary

    full, lora = job("full")["training_jobs"]["ft"], job("lora")["training_jobs"]["ft"]
    ratio = lora["gpu_hours"] / full["gpu_hours"]
    assert (
        0.66 < ratio < 0.72
    )  # (4 N + 6 N_lora + attention) / (6 N + attention) for 8B at seq 8192
    assert lora["cost_usd"] == pytest.approx(full["cost_usd"] * ratio, rel=1e-6)
    assert np.isfinite(ratio)
