"""The autoscaler: demand -> replicas, with bounds, scale-up delay and pool limits.

Replicas needed in an hour = ceil(replica-equivalents of peak load / target utilisation), clamped
to [min_replicas, max_replicas]. A replica-equivalent of a workload is its demand (times its
within-hour peak-to-mean) divided by the capacity of one replica under that workload's SLO (from
the inference engine's latency curve, already the highest load meeting the SLO: the margin is not
taken again); workloads sharing a deployment add their replica-equivalents.

Scale-up takes ``scale_up_delay_minutes``: replicas asked for at time t serve from t + delay (they
are billed from t). Scale-down waits ``scale_down_delay_minutes``: a replica no longer needed is
held (and billed) that long.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.common.arrays import shifted, window_max
from simulator.scenario.schema import Autoscaling


def replicas_requested(replica_equivalents: np.ndarray, policy: Autoscaling) -> np.ndarray:
    """Whole replicas the autoscaler asks for each hour."""
    wanted = np.ceil(replica_equivalents / policy.target_utilization - 1e-9)
    return np.clip(wanted, policy.min_replicas, policy.max_replicas)


def held_through_scale_down(requested: np.ndarray, delay_minutes: float) -> np.ndarray:
    """Hour-averaged replicas held when scale-down waits ``delay_minutes``.

    During hour h the replicas held are the most asked for in the last ``delay`` hours (step
    function): with delay = k + f hours, (1 - f) x max(requested[h-k..h]) + f x
    max(requested[h-k-1..h]). Never below ``requested``.
    """
    return window_max(requested, delay_minutes / 60)


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
    lagged_k = shifted(requested, k)
    lagged_k1 = shifted(requested, k + 1)
    return np.minimum(requested, f * lagged_k1 + (1 - f) * lagged_k)


def fit_to_pool(
    requested_gpus: dict[str, np.ndarray], limit_gpus: np.ndarray, gpus_per_replica: dict[str, int]
) -> dict[str, np.ndarray]:
    """Scale each deployment's replicas down proportionally where the pool is short.

    Returns replicas per deployment (whole replicas) whose GPUs sum to at most ``limit_gpus``.
    """
    total = sum(requested_gpus.values(), np.zeros_like(limit_gpus, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(total > limit_gpus, limit_gpus / np.maximum(total, 1e-12), 1.0)
    # where the pool is short, whole replicas; elsewhere as asked (hour averages may be fractional)
    return {
        name: np.where(factor < 1, np.floor(gpus * factor / gpus_per_replica[name] + 1e-9),
                       gpus / gpus_per_replica[name])
        for name, gpus in requested_gpus.items()
    }  # fmt: skip
