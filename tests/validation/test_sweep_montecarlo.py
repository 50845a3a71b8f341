"""Monte Carlo replications against theory: the spread of lifetime spend when a price is uncertain.

With an on-demand pool at a Normal(mean 3, sd 0.3) $/GPU-hour price, every replication's spend
divided by its billed GPU-hours *is* its drawn price, so the P10/P50/P90 across replications must
match the Normal quantiles within the sampling error of order statistics, and the mean within
that of a mean. The closed-form M/M/1 curve stands in for the engine's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.scenario.checks import validate_scenario_data
from simulator.sweep.montecarlo import replicate, stats
from simulator.sweep.runner import Execution, Executor, replication_seeds
from tests.synthetic import mm1_provider

MEAN, SD, N = 3.0, 0.3, 200
Z = {10: -1.2815516, 50: 0.0, 90: 1.2815516}


@pytest.fixture(scope="module")
def replications():
    from tests.conftest import minimal_scenario_dict

    data = minimal_scenario_dict()
    data["horizon"]["months"] = 1
    data["uncertainty"] = {"pools.gpus.pricing.usd_per_gpu_hour": {"distribution": "normal", "mean": MEAN, "sd": SD}}
    scenario = validate_scenario_data(data)
    with Executor(Execution(workers=1)) as executor:
        return replicate(scenario, ["base"], N, executor, curves=mm1_provider())


def test_spend_per_gpu_hour_is_the_drawn_price_with_its_quantiles(replications):
    frame, (summary,) = replications
    assert len(frame) == N and (frame["status"] == "ok").all()
    price = (frame["total_cost_usd"] / frame["gpu_hours_billed"]).to_numpy()
    for p, z in Z.items():
        density = math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / SD
        se = math.sqrt(p / 100 * (1 - p / 100) / N) / density  # s.e. of a sample quantile
        assert np.percentile(price, p) == pytest.approx(MEAN + z * SD, abs=4 * se)
    assert price.mean() == pytest.approx(MEAN, abs=4 * SD / math.sqrt(N))
    # the summary's figures are the same percentiles of the spend itself
    spend = frame["total_cost_usd"].to_numpy()
    assert summary["total_cost_usd"]["p50"] == pytest.approx(np.percentile(spend, 50))
    assert summary["total_cost_usd"]["n"] == N
    assert summary["uncertain_inputs"] == ["pools.gpus.pricing.usd_per_gpu_hour"]


def test_confidence_interval_of_the_mean_has_the_t_width(replications):
    frame, (summary,) = replications
    s = summary["total_cost_usd"]
    spend = frame["total_cost_usd"].to_numpy()
    half = (s["ci90_high"] - s["ci90_low"]) / 2
    assert half == pytest.approx(1.6526 * spend.std(ddof=1) / math.sqrt(N), rel=1e-3)  # t(0.95, 199)
    assert s["ci90_low"] < s["mean"] < s["ci90_high"]


def test_replications_use_spawned_seeds_independent_of_how_many():
    """Replication r's stream is SeedSequence(seed).spawn(N)[r], the same for any N > r."""
    few, many = replication_seeds(7, 3), replication_seeds(7, 10)
    for a, b in zip(few, many[:3], strict=True):
        assert (a.entropy, a.spawn_key) == (b.entropy, b.spawn_key)
        assert (a.generate_state(4) == b.generate_state(4)).all()


def test_stats_on_known_values():
    s = stats([1.0, 2.0, 3.0, 4.0, 5.0, None, float("nan")])
    assert (s["n"], s["p10"], s["p50"], s["p90"], s["mean"]) == (5, 1.4, 3.0, 4.6, 3.0)
    assert s["ci90_high"] - s["mean"] == pytest.approx(2.1318 * math.sqrt(2.5) / math.sqrt(5), rel=1e-4)
    one = stats([2.0])
    assert (one["p50"], one["ci90_low"]) == (2.0, None)
    assert stats([])["p50"] is None
