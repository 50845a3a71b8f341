"""Replica failures injected into a serving simulation (``fleetsim serve --failures``).

A replica of g GPUs fails when any of its GPUs does: at ``per_gpu_day x g / 24`` per hour, a
Poisson process (:func:`failures_per_replica_hour`). A failed replica serves nothing for the
recovery time (a replacement's start and weights load, :func:`recovery_hours`), then rejoins
empty; the next failure is drawn from its return (an alternating renewal process, so the
long-run share of time down is ``r / (1/rate + r)``). The hourly projection
(:mod:`simulator.fleet.reliability`) uses the same two functions.

In the engine (:func:`simulator.inference.engine.simulate` with a :class:`FailureInjection`),
on a failure:

- the replica's batch, queue, KV cache and prefix cache are emptied; the routers no longer
  send to it (a load-aware router sees it as infinitely loaded, round robin skips it, session
  affinity re-homes its sessions);
- every request on it (queued on it or in its batch; with a shared queue, those in its batch)
  is either retried (``retry``: routed again, keeping its arrival time so that its TTFT and E2E
  include the loss; the tokens it had generated are lost and its first token, admission and
  prefix-cache lookup start over) or failed (status ``failed``, reason ``replica_failure``);
- a request arriving (or retried) while every replica is down waits at the router until one
  comes back (the gateway holds it), up to the deployment's queue cap (``queue_full``).

Failure times come from one random stream per replica derived from the run's seed by a fixed
spawn key (:data:`FAILURE_SPAWN_KEY`), so they depend on neither the traffic nor the other
streams; with injection off nothing is drawn and a run is exactly what it was without it.
Simplifications: the iterations a replica had in progress when it failed are not counted in
its token and KV statistics (their output is lost; their busy time is counted); a failure
does not touch a disaggregated deployment (not supported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.economics.pricing import replica_reload_hours
from simulator.scenario.schema import ServingFailures, SpotPricing

#: A replacement replica starts and loads its weights as a spot replica does after a pre-emption:
#: the defaults (and sources) of SpotPricing's startup_s and reload_gb_per_s.
DEFAULT_STARTUP_S: float = SpotPricing.model_fields["startup_s"].default
DEFAULT_RELOAD_GB_PER_S: float = SpotPricing.model_fields["reload_gb_per_s"].default

#: Spawn key of the failure streams: (FAILURE_SPAWN_KEY, replica) under the run's seed (apart
#: from the request streams' keys, simulator.inference.api.streams).
FAILURE_SPAWN_KEY = 1 << 21


def failures_per_replica_hour(failures: ServingFailures, gpus_per_replica: int) -> float:
    """Failures of one replica per hour: any of its GPUs failing takes it down."""
    return failures.per_gpu_day * gpus_per_replica / 24.0


def recovery_hours(failures: ServingFailures, gpus_per_replica: int, weights_bytes: float) -> float:
    """Hours a failed replica is out: the given recovery, else start + the weights shard load."""
    if failures.recovery_minutes is not None:
        return failures.recovery_minutes / 60.0
    return replica_reload_hours(DEFAULT_STARTUP_S, weights_bytes, gpus_per_replica, DEFAULT_RELOAD_GB_PER_S)


@dataclass(frozen=True)
class FailureInjection:
    """Failures of every replica of a run: a Poisson process at ``rate_per_s`` while up, each
    taking the replica out for ``recovery_s``; the requests on it retried or failed."""

    rate_per_s: float  #: failures per second of one replica while it is up
    recovery_s: float  #: seconds a failed replica serves nothing
    retry: bool = True  #: requests on a failed replica are routed again (else they fail)
    seed: int = 0  #: the run's seed (the failure streams derive from it)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rate_per_s) and self.rate_per_s >= 0):
            raise ValueError(f"rate_per_s (={self.rate_per_s}) must be finite and >= 0")
        if not (np.isfinite(self.recovery_s) and self.recovery_s > 0):
            raise ValueError(f"recovery_s (={self.recovery_s}) must be finite and > 0")

    @classmethod
    def of(cls, failures: ServingFailures, gpus_per_replica: int, weights_bytes: float, seed: int,
           per_gpu_day: float | None = None) -> FailureInjection:  # fmt: skip
        """A deployment's ``failures`` settings (``per_gpu_day`` overriding its rate)."""
        if per_gpu_day is not None:
            failures = failures.model_copy(update={"per_gpu_day": per_gpu_day})
        return cls(failures_per_replica_hour(failures, gpus_per_replica) / 3600.0,
                   recovery_hours(failures, gpus_per_replica, weights_bytes) * 3600.0, failures.retry, seed)  # fmt: skip

    @property
    def down_share(self) -> float:
        """Long-run share of time a replica is down (renewal theory: MTTR / (MTBF + MTTR))."""
        if self.rate_per_s <= 0:
            return 0.0
        return self.recovery_s / (1.0 / self.rate_per_s + self.recovery_s)

    def streams(self, replicas: int) -> list[np.random.Generator]:
        """One generator of failure times per replica (see the module docstring)."""
        sequence = np.random.SeedSequence(self.seed)
        return [np.random.default_rng(np.random.SeedSequence(sequence.entropy, spawn_key=(FAILURE_SPAWN_KEY, i)))
                for i in range(replicas)]  # fmt: skip


@dataclass(frozen=True)
class FailureLog:
    """The failures of a run, one entry per failure: its replica, when it went down and when it
    was (or would have been) back."""

    injection: FailureInjection
    replica: np.ndarray  #: int
    down_s: np.ndarray
    up_s: np.ndarray  #: down_s + recovery_s (may pass the simulation's end)
    retries: np.ndarray  #: per request of the record: times it was retried after a failure

    def in_window(self, start_s: float, end_s: float) -> np.ndarray:
        """Mask of the failures that began in [start_s, end_s)."""
        return (self.down_s >= start_s) & (self.down_s < end_s)

    def down_seconds(self, start_s: float, end_s: float) -> float:
        """Replica-seconds down inside [start_s, end_s] (intervals clipped to it)."""
        lo = np.maximum(self.down_s, start_s)
        hi = np.minimum(self.up_s, end_s)
        return float(np.maximum(hi - lo, 0.0).sum())

    def during(self, times_s: np.ndarray) -> np.ndarray:
        """Mask of the instants at which some replica was down."""
        t = np.asarray(times_s, dtype=float)
        if not len(self.down_s):
            return np.zeros(len(t), dtype=bool)
        # sweep: replicas down at t = failures begun by t - failures over by t
        begun = np.searchsorted(np.sort(self.down_s), t, side="right")
        over = np.searchsorted(np.sort(self.up_s), t, side="right")
        return begun > over
