"""From a scenario's training jobs to what the engine runs: run specs, releases, deadlines.

Conventions (all documented for users in the engine's docstring):

- Every date is the instant 00:00 of that day; engine time is seconds since
  ``horizon.start`` 00:00.
- MFU: the job's ``mfu:`` if given, else ``training_mfu`` of the pool's calibration profile
  (:func:`simulator.scenario.resolve.profile_for_pool`: the pool's profile, else the scenario's, else the
  bundled one of the pool's GPU; e.g. 0.40 for h100-sxm, from the Llama 3 paper's 38-43% BF16 MFU).
- Compute: ``method: full`` costs :func:`simulator.perf.roofline.training_flops` (6 N D plus
  attention); ``method: lora`` costs :func:`simulator.perf.lora.lora_training_flops` (4 N D plus
  the adapters' 6 N_lora D plus attention: no weight gradients for the frozen base). Both run at
  GPUs x peak for the dtype x MFU.
- Failures: the job's ``failures_per_gpu_day`` if given, else
  :data:`~simulator.training.jobs.DEFAULT_FAILURES_PER_GPU_DAY`; pre-emptions only on spot pools
  (``pricing.preemptions_per_gpu_day``); both scaled by the job's GPUs.
- Releases: run k of a job is released at ``start + k x repeat_every_months`` (calendar months,
  always counted from ``start``); a one-off job has run 0 only. Recurrences stop after
  ``repeat_until`` (inclusive; run 0 is always released) or at the horizon end (exclusive). Of
  the runs released on or before the horizon start, only the latest one is kept and it is
  released at the horizon start (it is the run in progress when the projection begins); earlier
  ones belong to the past. Jobs starting on or after the horizon end have no runs.
- Deadlines: a one-off job's ``deadline:`` applies to its run. A periodic run must finish by the
  next nominal release ``start + (k+1) x repeat_every_months``; the job's ``deadline:``, if set,
  also applies to run 0, whose deadline is then the earlier of the two.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from simulator.common.errors import Problem, ScenarioError
from simulator.perf.lora import lora_training_flops
from simulator.perf.roofline import training_flops, training_time_s
from simulator.scenario.resolve import gpu_of, model_of, profile_for_pool
from simulator.scenario.schema import Horizon, Scenario, TrainingJob, add_months
from simulator.training.jobs import (
    DEFAULT_FAILURES_PER_GPU_DAY,
    MAX_EXPECTED_INTERRUPTIONS,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    RunSpec,
    expected_interruptions,
)


@dataclass(frozen=True)
class JobPlan:
    """A training job resolved against the catalog and its pool (one spec for all its runs)."""

    index: int  # position in scenario.training_jobs (names random streams and tie-breaks)
    job: TrainingJob
    pool: str
    mfu: float
    mfu_source: str  # "job" or "profile:<profile name>"
    flops: float  # per run
    spec: RunSpec


@dataclass(frozen=True)
class Release:
    """One run of a job: its calendar index, release time and deadline (seconds from start)."""

    run: int
    nominal: dt.date  # start + run x period, before clamping to the horizon start
    release_s: float  # >= 0
    deadline_s: float | None  # may be negative (before the horizon start)


def day_start_s(day: dt.date, origin: dt.date) -> float:
    """Seconds from ``origin`` 00:00 to ``day`` 00:00."""
    return (day - origin).days * SECONDS_PER_DAY


def horizon_hours(horizon: Horizon) -> int:
    """Hours in the horizon (``end - start``)."""
    return (horizon.end - horizon.start).days * 24


def plan_job(scenario: Scenario, index: int) -> JobPlan:
    """Resolve job ``index``: FLOPs, MFU, failure-free compute time, rates."""
    job = scenario.training_jobs[index]
    pool = scenario.pool(job.pool)
    gpu = gpu_of(scenario, pool)
    model = model_of(scenario, job.model)
    if job.mfu is not None:
        mfu, source = job.mfu, "job"
    else:
        profile = profile_for_pool(scenario, pool)
        mfu, source = profile.parameters.training_mfu, f"profile:{profile.name}"
    if job.method == "lora":
        flops = lora_training_flops(model, job.tokens, job.sequence_length_tokens, job.lora_rank)
        work_s = flops / (job.gpus * gpu.peak_flops_per_s(gpu.compute_dtype_for(job.dtype)) * mfu)
    else:
        flops = training_flops(model, job.tokens, job.sequence_length_tokens)
        work_s = training_time_s(
            model, job.tokens, job.gpus, gpu, job.dtype, job.sequence_length_tokens, mfu
        )
    per_gpu_day = (
        job.failures_per_gpu_day
        if job.failures_per_gpu_day is not None
        else DEFAULT_FAILURES_PER_GPU_DAY
    )
    preempt_per_gpu_day = (
        pool.pricing.preemptions_per_gpu_day if pool.pricing.kind == "spot" else 0.0
    )
    spec = RunSpec(
        work_s=work_s,
        checkpoint_interval_s=job.checkpoint_interval_hours * SECONDS_PER_HOUR,
        checkpoint_s=job.checkpoint_minutes * 60.0,
        restart_s=job.restart_minutes * 60.0,
        failure_rate_per_s=per_gpu_day * job.gpus / SECONDS_PER_DAY,
        preemption_rate_per_s=preempt_per_gpu_day * job.gpus / SECONDS_PER_DAY,
    )
    expected = expected_interruptions(spec)
    if expected > MAX_EXPECTED_INTERRUPTIONS:
        every_s = 1 / spec.interruption_rate_per_s
        raise ScenarioError([Problem(
            ("training_jobs", job.name, "failures_per_gpu_day"),
            f"at {per_gpu_day + preempt_per_gpu_day:g} interruptions per GPU-day on {job.gpus} GPUs (one "
            f"every {every_s:,.0f} s) a {job.checkpoint_interval_hours:g}-hour checkpoint segment almost "
            f"never completes (~{expected:,.3g} expected interruptions, at most "
            f"{MAX_EXPECTED_INTERRUPTIONS:,}); shorten checkpoint_interval_hours or lower the rate",
        )], f"scenario {scenario.name!r}")  # fmt: skip
    return JobPlan(
        index=index,
        job=job,
        pool=pool.name,
        mfu=mfu,
        mfu_source=source,
        flops=flops,
        spec=spec,
    )


def releases(job: TrainingJob, horizon: Horizon) -> list[Release]:
    """The runs of ``job`` released inside the horizon, in release order (see module doc)."""
    end = horizon.end
    period = job.repeat_every_months
    nominal: list[tuple[int, dt.date]] = []
    k = 0
    while True:
        day = job.start if period is None else add_months(job.start, k * period)
        if day >= end or (k > 0 and job.repeat_until is not None and day > job.repeat_until):
            break
        nominal.append((k, day))
        if period is None:
            break
        k += 1
    past = [i for i, (_, day) in enumerate(nominal) if day <= horizon.start]
    if past:
        nominal = nominal[past[-1] :]
    out = []
    for k, day in nominal:
        deadlines = []
        if period is not None:
            deadlines.append(add_months(job.start, (k + 1) * period))
        if job.deadline is not None and k == 0:
            deadlines.append(job.deadline)
        deadline = min(deadlines) if deadlines else None
        out.append(
            Release(
                run=k,
                nominal=day,
                release_s=max(day_start_s(day, horizon.start), 0.0),
                deadline_s=None if deadline is None else day_start_s(deadline, horizon.start),
            )
        )
    return out
