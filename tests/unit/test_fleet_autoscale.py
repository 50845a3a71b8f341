"""Autoscaler: bounds, scale-up delay, pool limits."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.fleet.autoscale import (
    fit_to_pool,
    held_through_scale_down,
    replicas_requested,
    replicas_serving,
)
from simulator.scenario.schema import Autoscaling


def test_requested_respects_target_and_bounds():
    policy = Autoscaling(min_replicas=2, max_replicas=10, target_utilization=0.5)
    eq = np.array([0.1, 1.0, 2.2, 100.0])
    assert replicas_requested(eq, policy).tolist() == [2, 2, 5, 10]


def test_scale_up_delay_fraction_of_hour():
    requested = np.array([2.0, 2.0, 6.0, 6.0, 3.0])
    serving = replicas_serving(requested, delay_minutes=15)
    # hour 2: 15 minutes at 2 replicas, 45 at 6 -> 5; scale-down immediate
    assert serving.tolist() == pytest.approx([2, 2, 5, 6, 3])


def test_scale_up_delay_longer_than_an_hour():
    requested = np.array([1.0, 1.0, 5.0, 5.0, 5.0])
    serving = replicas_serving(requested, delay_minutes=90)
    assert serving.tolist() == pytest.approx([1, 1, 1, 3, 5])


def test_fit_to_pool_proportional_and_bounded():
    requested = {"a": np.array([8.0, 40.0]), "b": np.array([8.0, 40.0])}  # GPUs
    fitted = fit_to_pool(requested, np.array([64.0, 40.0]), {"a": 4, "b": 1})
    assert fitted["a"].tolist() == [2, 5]
    assert fitted["b"].tolist() == [8, 20]
    assert (fitted["a"] * 4 + fitted["b"] <= np.array([64, 40])).all()


def test_default_target_takes_no_second_margin():
    policy = Autoscaling(min_replicas=0, max_replicas=100)
    assert policy.target_utilization == 1.0
    assert replicas_requested(np.array([3.0, 3.2]), policy).tolist() == [3, 4]


def test_scale_down_waits_and_scale_up_does_not():
    requested = np.array([6.0, 2.0, 2.0, 8.0, 1.0])
    assert held_through_scale_down(requested, 0).tolist() == requested.tolist()
    # 15 minutes: a quarter of the hour after a drop still holds the previous hour's replicas
    assert held_through_scale_down(requested, 15).tolist() == pytest.approx([6, 3, 2, 8, 2.75])
    # 90 minutes: the drop shows only after an hour and a half
    assert held_through_scale_down(requested, 90).tolist() == pytest.approx([6, 6, 4, 8, 8])
    assert (held_through_scale_down(requested, 30) >= requested).all()


def test_fit_to_pool_keeps_fractional_hour_averages_where_it_fits():
    fitted = fit_to_pool({"a": np.array([10.5, 40.0])}, np.array([64.0, 20.0]), {"a": 1})
    assert fitted["a"].tolist() == [10.5, 20.0]
