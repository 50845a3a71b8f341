"""Serving failures against renewal theory and the binomial tail, and traffic conserved.

- The share of time a replica is down, r / (1/rate + r), matches a simulated alternating renewal
  process (exponential up times, fixed repair) within its 99.9% confidence interval.
- The spares an availability target asks for are the fewest whose binomial tail meets it.
- In a projection with failures, arrived = served + failed + unserved, per workload and month;
  the autoscaler holds 1/(1 - share down) of the replicas, and failures off change nothing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.fleet.reliability import binomial_tail, down_share, recovery_hours, spares_for
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.schema import ServingFailures
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider, without_failures


@pytest.mark.parametrize("rate,repair", [(0.01, 2.0), (0.2, 0.5), (1.0, 1.0)])
def test_down_share_is_the_renewal_value(rate, repair):
    rng = np.random.default_rng(7)
    cycles = 200_000
    up = rng.exponential(1.0 / rate, cycles)
    down_time = cycles * repair
    measured = down_time / (up.sum() + down_time)
    expected = down_share(rate, repair)
    # delta method: the share is D / (U + D), U a sum of exponentials (sd = sqrt(n)/rate)
    sd = down_time * math.sqrt(cycles) / rate / (up.sum() + down_time) ** 2
    assert abs(measured - expected) <= 3.3 * sd
    assert expected == pytest.approx(rate * repair / (1 + rate * repair))


def test_recovery_defaults_to_start_plus_the_weights_shard():
    # 140 GB of weights on 4 GPUs at 2 GB/s each: 17.5 s, after 90 s of start
    assert recovery_hours(ServingFailures(), 4, 140e9) * 3600 == pytest.approx(107.5)
    assert recovery_hours(ServingFailures(recovery_minutes=30), 4, 140e9) == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 200), p=st.floats(1e-6, 0.3), target=st.sampled_from([0.9, 0.99, 0.999, 0.9999]))
def test_spares_are_the_fewest_meeting_the_target(n, p, target):
    k = spares_for(n, p, target)
    assert binomial_tail(n + k, k, p) <= 1 - target + 1e-12
    if k > 0:
        assert binomial_tail(n + k - 1, k - 1, p) > 1 - target


def test_binomial_tail_against_a_direct_sum():
    n, p = 12, 0.1
    direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(3, n + 1))
    assert binomial_tail(n, 2, p) == pytest.approx(direct, rel=1e-12)


def _scenario(per_gpu_day: float, retry: bool = True, recovery: float = 120.0, spares: int = 0,
              target: float | None = None, stages: list | None = None, cache: float = 0.0):  # fmt: skip
    data = minimal_scenario_dict()
    for dep in data["deployments"]:
        dep["failures"] = {"per_gpu_day": per_gpu_day, "recovery_minutes": recovery, "retry": retry}
        dep["redundancy"] = {"spare_replicas": spares, "availability_target": target}
    if stages:  # pipeline stages that may block requests before or after the model
        data["workloads"][0].update(stages=stages, response_cache_hit_rate=cache)
    return validate_scenario_data(data)


MM1 = mm1_provider(2.0, 3000)


def test_failures_off_change_nothing_and_on_hold_the_expected_loss():
    off = run(_scenario(0.0), curve_provider=MM1)
    assert run(without_failures(_scenario(3.0)), curve_provider=MM1).summary == off.summary
    on = run(_scenario(3.0), curve_provider=MM1)  # 3 failures per GPU-day, 2 h to recover
    dep = next(iter(on.summary["deployments"].values()))
    rel = dep["reliability"]
    gpus = dep["gpus_per_replica"]
    rate = 3.0 * gpus / 24
    assert rel["share_down"] == pytest.approx(down_share(rate, 2.0))
    assert rel["expected_failures"] > 0 and rel["redundant_replica_hours"] > 0
    assert rel["redundancy_cost_usd"] > 0
    assert on.summary["redundancy_cost_usd"] == pytest.approx(rel["redundancy_cost_usd"])
    held_off = next(iter(off.summary["deployments"].values()))["gpu_hours_held"]
    assert dep["gpu_hours_held"] == pytest.approx(held_off + rel["redundant_replica_hours"] * gpus)
    assert on.summary["total_cost_usd"] >= off.summary["total_cost_usd"]  # whole nodes may already hold them
    assert off.summary["redundancy_cost_usd"] == 0


_SHARE = st.floats(0.0, 1.0)
_STAGE = st.fixed_dictionaries({"position": st.sampled_from(["before_model", "after_model"]), "applies_share": _SHARE,
                                "block_share": st.floats(0.0, 0.95)})  # fmt: skip


@settings(max_examples=12, deadline=None)
@given(per_gpu_day=st.floats(0.0, 10.0), retry=st.booleans(), spares=st.integers(0, 3),
       target=st.sampled_from([None, 0.99, 0.9999]), stages=st.lists(_STAGE, max_size=3),
       cache=st.floats(0.0, 0.5))  # fmt: skip
def test_traffic_is_conserved_with_failures(per_gpu_day, retry, spares, target, stages, cache):
    """... and with pipeline stages that block requests: arrived = served + failed + unserved +
    cache hits + blocked."""
    stages = [{"name": f"s{i}", "kind": "moderation", "latency_ms": {"distribution": "fixed", "value": 10}, **s}
              for i, s in enumerate(stages)]  # fmt: skip
    result = run(_scenario(per_gpu_day, retry, 60.0, spares, target, stages, cache), curve_provider=MM1)
    latency = result.latency
    arrived = latency["requests_served"] + latency["requests_cache_hits"] + latency["requests_unserved"] \
        + latency["requests_failed"] + latency.get("requests_blocked", 0.0)
    for name, w in result.summary["workloads"].items():
        mine = latency["workload"] == name
        assert w["requests"] == pytest.approx(float(arrived[mine].sum()), rel=1e-12)
        assert w["requests"] == pytest.approx(w["requests_served"] + w["requests_cache_hits"] + w["unserved_requests"]
                                              + w["failed_requests"] + w.get("requests_blocked", 0.0), rel=1e-12)
        assert w["requests"] == pytest.approx(float(result.hourly["time"].nunique()) * 3600 * 2.0, rel=1e-9)
        assert (latency.loc[mine, "requests_served"] >= -1e-9).all()
        assert (latency.loc[mine, "requests_failed"] >= 0).all()
        if retry or per_gpu_day == 0:
            assert w["failed_requests"] == 0
        if w["availability"] is not None:
            assert 0 <= w["availability"] <= 1


def test_without_retry_failed_requests_lower_availability():
    retried = run(_scenario(5.0, retry=True), curve_provider=MM1).summary["workloads"]
    failed = run(_scenario(5.0, retry=False), curve_provider=MM1).summary["workloads"]
    for name, w in failed.items():
        assert w["failed_requests"] > 0 and retried[name]["failed_requests"] == 0
        assert retried[name]["requests_retried_after_failure"] == pytest.approx(w["failed_requests"], rel=1e-9)
        assert w["availability"] < retried[name]["availability"]
