"""The autoscaler: demand -> replicas, with bounds, scale-up delay and pool limits.

Replicas needed in an hour = ceil(replica-equivalents of load / target utilisation), clamped to
[min_replicas, max_replicas]. A replica-equivalent of a workload is its demand divided by the
capacity of one replica under that workload's SLO (from the inference engine's latency curve);
workloads sharing a deployment add their replica-equivalents.

Scale-up takes ``scale_up_delay_minutes``: replicas asked for at time t serve from t + delay (they
are billed from t). Scale-down is immediate.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.scenario.schema import Autoscaling


def replicas_requested(replica_equivalents: np.ndarray, policy: Autoscaling) -> np.ndarray:
    """Whole replicas the autoscaler asks for each hour."""
    wanted = np.ceil(replica_equivalents / policy.target_utilization - 1e-9)
    return np.clip(wanted, policy.min_replicas, policy.max_replicas)


def replicas_serving(requested: np.ndarray, delay_minutes: float) -> np.ndarray:
    """Hour-averaged replicas able to serve, given the scale-up delay.

    The capacity that serves at time t is what was requested at t - delay, but never more than
    what is requested at t (scale-down is immediate). Averaged over each hour of a step function
    this is min(requested[h], f * requested[h-k-1] + (1 - f) * requested[h-k]) with
    delay = k + f hours.
    """
    lag_hours = delay_minutes / 60
    k = math.floor(lag_hours)
    f = lag_hours - k
    lagged_k = _shift(requested, k)
    lagged_k1 = _shift(requested, k + 1)
    return np.minimum(requested, f * lagged_k1 + (1 - f) * lagged_k)


def _shift(values: np.ndarray, hours: int) -> np.ndarray:
    """values[h - hours], with the first value held before the start (the fleet starts warm)."""
    if hours == 0:
        return values.copy()
    out = np.empty_like(values)
    out[:hours] = values[0]
    out[hours:] = values[:-hours]
    return out


def fit_to_pool(
    requested_gpus: dict[str, np.ndarray], limit_gpus: np.ndarray, gpus_per_replica: dict[str, int]
) -> dict[str, np.ndarray]:
    """Scale each deployment's replicas down proportionally where the pool is short.

    Returns replicas per deployment (whole replicas) whose GPUs sum to at most ``limit_gpus``.
    """
    total = sum(requested_gpus.values(), np.zeros_like(limit_gpus, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(total > limit_gpus, limit_gpus / np.maximum(total, 1e-12), 1.0)
    return {
        name: np.floor(gpus * factor / gpus_per_replica[name] + 1e-9)
        for name, gpus in requested_gpus.items()
    }
