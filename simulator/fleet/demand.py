"""Hourly demand over the horizon: base x diurnal x weekly x growth x events.

The base is a request rate, or users active at once whose rate follows from their response and
think times (:func:`closed_loop_requests_per_s`).

All functions are vectorised over the hours of the horizon (hour 0 = horizon start, 00:00 UTC).
Rates are mean requests per second over each hour.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.scenario.schema import Horizon, Traffic, add_months

AVERAGE_DAYS_PER_MONTH = 365.2425 / 12


@dataclass(frozen=True)
class Timeline:
    """The hours of a horizon and the calendar month each belongs to."""

    start: pd.Timestamp
    hours: int
    month_index: np.ndarray  # shape (hours,), 0-based calendar month from the start
    month_starts: list[dt.date]  # first day of each month, len = months

    @property
    def timestamps(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=self.hours, freq="h")

    @property
    def months(self) -> int:
        return len(self.month_starts)

    def hour_of(self, day: dt.date) -> int:
        """Index of the hour starting at ``day`` 00:00 (may be outside [0, hours))."""
        return int((pd.Timestamp(day) - self.start) / pd.Timedelta(hours=1))


def timeline(horizon: Horizon) -> Timeline:
    """Hourly timeline of the horizon with calendar-month labels."""
    starts = [add_months(horizon.start, m) for m in range(horizon.months + 1)]
    start = pd.Timestamp(horizon.start)
    hours = int((pd.Timestamp(starts[-1]) - start) / pd.Timedelta(hours=1))
    edges = [int((pd.Timestamp(s) - start) / pd.Timedelta(hours=1)) for s in starts]
    month_index = np.repeat(np.arange(horizon.months), np.diff(edges))
    return Timeline(start=start, hours=hours, month_index=month_index, month_starts=starts[:-1])


@functools.lru_cache(maxsize=256)
def diurnal_concentration(peak_to_mean: float) -> float:
    """Concentration ``a`` of a von Mises daily shape exp(a cos) whose peak/mean is given.

    peak/mean of exp(a cos(theta)) over a day is e^a / I0(a); solved by bisection. The shape is
    smooth, positive for any ratio >= 1, and flat at ratio 1.
    """
    if peak_to_mean <= 1.0:
        return 0.0
    lo, hi = 0.0, 1.0
    while np.exp(hi) / np.i0(hi) < peak_to_mean:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.exp(mid) / np.i0(mid) < peak_to_mean:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def diurnal_factor(hour_of_day: np.ndarray, traffic: Traffic) -> np.ndarray:
    """Daily shape with mean 1 over the day and the given peak/mean at ``peak_hour_utc``.

    Each hour's value is the shape averaged over that hour (midpoint rule on 4 sub-steps).
    """
    a = diurnal_concentration(traffic.diurnal_peak_to_mean)
    if a == 0.0:
        return np.ones_like(hour_of_day, dtype=float)
    sub = (np.arange(4) + 0.5) / 4
    t = hour_of_day[:, None] + sub[None, :]
    theta = 2 * np.pi * (t - traffic.peak_hour_utc) / 24
    return (np.exp(a * np.cos(theta)) / np.i0(a)).mean(axis=1)


def weekly_factor(day_of_week: np.ndarray, weekend_factor: float) -> np.ndarray:
    """Weekend days (Sat, Sun) at ``weekend_factor`` x weekdays, normalised to a weekly mean of 1."""
    weekday = 7 / (5 + 2 * weekend_factor)
    return np.where(day_of_week >= 5, weekend_factor * weekday, weekday)


def growth_factor(elapsed_hours: np.ndarray, growth_per_month: float) -> np.ndarray:
    """Compound monthly growth, continuous in time: 1 at the horizon start."""
    months = elapsed_hours / 24 / AVERAGE_DAYS_PER_MONTH
    return (1 + growth_per_month) ** months


def event_factor(times: pd.DatetimeIndex, traffic: Traffic) -> np.ndarray:
    """Product of the multipliers of the events covering each hour."""
    factor = np.ones(len(times))
    for event in traffic.events:
        start = pd.Timestamp(event.start)
        end = start + pd.Timedelta(days=event.days)
        factor[(times >= start) & (times < end)] *= event.multiplier
    return factor


def hourly_shape(traffic: Traffic, line: Timeline) -> np.ndarray:
    """Each hour's load relative to the first month's mean: diurnal x weekly x growth x events."""
    times = line.timestamps
    elapsed = np.arange(line.hours, dtype=float) + 0.5
    return (
        diurnal_factor(times.hour.to_numpy(dtype=float), traffic)
        * weekly_factor(times.day_of_week.to_numpy(), traffic.weekend_factor)
        * growth_factor(elapsed, traffic.growth_per_month)
        * event_factor(times, traffic)
    )


def hourly_requests_per_s(traffic: Traffic, line: Timeline) -> np.ndarray:
    """Mean arrival rate (req/s) of each hour of an open-loop (request-rate) traffic."""
    assert traffic.requests_per_second is not None
    return traffic.requests_per_second * hourly_shape(traffic, line)


def hourly_users(traffic: Traffic, line: Timeline) -> np.ndarray:
    """Users active at once, each hour, of a closed-loop (concurrent-users) traffic."""
    assert traffic.concurrent_users is not None
    return traffic.concurrent_users * hourly_shape(traffic, line)


def closed_loop_requests_per_s(users: np.ndarray, response_s: np.ndarray, think_s: float) -> np.ndarray:
    """Request rate of ``users`` who each wait ``response_s`` for an answer and think
    ``think_s`` before the next request: X = N / (R + Z), the response-time law."""
    return users / (response_s + think_s)
