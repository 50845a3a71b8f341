"""Input vs output share of GPU-time (simulator.results.token_split)."""

from __future__ import annotations

import pytest

from simulator.results.token_split import (
    BATCH_FRACTION,
    gpu_time_shares,
    representative_batch,
    request_gpu_seconds,
    workload_input_share,
)
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.resolve import serving_cost_model
from tests.conftest import minimal_scenario_dict


def scenario(mutate=None):
    data = minimal_scenario_dict()
    if mutate:
        mutate(data)
    return validate_scenario_data(data)


def test_shares_sum_to_one():
    assert gpu_time_shares(1.0, 3.0) == (0.25, 0.75)
    assert gpu_time_shares(0.0, 2.0) == (0.0, 1.0)


@pytest.mark.parametrize("prefill, decode", [(-1.0, 1.0), (1.0, -0.5), (0.0, 0.0)])
def test_shares_reject_bad_times(prefill, decode):
    with pytest.raises(ValueError):
        gpu_time_shares(prefill, decode)


def test_request_gpu_seconds_follow_the_cost_model():
    s = scenario()
    dep, w = s.deployments[0], s.workloads[0]
    prefill, decode = request_gpu_seconds(s, dep, w)
    cm = serving_cost_model(s, dep)
    batch = representative_batch(s, dep, 500 + 100 / 2)
    assert batch == int(dep.max_batch_size * BATCH_FRACTION)
    assert prefill == pytest.approx(float(cm.prefill_s(500)))
    assert decode == pytest.approx(100 * float(cm.decode_step_s(batch, 550)) / batch)


def test_prefix_cache_shrinks_the_input_share():
    def cached(rate):
        def mutate(data):
            data["workloads"][0]["prefix_cache_hit_rate"] = rate

        return workload_input_share(scenario(mutate), "chat")

    none, half, full = cached(0.0), cached(0.5), cached(1.0)
    assert 0 < half < none < 1
    assert full == 0.0


def test_longer_prompts_raise_the_input_share():
    def prompt(tokens):
        def mutate(data):
            data["workloads"][0]["prompt_tokens"] = {"distribution": "fixed", "value": tokens}

        return workload_input_share(scenario(mutate), "chat")

    assert prompt(4000) > prompt(500) > prompt(50)


def test_batch_is_capped_by_the_kv_cache():
    s = scenario()
    dep = s.deployments[0]
    assert representative_batch(s, dep, 100) == int(dep.max_batch_size * BATCH_FRACTION)
    assert 1 <= representative_batch(s, dep, 2_000_000) < int(dep.max_batch_size * BATCH_FRACTION)


def test_routes_weigh_by_share_and_gpu_seconds():
    def two_routes(data):
        big = {
            **data["deployments"][0],
            "name": "big",
            "model": "llama-3-70b",
            "dtype": "fp8",
            "tensor_parallel": 4,
        }
        data["deployments"].append(big)
        data["workloads"][0]["routes"] = [
            {"deployment": "small", "share": 0.5},
            {"deployment": "big", "share": 0.5},
        ]

    s = scenario(two_routes)
    w = s.workloads[0]
    (ps, ds), (pb, db) = (request_gpu_seconds(s, s.deployment(n), w) for n in ("small", "big"))
    assert workload_input_share(s, w) == pytest.approx((ps + pb) / (ps + ds + pb + db))
