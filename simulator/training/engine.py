"""Job-level discrete-event simulation of training runs sharing GPU pools (simpy).

Time is seconds since ``horizon.start`` 00:00; hour ``h`` of the horizon is ``[3600 h, 3600 (h+1))``.

Semantics (what the results mean):

- **Capacity.** In hour ``h`` a pool offers ``available_gpus_by_pool[pool][h]`` GPUs to training
  (negative values count as 0; a pool missing from the dict offers its ``max_gpus``). A run
  starts at time ``t`` only if that offer minus the GPUs held by training runs already running
  in the pool is at least the run's GPUs. Once started, a run keeps its GPUs until it finishes,
  through failures, pre-emptions and restarts: running training is *not* pre-empted when the
  offer later drops (inference growth), so GPUs held may then exceed the offer until it ends.
- **Queue.** Per pool, strict FIFO by priority, no backfilling: runs are ordered by
  (higher ``priority`` first, then earlier release, then the job's position in the scenario,
  then run index); only the head may start, so a head that does not fit blocks every run behind
  it, even smaller ones. The queue is examined after every release and every finish, and at the
  first hour boundary where the blocked head would fit. All releases and finishes at one
  instant are processed before the queue is examined, so priority decides among runs released
  together.
- **Runs.** Releases, deadlines, MFU and failure defaults: see :mod:`simulator.training.plan`;
  the run's wall time (checkpoints, interruptions, restarts): :mod:`simulator.training.jobs`.
  Runs of one periodic job are independent: a run may start while the previous one still runs.
- **Hardware refresh.** A run is planned (speed, MFU) on the GPUs its pool has when it starts
  (:mod:`simulator.economics.refresh`) and keeps that speed to its end.
- **Horizon end.** A run still running has ``finished_at`` NaT (status ``running``) and its
  held hours counted up to the horizon end; a run never started (status ``queued``) holds
  nothing. Jobs without a run released inside the horizon (start on or after its end) have no
  rows in ``runs`` and an all-zero ``gpus_held_by_job`` array.
- **Randomness.** ``rng`` is spawned into one child per job (scenario order), each job's child
  into one child per run (calendar index), so each run's interruptions depend only on the seed
  and its job's position, never on the order events happen in.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from simulator.economics.refresh import era_of_hour, pool_eras, scenario_at
from simulator.scenario.schema import Scenario
from simulator.training.hourly import add_interval
from simulator.training.jobs import SECONDS_PER_HOUR, RunOutcome, simulate_run
from simulator.training.plan import JobPlan, Release, horizon_hours, plan_job, releases
from simulator.training.result import EVENT_COLUMNS, RUN_COLUMNS, TrainingResult, frame

#: GPUs: slack when comparing a float offer with a job's GPUs.
_GPU_TOLERANCE = 1e-9
#: Seconds: a time this close below an hour boundary counts as the next hour (float rounding of
#: simpy's now + delay).
_TIME_TOLERANCE_S = 1e-6


@dataclass(eq=False)
class _Run:
    plan: JobPlan
    release: Release
    rng: np.random.Generator
    started_s: float | None = None
    outcome: RunOutcome | None = None

    @property
    def gpus(self) -> int:
        return self.plan.job.gpus

    @property
    def queue_key(self) -> tuple[int, float, int, int]:
        return (-self.plan.job.priority, self.release.release_s, self.plan.index, self.release.run)


@dataclass(eq=False)
class _Pool:
    name: str
    available: np.ndarray  # (hours,), GPUs offered to training, >= 0
    held: float = 0.0  # GPUs held by running training runs
    queue: list[tuple[tuple[int, float, int, int], _Run]] = field(default_factory=list)
    dispatch_pending: bool = False
    next_check_s: float = math.inf  # earliest pending capacity re-check


class TrainingEngine:
    """One simulation of a scenario's training jobs; call :meth:`run` once."""

    def __init__(
        self,
        scenario: Scenario,
        available_gpus_by_pool: dict[str, np.ndarray],
        rng: np.random.Generator,
    ) -> None:
        self.scenario = scenario
        self.hours = horizon_hours(scenario.horizon)
        self.horizon_s = self.hours * SECONDS_PER_HOUR
        self.pools = {
            pool.name: _Pool(
                pool.name, self._offer(pool.name, pool.max_gpus, available_gpus_by_pool)
            )
            for pool in scenario.pools
        }
        unknown = sorted(set(available_gpus_by_pool) - set(self.pools))
        if unknown:
            raise ValueError(
                f"available_gpus_by_pool names unknown pools {unknown} "
                f"(known: {sorted(self.pools)})"
            )
        self.plans = [plan_job(scenario, i) for i in range(len(scenario.training_jobs))]
        self._eras = {pool.name: pool_eras(scenario, pool, self.hours) for pool in scenario.pools}
        self._era_plans: dict[tuple[int, int], JobPlan] = {}
        self.runs: list[list[_Run]] = []
        for plan, job_rng in zip(self.plans, rng.spawn(len(self.plans)), strict=True):
            released = releases(plan.job, scenario.horizon)
            run_rngs = job_rng.spawn(released[-1].run + 1) if released else []
            self.runs.append([_Run(plan, r, run_rngs[r.run]) for r in released])
        self.env = simpy.Environment()
        self._log: list[tuple[float, str, _Run]] = []
        self._done = False

    def _offer(self, name: str, max_gpus: int, given: dict[str, np.ndarray]) -> np.ndarray:
        if name not in given:
            return np.full(self.hours, float(max_gpus))
        offer = np.asarray(given[name], dtype=float)
        if offer.shape != (self.hours,):
            raise ValueError(
                f"available_gpus_by_pool[{name!r}] has shape {offer.shape}; expected "
                f"({self.hours},): one value per hour of the horizon"
            )
        if not np.all(np.isfinite(offer)):
            raise ValueError(f"available_gpus_by_pool[{name!r}] must be finite numbers")
        return np.maximum(offer, 0.0)

    # ---- simulation -----------------------------------------------------------------------
    def run(self) -> TrainingResult:
        """Simulate to the horizon end and collect the result."""
        if self._done:
            raise RuntimeError("a TrainingEngine runs once; build a new one")
        self._done = True
        for job_runs in self.runs:
            if job_runs:
                self.env.process(self._release_job(job_runs))
        self.env.run()
        return self._result()

    def _release_job(self, job_runs: list[_Run]) -> Generator[simpy.Event, Any, None]:
        for run in job_runs:
            delay = run.release.release_s - self.env.now
            if delay > 0:
                yield self.env.timeout(delay)
            pool = self.pools[run.plan.pool]
            heapq.heappush(pool.queue, (run.queue_key, run))
            self._log.append((self.env.now, "release", run))
            self._poke(pool)

    def _after(self, delay_s: float, action: Any) -> None:
        """Call ``action()`` ``delay_s`` from now, after events already scheduled then."""
        self.env.timeout(delay_s).callbacks.append(lambda _event: action())

    def _poke(self, pool: _Pool) -> None:
        """Examine ``pool``'s queue once the events of this instant are all processed."""
        if not pool.dispatch_pending:
            pool.dispatch_pending = True
            self._after(0.0, lambda: self._dispatch(pool))

    def _dispatch(self, pool: _Pool) -> None:
        pool.dispatch_pending = False
        now = self.env.now
        if now >= self.horizon_s:
            return
        hour = min(int((now + _TIME_TOLERANCE_S) // SECONDS_PER_HOUR), self.hours - 1)
        while pool.queue:
            run = pool.queue[0][1]
            if run.gpus > pool.available[hour] - pool.held + _GPU_TOLERANCE:
                self._schedule_check(pool, hour, run.gpus)
                return
            heapq.heappop(pool.queue)
            self._start(run, pool)

    def _schedule_check(self, pool: _Pool, hour: int, gpus: int) -> None:
        """Re-examine the queue at the first later hour where the blocked head would fit."""
        fits = np.flatnonzero(pool.available[hour + 1 :] - pool.held + _GPU_TOLERANCE >= gpus)
        if not len(fits):
            return  # only a finish can unblock it
        at = (hour + 1 + int(fits[0])) * SECONDS_PER_HOUR
        now = self.env.now
        if now < pool.next_check_s <= at:
            return  # a check at or before then is already pending
        pool.next_check_s = at

        def check() -> None:
            if pool.next_check_s <= self.env.now + _TIME_TOLERANCE_S:
                pool.next_check_s = math.inf
            self._poke(pool)

        self._after(at - now, check)

    def _plan_at(self, plan: JobPlan, now_s: float) -> JobPlan:
        """The job planned on the GPUs its pool has at ``now_s`` (a hardware refresh changes
        them; a run keeps the GPUs it started on)."""
        eras = self._eras[plan.pool]
        if len(eras) == 1:
            return plan
        era = era_of_hour(eras, (now_s + _TIME_TOLERANCE_S) / SECONDS_PER_HOUR)
        key = (plan.index, era.index)
        if key not in self._era_plans:
            self._era_plans[key] = plan_job(scenario_at(self.scenario, era.start), plan.index)
        return self._era_plans[key]

    def _start(self, run: _Run, pool: _Pool) -> None:
        now = self.env.now
        run.plan = self._plan_at(run.plan, now)
        outcome = simulate_run(run.plan.spec, run.rng, limit_s=self.horizon_s - now)
        run.started_s, run.outcome = now, outcome
        pool.held += run.gpus
        self._log.append((now, "start", run))
        for interruption in outcome.interruptions:
            self._log.append((now + interruption.at_s, interruption.kind, run))
        if outcome.finished:
            self._after(outcome.wall_s, lambda: self._finish(run, pool))

    def _finish(self, run: _Run, pool: _Pool) -> None:
        pool.held -= run.gpus
        self._log.append((self.env.now, "finish", run))
        self._poke(pool)

    # ---- results --------------------------------------------------------------------------
    def _result(self) -> TrainingResult:
        origin = pd.Timestamp(self.scenario.horizon.start)

        def when(seconds: float | None) -> pd.Timestamp:
            if seconds is None:
                return pd.NaT
            return origin + pd.Timedelta(seconds, unit="s")

        by_pool = {name: np.zeros(self.hours) for name in self.pools}
        by_job = {plan.job.name: np.zeros(self.hours) for plan in self.plans}
        records = []
        for job_runs in self.runs:
            for run in job_runs:
                record = self._record(run, when)
                if run.started_s is not None and run.outcome is not None:
                    end_s = run.started_s + run.outcome.wall_s
                    add_interval(by_pool[run.plan.pool], run.started_s, end_s, run.gpus)
                    add_interval(by_job[run.plan.job.name], run.started_s, end_s, run.gpus)
                records.append(record)
        order = sorted(range(len(self._log)), key=lambda i: self._log[i][0])
        events = [
            {
                "time": when(self._log[i][0]),
                "hour": self._log[i][0] / SECONDS_PER_HOUR,
                "pool": self._log[i][2].plan.pool,
                "job": self._log[i][2].plan.job.name,
                "run": self._log[i][2].release.run,
                "event": self._log[i][1],
                "gpus": self._log[i][2].gpus,
            }
            for i in order
        ]
        return TrainingResult(
            runs=frame(records, RUN_COLUMNS),
            gpus_held_by_pool=by_pool,
            gpus_held_by_job=by_job,
            events=frame(events, EVENT_COLUMNS),
        )

    def _record(self, run: _Run, when: Any) -> dict[str, Any]:
        plan, outcome, gpus = run.plan, run.outcome, run.gpus
        deadline_s = run.release.deadline_s
        finished_s: float | None = None
        if outcome is None or run.started_s is None:
            status, wall_s = "queued", 0.0
            useful = checkpoint = rework = restart = 0.0
            failures = preemptions = 0
        else:
            status = "finished" if outcome.finished else "running"
            wall_s = outcome.wall_s
            if outcome.finished:
                finished_s = run.started_s + wall_s
            useful, checkpoint = outcome.useful_s, outcome.checkpoint_s
            rework, restart = outcome.rework_s, outcome.restart_s
            failures, preemptions = outcome.failures, outcome.preemptions
        missed: bool | Any
        if deadline_s is None:
            missed = False
        elif finished_s is not None:
            missed = finished_s > deadline_s
        else:
            missed = True if deadline_s <= self.horizon_s else pd.NA
        gpu_h = gpus / SECONDS_PER_HOUR
        return {
            "pool": plan.pool,
            "job": plan.job.name,
            "run": run.release.run,
            "status": status,
            "queued_at": when(run.release.release_s),
            "started_at": when(run.started_s),
            "finished_at": when(finished_s),
            "gpus": gpus,
            "mfu": plan.mfu,
            "layout": plan.step.layout.describe(),
            "checkpoint_interval_hours": plan.spec.checkpoint_interval_s / SECONDS_PER_HOUR,
            "flops": plan.flops,
            "compute_hours": plan.spec.work_s / SECONDS_PER_HOUR,
            "wall_hours": wall_s / SECONDS_PER_HOUR,
            "gpu_hours": wall_s * gpu_h,
            "gpu_hours_useful": useful * gpu_h,
            "gpu_hours_lost": (checkpoint + rework + restart) * gpu_h,
            "gpu_hours_checkpoint": checkpoint * gpu_h,
            "gpu_hours_rework": rework * gpu_h,
            "gpu_hours_restart": restart * gpu_h,
            "goodput": useful / wall_s if wall_s > 0 else math.nan,
            "failures": failures,
            "preemptions": preemptions,
            "deadline": when(deadline_s),
            "deadline_missed": missed,
        }


def simulate_training(
    scenario: Scenario,
    available_gpus_by_pool: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> TrainingResult:
    """Simulate every training job of ``scenario`` over its horizon.

    available_gpus_by_pool: per pool, shape (hours,) with hours = (horizon.end - horizon.start)
        in hours, hour 0 starting at horizon.start 00:00: GPUs the pool offers to training in
        that hour. A pool missing from the dict offers its full ``max_gpus``.
    rng: the only source of randomness (failures, pre-emptions); same seed, same result.

    See the module docstring for queueing, capacity and horizon-end semantics.
    """
    return TrainingEngine(scenario, available_gpus_by_pool, rng).run()
