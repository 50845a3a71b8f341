"""Reading latency off the inference engine's curves, and mixing distributions over time.

An hour whose load per replica lies between two simulated load points is treated as a mixture of
those points' latency distributions (weights from linear interpolation in load). A month's (or
the horizon's) distribution is then the request-weighted mixture of its hours, so its p95 is a
quantile of that mixture, never an average of hourly p95s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simulator.common.arrays import divide

#: Latency values at which mixture CDFs are evaluated (quantiles are interpolated between them).
MAX_GRID_POINTS = 4000


class CurveLike(Protocol):
    rates_per_replica: np.ndarray
    quantile_levels: np.ndarray
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    e2e_ms: np.ndarray
    slo_attainment: np.ndarray
    busy_fraction: np.ndarray
    prefill_busy_fraction: np.ndarray  # share of time in iterations that run prefill
    capacity_per_replica: float


def sizing_capacity(curve: CurveLike) -> float:
    """Requests/s one replica serves within the SLO; the lowest simulated rate if none does."""
    if curve.capacity_per_replica > 0:
        return float(curve.capacity_per_replica)
    return float(curve.rates_per_replica[0])


def point_weights(curve: CurveLike, load_per_replica: np.ndarray) -> np.ndarray:
    """(hours, points) interpolation weights of each hour's load on the curve's rate grid.

    Loads below the first point read the first point; above the last, the last point.
    """
    rates = np.asarray(curve.rates_per_replica, dtype=float)
    x = np.clip(load_per_replica, rates[0], rates[-1])
    upper = np.clip(np.searchsorted(rates, x, side="right"), 1, len(rates) - 1)
    lower = upper - 1
    span = rates[upper] - rates[lower]
    t = divide(x - rates[lower], span)
    weights = np.zeros((len(x), len(rates)))
    rows = np.arange(len(x))
    weights[rows, lower] = 1 - t  # upper == lower + 1 always
    weights[rows, upper] = t
    return weights


@dataclass(frozen=True)
class Mixture:
    """Request weights on the load points of one or more curves, per period (e.g. month)."""

    curves: list[CurveLike]
    weights: list[np.ndarray]  # per curve: (periods, points)

    def total(self) -> np.ndarray:
        return sum(w.sum(axis=1) for w in self.weights)

    def attainment(self) -> np.ndarray:
        """Request-weighted SLO attainment per period (NaN where no requests)."""
        met = sum(w @ np.asarray(c.slo_attainment) for c, w in zip(self.curves, self.weights, strict=True))
        total = self.total()
        return divide(met, total, np.nan)

    def quantiles(self, metric: str, levels: list[float]) -> np.ndarray:
        """(periods, len(levels)) quantiles of the mixture of ``metric`` (ttft_ms, tpot_ms...)."""
        grid = np.unique(np.concatenate([np.asarray(getattr(c, metric)).ravel() for c in self.curves]))
        if len(grid) > MAX_GRID_POINTS:  # keep every value's neighbourhood, evenly in rank
            grid = grid[np.linspace(0, len(grid) - 1, MAX_GRID_POINTS).round().astype(int)]
        cdf = np.zeros((len(self.total()), len(grid)))
        for curve, w in zip(self.curves, self.weights, strict=True):
            q_levels = np.asarray(curve.quantile_levels, dtype=float)
            point_cdfs = np.stack(
                [np.interp(grid, np.asarray(row, dtype=float), q_levels, left=0.0, right=1.0)
                 for row in getattr(curve, metric)]
            )  # fmt: skip
            cdf += w @ point_cdfs
        total = self.total()
        with np.errstate(invalid="ignore", divide="ignore"):
            mixed = np.maximum.accumulate(cdf / total[:, None], axis=1)
        out = np.stack([_invert(mixed, grid, p) for p in levels], axis=1)
        out[total <= 0] = np.nan
        return out


def _invert(cdf: np.ndarray, grid: np.ndarray, p: float) -> np.ndarray:
    """Per row of ``cdf`` (periods, grid): the value where the CDF reaches p (linear between)."""
    index = np.clip((cdf < p).sum(axis=1), 1, len(grid) - 1)
    rows = np.arange(len(cdf))
    lo, hi = cdf[rows, index - 1], cdf[rows, index]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(np.where(hi > lo, (p - lo) / (hi - lo), 1.0), 0.0, 1.0)
    value = grid[index - 1] + t * (grid[index] - grid[index - 1])
    return np.where(cdf[:, 0] >= p, grid[0], value)
