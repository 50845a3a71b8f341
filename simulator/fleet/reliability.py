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

from simulator.common.arrays import divide
from simulator.inference.failures import (  # noqa: F401  (re-exported: the engine injects the same failures)
    DEFAULT_RELOAD_GB_PER_S,
    DEFAULT_STARTUP_S,
    failures_per_replica_hour,
    recovery_hours,
)
from simulator.scenario.schema import Redundancy


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


def zone_spread(replicas: np.ndarray, redundancy: Redundancy) -> np.ndarray:
    """Replicas to hold so that, spread evenly over ``zones`` zones, losing the fullest zone
    (ceil(M / zones) replicas) still leaves the ``replicas`` the load needs: the smallest M with
    M - ceil(M / zones) >= N (N itself without ``survive_zone_loss`` or with one zone)."""
    zones = redundancy.zones
    if zones <= 1 or not redundancy.survive_zone_loss:
        return replicas
    need = np.ceil(np.asarray(replicas, dtype=float) - 1e-9)
    held = np.ceil(need * zones / (zones - 1) - 1e-9)
    for _ in range(3):  # M >= N Z / (Z - 1) is within one or two of the whole answer
        short = held - np.ceil(held / zones - 1e-9) < need
        held = held + short
    return np.where(need > 0, held, 0.0)


#: Below this chance of any replica being down (every hour) the load is read at the mean capacity
#: (one state): the up/down mixture would move attainment by less than this share.
MIXTURE_FROM_DOWN_CHANCE = 1e-3
#: Binomial states are kept until the chance of more replicas down is below this.
MIXTURE_TAIL = 1e-6


def up_states(replicas: np.ndarray, share_down: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """How many of a deployment's replicas are up each hour, as (weight, share up) states.

    Replicas fail independently, each down with probability ``share_down`` (renewal theory), so
    k of R are down with the binomial probability C(R, k) q^k (1 - q)^(R - k), leaving (R - k) / R
    of the capacity; the load per replica up is the load / that. In hours where no replica is
    down with a chance below MIXTURE_FROM_DOWN_CHANCE, one state at the mean share up (1 - q):
    the plain reading at mean capacity; in no such hour at all, that one state alone."""
    q = np.clip(np.asarray(share_down, dtype=float), 0.0, 1.0)
    n = np.rint(np.asarray(replicas, dtype=float))
    mixed = (q > 0) & (1 - (1 - q) ** n >= MIXTURE_FROM_DOWN_CHANCE)
    if not np.any(mixed):
        return [(np.ones_like(q), 1.0 - q)]
    states, weight, left = [], np.where(mixed, (1 - q) ** n, 1.0), np.ones_like(q)
    k = 0
    while True:
        up = np.where(mixed, np.where(n > 0, divide(n - k, n), 1.0), 1.0 - q)
        states.append((weight, up))
        left = left - weight
        if k >= n.max() or float(left.max()) < MIXTURE_TAIL:
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(mixed & (n > k), weight * (n - k) / (k + 1) * divide(q, 1 - q), 0.0)
        k += 1
    total = sum(w for w, _ in states)
    return [(divide(w, total), up) for w, up in states]
