"""Values that change over the horizon: steps by date, and route shares with linear ramps.

Pure functions of the scenario's schedule entries; the projection evaluates them per hour.
A date means 00:00 UTC of that day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from simulator.scenario.schema import Route


def hours_since(start: dt.date, day: dt.date) -> float:
    """Hours from ``start`` 00:00 to ``day`` 00:00."""
    return (pd.Timestamp(day) - pd.Timestamp(start)) / pd.Timedelta(hours=1)


def stepped(base: float, steps: Sequence[tuple[dt.date, float]], start: dt.date, hours: int) -> np.ndarray:
    """Hourly values: ``base`` until the first step's date, then each step's value."""
    out = np.full(hours, float(base))
    for day, value in steps:
        first = max(int(np.ceil(hours_since(start, day))), 0)
        out[first:] = value
    return out


def share_at_hours(route: Route, start: dt.date, hour_points: np.ndarray) -> np.ndarray:
    """A route's scheduled share at the given times (hours since ``start``), ramps linear."""
    share = np.full(hour_points.shape, float(route.share))
    previous = float(route.share)
    for step in route.schedule:
        begin = hours_since(start, step.from_date)
        span = step.ramp_days * 24
        if span > 0:
            t = np.clip((hour_points - begin) / span, 0.0, 1.0)
            ramped = previous + (step.share - previous) * t
            share = np.where(hour_points >= begin, ramped, share)
        else:
            share = np.where(hour_points >= begin, step.share, share)
        previous = step.share
    return share


def route_share_hourly(route: Route, start: dt.date, hours: int) -> np.ndarray:
    """Share of each hour (evaluated at the hour's middle)."""
    return share_at_hours(route, start, np.arange(hours) + 0.5)


def breakpoints(routes: Sequence[Route], start: dt.date) -> np.ndarray:
    """Times (hours since start) where any route's share changes slope: where sums are checked."""
    points = {0.0}
    for route in routes:
        for step in route.schedule:
            begin = hours_since(start, step.from_date)
            points.update({begin, begin + step.ramp_days * 24})
    return np.array(sorted(points))
