"""Arrival processes: gap samples match their analytic mean and variance; arrival times."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.inference.arrivals import (
    GammaArrivals,
    PoissonArrivals,
    arrival_process,
    arrival_times_s,
)
from simulator.scenario.schema import Traffic


def assert_moments(samples: np.ndarray, mean: float, variance: float, z: float = 4.0) -> None:
    """Sample mean and variance agree with the analytic ones within z standard errors.

    The variance's standard error uses the sample's fourth central moment.
    """
    n = len(samples)
    assert abs(samples.mean() - mean) <= z * math.sqrt(variance / n)
    m4 = float(((samples - samples.mean()) ** 4).mean())
    assert abs(samples.var(ddof=1) - variance) <= z * math.sqrt(max(m4 - variance**2, 0) / n)


@pytest.mark.parametrize(
    "process",
    [PoissonArrivals(3.0), PoissonArrivals(0.02), GammaArrivals(5.0, 2.0), GammaArrivals(5.0, 0.5),
     GammaArrivals(0.3, 1.0)],
    ids=repr,
)  # fmt: skip
def test_gap_samples_match_analytic_moments(process):
    gaps = process.gaps_s(np.random.default_rng(11), 200_000)
    assert_moments(gaps, process.mean_gap_s, process.variance_gap_s2)


def test_gamma_with_cv_one_is_poisson_in_distribution():
    gamma = GammaArrivals(2.0, 1.0)
    poisson = PoissonArrivals(2.0)
    assert gamma.mean_gap_s == poisson.mean_gap_s
    assert gamma.variance_gap_s2 == pytest.approx(poisson.variance_gap_s2)


def test_arrival_times_cover_the_duration_at_the_rate():
    rng = np.random.default_rng(3)
    times = arrival_times_s(PoissonArrivals(50.0), rng, 200.0)
    assert np.all(np.diff(times) >= 0)
    assert times[0] > 0 and times[-1] < 200.0
    assert len(times) == pytest.approx(50 * 200, abs=4 * math.sqrt(50 * 200))


def test_arrival_times_extend_past_the_first_block():
    """A block is sized from the expected count; a long tail of gaps must still be covered."""
    rng = np.random.default_rng(5)
    times = arrival_times_s(GammaArrivals(1.0, 8.0), rng, 5000.0)
    assert times[-1] < 5000.0
    assert len(times) > 0


def test_common_random_numbers_across_rates():
    """Same generator state, twice the rate: the same pattern in half the time."""
    slow = arrival_times_s(PoissonArrivals(1.0), np.random.default_rng(9), 1000.0)
    fast = arrival_times_s(PoissonArrivals(2.0), np.random.default_rng(9), 500.0)
    np.testing.assert_allclose(slow, 2 * fast)


def test_process_from_traffic():
    assert isinstance(arrival_process(Traffic(requests_per_second=1), 4.0), PoissonArrivals)
    bursty = arrival_process(Traffic(requests_per_second=1, arrival="bursty", burstiness_cv=3), 4.0)
    assert bursty == GammaArrivals(4.0, 3.0)


def test_invalid_rates_are_rejected():
    with pytest.raises(ValueError, match="rate_per_s"):
        PoissonArrivals(0.0)
    with pytest.raises(ValueError, match="cv"):
        GammaArrivals(1.0, 0.0)
    assert len(arrival_times_s(PoissonArrivals(1.0), np.random.default_rng(0), 0.0)) == 0
