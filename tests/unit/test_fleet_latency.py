"""Mixing latency distributions over hours: quantiles of the mixture, not averages."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fleet.latency import Mixture, point_weights
from tests.synthetic import MM1Curve


def test_point_weights_interpolate_and_clamp():
    curve = MM1Curve()
    rates = curve.rates_per_replica
    w = point_weights(curve, np.array([rates[3], (rates[3] + rates[4]) / 2, 0.0, 1e9]))
    assert w.sum(axis=1) == pytest.approx(np.ones(4))
    assert w[0, 3] == pytest.approx(1.0)
    assert w[1, 3] == pytest.approx(0.5) and w[1, 4] == pytest.approx(0.5)
    assert w[2, 0] == pytest.approx(1.0) and w[3, -1] == pytest.approx(1.0)


def test_mixture_quantile_matches_numeric_mixture_of_exponentials():
    curve = MM1Curve()
    i, j = 5, 30
    weights = np.zeros((1, len(curve.rates_per_replica)))
    weights[0, i], weights[0, j] = 900.0, 100.0
    mixture = Mixture([curve], [weights])
    p95 = mixture.quantiles("ttft_ms", [0.95])[0, 0]
    # exact: solve 0.9 F_i(x) + 0.1 F_j(x) = 0.95 for exponentials
    ri = curve.service_rate - curve.rates_per_replica[i]
    rj = curve.service_rate - curve.rates_per_replica[j]
    xs = np.linspace(0, 5, 200001)
    cdf = 0.9 * (1 - np.exp(-ri * xs)) + 0.1 * (1 - np.exp(-rj * xs))
    exact_ms = xs[np.searchsorted(cdf, 0.95)] * 1e3
    assert p95 == pytest.approx(exact_ms, rel=0.01)
    # and it is not the average of the two p95s
    average = 0.9 * np.log(20) / ri * 1e3 + 0.1 * np.log(20) / rj * 1e3
    assert abs(p95 - average) / average > 0.05


def test_attainment_is_request_weighted():
    curve = MM1Curve()
    weights = np.zeros((2, len(curve.rates_per_replica)))
    weights[0, 0] = 3.0
    weights[0, -1] = 1.0
    mixture = Mixture([curve], [weights])
    expected = (3 * curve.slo_attainment[0] + curve.slo_attainment[-1]) / 4
    att = mixture.attainment()
    assert att[0] == pytest.approx(expected)
    assert np.isnan(att[1])
