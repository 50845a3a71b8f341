"""Demand shapes: means, peaks, weekly and growth factors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from simulator.fleet.demand import (
    diurnal_factor,
    growth_factor,
    hourly_requests_per_s,
    timeline,
    weekly_factor,
)  # fmt: skip
from simulator.scenario.schema import Horizon, Traffic


@pytest.mark.parametrize("peak", [1.0, 1.3, 1.8, 3.0])
def test_diurnal_mean_one_and_peak(peak):
    traffic = Traffic(requests_per_second=1, diurnal_peak_to_mean=peak, peak_hour_utc=15)
    fine = np.arange(0, 24, 1 / 64)
    # hour-averaged shape has mean 1 over the day
    hourly = diurnal_factor(np.arange(24.0), traffic)
    assert hourly.mean() == pytest.approx(1.0, rel=1e-3)
    if peak > 1:
        assert np.argmax(hourly) in (14, 15)
    # the continuous shape peaks at the given ratio
    a_shape = diurnal_factor(fine, traffic)
    assert a_shape.max() == pytest.approx(peak, rel=0.02)


def test_weekly_factor_mean_one_and_ratio():
    days = np.arange(7)
    f = weekly_factor(days, 0.7)
    assert f.mean() == pytest.approx(1.0)
    assert f[5] / f[0] == pytest.approx(0.7)


def test_growth_compounds_monthly():
    hours_per_month = 365.2425 / 12 * 24
    assert growth_factor(np.array([12 * hours_per_month]), 0.05)[0] == pytest.approx(1.05**12)


def test_timeline_months_and_hours():
    line = timeline(Horizon(start=dt.date(2027, 1, 1), months=3))
    assert line.hours == (31 + 28 + 31) * 24
    assert np.bincount(line.month_index).tolist() == [31 * 24, 28 * 24, 31 * 24]


def test_events_multiply_traffic():
    traffic = Traffic(requests_per_second=10, events=[{"start": "2027-01-02", "days": 1, "multiplier": 3}])
    line = timeline(Horizon(start=dt.date(2027, 1, 1), months=1))
    rate = hourly_requests_per_s(traffic, line)
    assert rate[24:48] == pytest.approx(3 * rate[0:24], rel=1e-3)
    assert rate[48] == pytest.approx(rate[0], rel=1e-3)


def test_flat_traffic_mean_is_base():
    traffic = Traffic(requests_per_second=7, diurnal_peak_to_mean=2.0, weekend_factor=0.5)
    line = timeline(Horizon(start=dt.date(2027, 1, 4), months=1))  # Monday
    rate = hourly_requests_per_s(traffic, line)[: 28 * 24]  # four whole weeks
    assert rate.mean() == pytest.approx(7, rel=1e-3)
