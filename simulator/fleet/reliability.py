"""Serving replicas that fail: the expected capacity lost, and the spares an availability needs.

A replica of g GPUs fails when any of its GPUs does: at ``per_gpu_day x g / 24`` per hour
(failures taken as independent, a Poisson process). It serves nothing until a replacement is up,
``recovery`` hours later (a node and engine start, then the weights shard load). By renewal
theory the long-run share of time a replica is down is ``r / (1/rate + r)``: the mean time to
repair over the mean cycle. The autoscaler holds ``1 / (1 - share)`` times the replicas the load
needs (the expected loss), plus spares: a fixed ``spare_replicas`` (N + k), or the fewest k such
that, with N + k replicas each down independently with that share, P(more than k down) stays
within ``1 - availability_target`` (a binomial tail).
"""

from __future__ import annotations

import math

import numpy as np

from simulator.economics.pricing import replica_reload_hours
from simulator.scenario.schema import Redundancy, ServingFailures, SpotPricing

#: A replacement replica starts and loads its weights as a spot replica does after a pre-emption:
#: the defaults (and sources) of SpotPricing's startup_s and reload_gb_per_s.
DEFAULT_STARTUP_S: float = SpotPricing.model_fields["startup_s"].default
DEFAULT_RELOAD_GB_PER_S: float = SpotPricing.model_fields["reload_gb_per_s"].default


def failures_per_replica_hour(failures: ServingFailures, gpus_per_replica: int) -> float:
    """Failures of one replica per hour: any of its GPUs failing takes it down."""
    return failures.per_gpu_day * gpus_per_replica / 24.0


def recovery_hours(failures: ServingFailures, gpus_per_replica: int, weights_bytes: float) -> float:
    """Hours a failed replica is out: the given recovery, else start + the weights shard load."""
    if failures.recovery_minutes is not None:
        return failures.recovery_minutes / 60.0
    return replica_reload_hours(DEFAULT_STARTUP_S, weights_bytes, gpus_per_replica, DEFAULT_RELOAD_GB_PER_S)


def down_share(rate_per_hour: float, recovery_h: float) -> float:
    """Long-run share of time a replica is down (renewal theory: MTTR / (MTBF + MTTR))."""
    if rate_per_hour <= 0 or recovery_h <= 0:
        return 0.0
    return recovery_h / (1.0 / rate_per_hour + recovery_h)


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X > k) for X ~ Binomial(n, p)."""
    if k >= n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    # sum the lower terms in log space (stable for large n)
    log_p, log_q = math.log(p), math.log1p(-p)
    cdf = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q)
              for i in range(k + 1))  # fmt: skip
    return max(0.0, 1.0 - cdf)


def spares_for(replicas: int, share_down: float, target: float, most: int = 1000) -> int:
    """The fewest spares k with P(more than k of replicas + k down) <= 1 - target."""
    if replicas <= 0 or share_down <= 0:
        return 0
    for k in range(most + 1):
        if binomial_tail(replicas + k, k, share_down) <= 1.0 - target:
            return k
    return most


def spare_replicas(requested: np.ndarray, share_down: np.ndarray, redundancy: Redundancy) -> np.ndarray:
    """Spares held each hour (where ``requested`` > 0): the fixed k plus, with an availability
    target, the binomial spares of that hour's replicas (cached per distinct replica count)."""
    spares = np.where(requested > 0, float(redundancy.spare_replicas), 0.0)
    if redundancy.availability_target is None:
        return spares
    cache: dict[tuple[int, float], int] = {}
    out = spares.copy()
    for i, (n, p) in enumerate(zip(np.ceil(requested - 1e-9).astype(int), share_down, strict=True)):
        if n <= 0:
            continue
        key = (int(n), float(p))
        if key not in cache:
            cache[key] = spares_for(int(n), float(p), redundancy.availability_target)
        out[i] += cache[key]
    return out
