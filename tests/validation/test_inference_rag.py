"""The inference engine with a retrieval stage: TTFT and E2E grow by exactly the retrieval
latency, retrieved tokens lengthen prompts, response-cache hits skip retrieval, SLO attainment
and latency curves include it, and its latency draws follow their distribution."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.inference import serve
from simulator.inference.curve import QUICK_SETTINGS, curve_key, latency_curve
from simulator.scenario.checks import validate_scenario_data
from tests.conftest import minimal_scenario_dict

FIXED_120 = {"distribution": "fixed", "value": 120}


def scenario(retrieval=None, **workload):
    data = minimal_scenario_dict()
    data["workloads"][0].update(workload)
    if retrieval is not None:
        data["workloads"][0]["retrieval"] = retrieval
    return validate_scenario_data(data)


def requests(s, rps=1.0, duration=600.0, seed=4):
    return serve(s, "small", rps=rps, duration_s=duration, seed=seed)


def test_ttft_and_e2e_grow_by_exactly_the_retrieval_latency():
    # every request reaches the GPUs 120 ms later: the GPU-side timeline is the same, shifted
    plain = requests(scenario()).requests
    rag = requests(scenario({"latency_ms": FIXED_120})).requests
    n = int((plain["arrival_s"] < 590).sum())
    assert n > 400
    a, b = plain.iloc[:n], rag.iloc[:n]
    np.testing.assert_allclose(b["arrival_s"] - a["arrival_s"], 0.120, atol=1e-9)
    np.testing.assert_allclose(b["ttft_ms"] - a["ttft_ms"], 120.0, atol=1e-6)
    np.testing.assert_allclose(b["e2e_ms"] - a["e2e_ms"], 120.0, atol=1e-6)
    np.testing.assert_allclose(b["tpot_ms"], a["tpot_ms"], atol=1e-9)
    np.testing.assert_allclose(b["queue_wait_ms"], a["queue_wait_ms"], atol=1e-9)
    assert (b["retrieval_ms"] == 120.0).all() and "retrieval_ms" not in plain


def test_retrieved_tokens_join_the_prompt_and_slow_prefill():
    plain = requests(scenario())
    rag = requests(
        scenario({"latency_ms": {"distribution": "fixed", "value": 0}, "retrieved_tokens": 1500})
    )
    assert (plain.requests["prompt_tokens"] == 500).all()
    assert (rag.requests["prompt_tokens"] == 2000).all()
    assert rag.summary["ttft_ms"]["p50"] > plain.summary["ttft_ms"]["p50"] * 1.5
    assert rag.summary["prefill_tokens_per_s"] == pytest.approx(
        4 * plain.summary["prefill_tokens_per_s"], rel=0.05
    )


def test_response_cache_hits_skip_retrieval():
    r = requests(scenario({"latency_ms": FIXED_120}, response_cache_hit_rate=0.3)).requests
    hits = r["status"] == "cache_hit"
    assert 0.2 < hits.mean() < 0.4
    assert (r.loc[hits, "retrieval_ms"] == 0).all() and (r.loc[~hits, "retrieval_ms"] == 120).all()


def test_slo_attainment_counts_retrieval_in_ttft():
    tight = {"ttft_p95_ms": 110, "tpot_p95_ms": 100}
    assert requests(scenario(slo=tight)).summary["slo_attainment"] > 0.99
    assert requests(scenario({"latency_ms": FIXED_120}, slo=tight)).summary["slo_attainment"] == 0.0


def test_lognormal_retrieval_latency_matches_its_mean():
    r = requests(
        scenario({"latency_ms": {"distribution": "lognormal", "mean": 120, "sigma": 0.5}}), rps=5
    )
    sample = r.requests.loc[r.requests["status"] != "cache_hit", "retrieval_ms"]
    sd = 120 * np.sqrt(np.exp(0.25) - 1)
    assert abs(sample.mean() - 120) < 4 * sd / np.sqrt(len(sample))
    assert r.summary["retrieval_ms"]["mean"] == pytest.approx(
        sample[r.requests["measured"] & (r.requests["status"] == "completed")].mean()
    )


def test_latency_curve_includes_retrieval_and_its_key_ignores_prices():
    plain, rag = scenario(), scenario({"latency_ms": FIXED_120, "usd_per_hour": 1.0})
    rates = [0.5, 1.0]
    a = latency_curve(plain, "small", rates_per_replica=rates, settings=QUICK_SETTINGS)
    b = latency_curve(rag, "small", rates_per_replica=rates, settings=QUICK_SETTINGS)
    median = int(np.argmin(np.abs(a.quantile_levels - 0.5)))
    np.testing.assert_allclose(b.ttft_ms[:, median] - a.ttft_ms[:, median], 120.0, atol=5.0)
    dearer = scenario(
        {"latency_ms": FIXED_120, "usd_per_hour": 9.0, "usd_per_thousand_queries": 1.0}
    )
    slower = scenario({"latency_ms": {"distribution": "fixed", "value": 200}, "usd_per_hour": 1.0})
    longer = scenario({"latency_ms": FIXED_120, "retrieved_tokens": 10})

    def key(s):
        return curve_key(s, s.deployments[0], s.workloads[0], 0, QUICK_SETTINGS)

    assert key(rag) == key(dearer)
    assert len({key(plain), key(rag), key(slower), key(longer)}) == 4
