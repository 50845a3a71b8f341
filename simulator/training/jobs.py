"""Runtime math of one training run: checkpoint segments, interruptions, restarts.

A run needs ``work_s`` seconds of failure-free compute (FLOPs / (GPUs x peak x MFU)). Every
``checkpoint_interval_s`` of progress it writes a checkpoint taking ``checkpoint_s``; no
checkpoint is written at the very end (saving the final weights is part of the job). The run is
thus a chain of *segments* of uninterrupted exposure time

    tau = interval + checkpoint   (n_checkpoints of them), then   tau_last = work - n x interval,

with ``n_checkpoints = ceil(work / interval) - 1``.

Interruptions (hardware/software failures, and on spot pools pre-emptions) arrive as a Poisson
process in exposure time with job-level rate ``Lambda = failure rate + pre-emption rate`` (each is
a per-GPU-day rate x the job's GPUs). An interruption anywhere in a segment, the checkpoint write
included, loses the segment's partial progress (work since the last *completed* checkpoint); the
run then waits ``restart_s`` (no interruptions during the restart) and repeats the segment.

Time accounting (every second of a run's wall time falls in exactly one bucket):

- useful: compute that ends up in the result (``work_s`` for a finished run; for a run cut off at
  the horizon, the progress reached, including progress not yet checkpointed);
- checkpoint: completed checkpoint writes (and a write in progress at the cut-off);
- rework: exposure lost to interruptions (partial work and partial checkpoint writes);
- restart: restart delays.

Everything here is a pure function of numbers and a ``numpy.random.Generator``; no simpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.scenario.schema import FAILURES_PER_GPU_DAY_LLAMA3

SECONDS_PER_HOUR = 3_600.0
SECONDS_PER_DAY = 86_400.0

#: Default failure rate per GPU-day, from the Llama 3 paper (Dubey et al. 2024, "The Llama 3 Herd
#: of Models", Sec. 3.3.4): 419 unexpected job interruptions in a 54-day snapshot of pre-training
#: on 16,384 H100 GPUs -> 419 / (54 x 16,384) = 4.74e-4 per GPU-day (one per ~3 h for the job).
#: Same order as the OPT-175B logbook (Zhang et al. 2022, Sec. 2.5): at least 35 manual restarts
#: in about two months on 992 A100s (~6e-4 per GPU-day, counting manual restarts only).
DEFAULT_FAILURES_PER_GPU_DAY = FAILURES_PER_GPU_DAY_LLAMA3  # 419 / (54 x 16,384)

#: Relative tolerance when counting checkpoints (work an exact multiple of the interval).
_COUNT_TOLERANCE = 1e-9
#: Interruption gaps drawn per call of the generator (speed; deterministic per stream).
_DRAW_BLOCK = 256


@dataclass(frozen=True)
class RunSpec:
    """What one run needs, times in seconds, rates per second for the whole job."""

    work_s: float
    checkpoint_interval_s: float
    checkpoint_s: float = 0.0
    restart_s: float = 0.0
    failure_rate_per_s: float = 0.0
    preemption_rate_per_s: float = 0.0

    def __post_init__(self) -> None:
        checks = {
            "work_s": (self.work_s, self.work_s > 0),
            "checkpoint_interval_s": (self.checkpoint_interval_s, self.checkpoint_interval_s > 0),
            "checkpoint_s": (self.checkpoint_s, self.checkpoint_s >= 0),
            "restart_s": (self.restart_s, self.restart_s >= 0),
            "failure_rate_per_s": (self.failure_rate_per_s, self.failure_rate_per_s >= 0),
            "preemption_rate_per_s": (self.preemption_rate_per_s, self.preemption_rate_per_s >= 0),
        }
        for name, (value, ok) in checks.items():
            if not (ok and math.isfinite(value)):
                rule = "> 0" if name in ("work_s", "checkpoint_interval_s") else ">= 0"
                raise ValueError(f"{name}(={value}) must be finite and {rule}")

    @property
    def interruption_rate_per_s(self) -> float:
        """Lambda: failures plus pre-emptions, per second of exposure."""
        return self.failure_rate_per_s + self.preemption_rate_per_s

    @property
    def n_checkpoints(self) -> int:
        """Checkpoints written: one per full interval of progress, none at the very end."""
        ratio = self.work_s / self.checkpoint_interval_s
        return max(math.ceil(ratio * (1 - _COUNT_TOLERANCE)) - 1, 0)

    @property
    def last_segment_s(self) -> float:
        """Work after the last checkpoint (seconds, > 0 up to rounding)."""
        return self.work_s - self.n_checkpoints * self.checkpoint_interval_s

    @property
    def failure_free_wall_s(self) -> float:
        """Wall time without interruptions: work plus checkpoint writes."""
        return self.work_s + self.n_checkpoints * self.checkpoint_s

    def segments_s(self) -> np.ndarray:
        """Exposure time of each segment (seconds): the chain the run must get through."""
        full = self.checkpoint_interval_s + self.checkpoint_s
        return np.append(np.full(self.n_checkpoints, full), self.last_segment_s)

    def expected_wall_s(self) -> float:
        """Mean wall time with exponential interruptions (seconds), in closed form.

        Per segment of exposure tau, with interruption rate Lambda and restart delay R during
        which nothing fails, the renewal-reward argument gives

            E[T] = (1/Lambda + R) (exp(Lambda tau) - 1):

        attempts are Bernoulli with success probability exp(-Lambda tau), so the number of
        interruptions before success is geometric with mean exp(Lambda tau) - 1; each costs R plus
        E[X | X < tau] = 1/Lambda - tau exp(-Lambda tau) / (1 - exp(-Lambda tau)); adding the
        successful tau simplifies to the formula. It is Daly's (2006, "A higher order estimate of
        the optimum checkpoint interval for restart dumps", FGCS 22) expected-time model with
        failures excluded from the restart period. Segments are independent (memorylessness),
        so the run's mean is the sum over segments.
        """
        rate = self.interruption_rate_per_s
        if rate == 0:
            return self.failure_free_wall_s
        full = self.checkpoint_interval_s + self.checkpoint_s
        growth = self.n_checkpoints * math.expm1(rate * full) + math.expm1(
            rate * self.last_segment_s
        )
        return (1 / rate + self.restart_s) * growth


@dataclass(frozen=True)
class Interruption:
    """One interruption of a run: ``at_s`` seconds after the run started."""

    at_s: float
    kind: str  # "failure" or "preemption"


@dataclass(frozen=True)
class RunOutcome:
    """What happened to a run from its start until it finished or hit the time limit.

    ``wall_s`` is the time the run held its GPUs (seconds) and equals
    ``useful_s + checkpoint_s + rework_s + restart_s`` up to rounding.
    """

    finished: bool
    wall_s: float
    useful_s: float
    checkpoint_s: float
    rework_s: float
    restart_s: float
    failures: int
    preemptions: int
    interruptions: tuple[Interruption, ...] = field(default=())

    @property
    def lost_s(self) -> float:
        """Time not spent on useful work: checkpoint writes + rework + restarts (seconds)."""
        return self.checkpoint_s + self.rework_s + self.restart_s


class _Gaps:
    """Exposure gaps between interruptions and their kinds, drawn in blocks from one stream."""

    def __init__(self, spec: RunSpec, rng: np.random.Generator) -> None:
        self._rate = spec.interruption_rate_per_s
        self._failure_share = spec.failure_rate_per_s / self._rate if self._rate > 0 else 1.0
        self._rng = rng
        self._gaps = np.empty(0)
        self._kinds = np.empty(0)
        self._next = 0

    def next(self) -> tuple[float, str]:
        if self._rate == 0:
            return math.inf, "failure"
        if self._next == len(self._gaps):
            self._gaps = self._rng.exponential(1 / self._rate, _DRAW_BLOCK)
            self._kinds = self._rng.random(_DRAW_BLOCK)
            self._next = 0
        gap, u = float(self._gaps[self._next]), float(self._kinds[self._next])
        self._next += 1
        return gap, "failure" if u < self._failure_share else "preemption"


#: Shortest default checkpoint interval (seconds): with free checkpoints the optimum tends to 0.
MIN_DEFAULT_CHECKPOINT_INTERVAL_S = 60.0


def young_daly_interval_s(checkpoint_s: float, interruption_rate_per_s: float, work_s: float) -> float:
    """Compute time between checkpoints that minimises the expected wall time (seconds).

    Daly's higher-order estimate (Daly 2006, FGCS 22, eq. 37; Young 1974's sqrt(2 C M) to first
    order), with C the checkpoint time and M = 1 / Lambda the mean time between interruptions:

        tau = sqrt(2 C M) [1 + sqrt(C / 2M) / 3 + (C / 2M) / 9] - C     for C < 2 M, else M.

    Without interruptions no checkpoint pays: the interval is the whole run. The result is at
    least :data:`MIN_DEFAULT_CHECKPOINT_INTERVAL_S`.
    """
    if interruption_rate_per_s <= 0:
        return max(work_s, MIN_DEFAULT_CHECKPOINT_INTERVAL_S)
    mtbf = 1 / interruption_rate_per_s
    if checkpoint_s >= 2 * mtbf:
        tau = mtbf
    else:
        x = checkpoint_s / (2 * mtbf)
        tau = math.sqrt(2 * checkpoint_s * mtbf) * (1 + math.sqrt(x) / 3 + x / 9) - checkpoint_s
    return max(tau, MIN_DEFAULT_CHECKPOINT_INTERVAL_S)


#: A run expected to be interrupted more often than this is refused (it would barely progress,
#: and sampling it would take unbounded time and memory): the engine's progress guarantee.
MAX_EXPECTED_INTERRUPTIONS = 100_000


def expected_interruptions(spec: RunSpec) -> float:
    """Expected interruptions before the run finishes: a segment of exposure tau is retried
    until one attempt sees no interruption, e^(Lambda tau) - 1 interruptions on average."""
    rate = spec.interruption_rate_per_s
    if rate == 0:
        return 0.0
    full = spec.checkpoint_interval_s + spec.checkpoint_s
    exponent_full, exponent_last = rate * full, rate * spec.last_segment_s
    if max(exponent_full, exponent_last) > 50:
        return math.inf
    return spec.n_checkpoints * math.expm1(exponent_full) + math.expm1(exponent_last)


def simulate_run(spec: RunSpec, rng: np.random.Generator, limit_s: float = math.inf) -> RunOutcome:
    """Sample one run from its start, stopping at its finish or after ``limit_s`` seconds.

    Iterates over interruptions, not segments: the segments passed between two interruptions are
    counted in closed form, so the cost is O(interruptions). ``rng`` is consumed only when the
    interruption rate is positive. With ``limit_s`` finite the outcome describes the run up to
    the limit (``finished`` False, ``wall_s == limit_s``) when it would end later.
    """
    if not limit_s > 0:
        raise ValueError(f"limit_s(={limit_s}) must be > 0")
    interval, ckpt = spec.checkpoint_interval_s, spec.checkpoint_s
    full = interval + ckpt
    n = spec.n_checkpoints
    gaps = _Gaps(spec, rng)
    done = 0  # completed segments (= checkpoints written)
    t = checkpoint_s = rework_s = restart_s = 0.0
    interruptions: list[Interruption] = []

    def outcome(finished: bool, useful_s: float) -> RunOutcome:
        failures = sum(1 for i in interruptions if i.kind == "failure")
        return RunOutcome(
            finished=finished,
            wall_s=t,
            useful_s=useful_s,
            checkpoint_s=checkpoint_s,
            rework_s=rework_s,
            restart_s=restart_s,
            failures=failures,
            preemptions=len(interruptions) - failures,
            interruptions=tuple(interruptions),
        )

    while True:
        remaining = (spec.work_s - done * interval) + ckpt * (n - done)
        gap, kind = gaps.next()
        left = limit_s - t
        if min(gap, remaining) > left:  # cut off by the limit while exposed
            k = min(int(left // full), n - done)
            partial = left - k * full
            segment_work = interval if done + k < n else spec.last_segment_s
            checkpoint_s += k * ckpt + max(partial - segment_work, 0.0)
            t = limit_s
            return outcome(False, (done + k) * interval + min(partial, segment_work))
        if gap >= remaining:  # no interruption before the end
            checkpoint_s += ckpt * (n - done)
            t += remaining
            return outcome(True, spec.work_s)
        k = min(int(gap // full), n - done)  # segments completed before the interruption
        checkpoint_s += k * ckpt
        rework_s += gap - k * full
        done += k
        t += gap
        interruptions.append(Interruption(at_s=t, kind=kind))
        if spec.restart_s > limit_s - t:  # cut off during the restart
            restart_s += limit_s - t
            t = limit_s
            return outcome(False, done * interval)
        restart_s += spec.restart_s
        t += spec.restart_s
