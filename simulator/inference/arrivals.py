"""Arrival processes: when requests reach the deployment.

Each process is a renewal process described by its gap (inter-arrival time) distribution, with the
analytic mean and variance of the gap so tests can check samples against theory. Gaps are drawn as
unit-rate variates divided by the rate, so two runs with the same generator state at different
rates see the same pattern stretched in time (common random numbers across load levels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simulator.scenario.schema import Traffic


class ArrivalProcess(Protocol):
    """A renewal process of requests at ``rate_per_s`` requests per second."""

    rate_per_s: float

    @property
    def mean_gap_s(self) -> float: ...

    @property
    def variance_gap_s2(self) -> float: ...

    def gaps_s(self, rng: np.random.Generator, n: int) -> np.ndarray: ...


@dataclass(frozen=True)
class PoissonArrivals:
    """Poisson process: exponential gaps of mean 1 / ``rate_per_s`` seconds (never clipped)."""

    rate_per_s: float

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0:
            raise ValueError(f"rate_per_s (={self.rate_per_s}) must be > 0")

    @property
    def mean_gap_s(self) -> float:
        return 1.0 / self.rate_per_s

    @property
    def variance_gap_s2(self) -> float:
        return 1.0 / self.rate_per_s**2

    def gaps_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` gaps in seconds."""
        return rng.standard_exponential(n) / self.rate_per_s


@dataclass(frozen=True)
class GammaArrivals:
    """Bursty renewal process: gamma gaps with mean 1 / ``rate_per_s`` and coefficient of
    variation ``cv`` (shape 1/cv^2; cv = 1 is Poisson, cv > 1 bursty, cv < 1 regular)."""

    rate_per_s: float
    cv: float

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0:
            raise ValueError(f"rate_per_s (={self.rate_per_s}) must be > 0")
        if not self.cv > 0:
            raise ValueError(f"cv (={self.cv}) must be > 0")

    @property
    def shape(self) -> float:
        return 1.0 / self.cv**2

    @property
    def mean_gap_s(self) -> float:
        return 1.0 / self.rate_per_s

    @property
    def variance_gap_s2(self) -> float:
        return (self.cv / self.rate_per_s) ** 2

    def gaps_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` gaps in seconds."""
        return rng.standard_gamma(self.shape, n) / (self.shape * self.rate_per_s)


def arrival_process(traffic: Traffic, rate_per_s: float) -> ArrivalProcess:
    """The process a workload's ``traffic.arrival`` names, at ``rate_per_s``."""
    if traffic.arrival == "bursty":
        return GammaArrivals(rate_per_s, traffic.burstiness_cv)
    return PoissonArrivals(rate_per_s)


def arrival_times_s(
    process: ArrivalProcess, rng: np.random.Generator, duration_s: float
) -> np.ndarray:
    """Arrival instants in [0, ``duration_s``) seconds, increasing; the first one a gap after 0.

    Gaps are drawn in blocks sized from the expected count (deterministic for a given generator
    state), so the result depends only on the generator, the process and the duration.
    """
    if duration_s <= 0:
        return np.empty(0)
    expected = process.rate_per_s * duration_s
    sd = math.sqrt(expected * process.variance_gap_s2 / process.mean_gap_s**2 + 1.0)
    block = int(expected + 6 * sd + 16)
    times = np.cumsum(process.gaps_s(rng, block))
    while times[-1] < duration_s:
        more = times[-1] + np.cumsum(process.gaps_s(rng, block))
        times = np.concatenate([times, more])
    return times[: int(np.searchsorted(times, duration_s, side="left"))]
