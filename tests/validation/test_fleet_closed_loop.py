"""Workloads given as concurrent users: the projection's rate is N / (R + Z) (the response-time
law), with R the mean response time the autoscaled replicas deliver at that rate.

The synthetic M/M/1 curve (tests/synthetic.py) has a known mean sojourn 1 / (mu - lambda) at
each load, so the fixed point can be checked against closed form.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.common.errors import ScenarioError
from simulator.fleet.demand import hourly_users
from simulator.fleet.projection import project
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from tests.conftest import minimal_scenario_dict
from tests.synthetic import MM1Curve, mm1_provider

MM1 = mm1_provider(service_rate=10.0, slo_ms=500.0)


def users_scenario(users: float, think_s: float, **traffic):
    data = minimal_scenario_dict()
    data["workloads"][0]["traffic"] = {"concurrent_users": users, "think_s": think_s, **traffic}
    data["training_jobs"][0]["failures_per_gpu_day"] = 0.0
    return validate_scenario_data(data)


def _mm1_mean_s(load_per_replica: np.ndarray) -> np.ndarray:
    """Mean of the synthetic curve's E2E quantiles (levels 0..0.999) at a load, in s."""
    levels = MM1Curve().quantile_levels
    q = -np.log1p(-levels)
    shape = float(((q[1:] + q[:-1]) / 2 * np.diff(levels)).sum() / levels[-1])
    return shape / (10.0 - load_per_replica)


def test_rate_and_response_time_meet_at_the_fixed_point():
    users, think = 60.0, 2.0
    s = users_scenario(users, think, diurnal_peak_to_mean=1.8)
    p = project(s, np.random.default_rng(0), MM1)
    rate, response = p.demand_rps["chat"], p.response_s["chat"]
    # the response-time law, hour by hour
    np.testing.assert_allclose(rate * (response + think), hourly_users(s.workloads[0].traffic, p.timeline), rtol=1e-12)
    # R is the M/M/1 mean at the load each serving replica carries at that rate
    serving = p.deployments["small"].serving
    expected = _mm1_mean_s(rate / serving)
    np.testing.assert_allclose(response, expected, rtol=5e-3)
    assert 0.1 < response.mean() < 1.0  # a real queueing delay, not the N / Z bound


def test_users_and_the_rate_they_produce_cost_the_same():
    """Flat traffic: the plan sized from users equals the plan sized from the rate they send."""
    by_users = run(users_scenario(40.0, 5.0), curve_provider=MM1)
    rate = by_users.summary["workloads"]["chat"]["closed_loop"]["requests_per_s_mean"]
    data = minimal_scenario_dict()
    data["workloads"][0]["traffic"] = {"requests_per_second": rate}
    data["training_jobs"][0]["failures_per_gpu_day"] = 0.0
    by_rate = run(validate_scenario_data(data), curve_provider=MM1)
    assert by_users.summary["total_cost_usd"] == pytest.approx(by_rate.summary["total_cost_usd"], rel=1e-9)
    assert (by_users.summary["workloads"]["chat"]["requests"]
            == pytest.approx(by_rate.summary["workloads"]["chat"]["requests"], rel=1e-9))  # fmt: skip
    loop = by_users.summary["workloads"]["chat"]["closed_loop"]
    assert loop["concurrent_users_mean"] == pytest.approx(40.0, rel=1e-9)
    assert rate == pytest.approx(40.0 / (loop["response_s_mean"] + 5.0), rel=1e-6)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(users=st.floats(1.0, 200.0), more=st.floats(1.01, 3.0), think=st.floats(0.5, 60.0))
def test_rate_bounded_and_rising_with_users(users, more, think):
    """N / (R_max + Z) <= X <= N / Z, and more users never send fewer requests."""
    def rate(n):
        return project(users_scenario(n, think), np.random.default_rng(0), MM1).demand_rps["chat"]

    few, many = rate(users), rate(users * more)
    slowest_s = _mm1_mean_s(np.array(MM1Curve().rates_per_replica[-1]))
    assert np.all(few <= users / think * (1 + 1e-12))
    assert np.all(few >= users / (slowest_s + think) * (1 - 1e-9))
    assert np.all(many >= few * (1 - 1e-9))


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ({"requests_per_second": 2.0, "concurrent_users": 10, "think_s": 5}, "either requests_per_second"),
        ({"diurnal_peak_to_mean": 1.5}, "either requests_per_second"),
        ({"concurrent_users": 10}, "needs traffic.think_s"),
        ({"requests_per_second": 2.0, "think_s": 5}, "think_s goes with concurrent_users"),
    ],
)
def test_rate_or_users_must_be_given_clearly(traffic, message):
    data = minimal_scenario_dict()
    data["workloads"][0]["traffic"] = traffic
    with pytest.raises(ScenarioError, match=message):
        validate_scenario_data(data)


def test_conversations_take_the_sessions_think_time():
    data = minimal_scenario_dict()
    data["workloads"][0]["traffic"] = {"concurrent_users": 10}
    data["workloads"][0]["sessions"] = {"turns": {"distribution": "fixed", "value": 3}, "think_s": 20}
    workload = validate_scenario_data(data).workloads[0]
    assert workload.users_think_s == 20
