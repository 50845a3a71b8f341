"""From a scenario's training jobs to what the engine runs: run specs, releases, deadlines.

Conventions (all documented for users in the engine's docstring):

- Every date is the instant 00:00 of that day; engine time is seconds since
  ``horizon.start`` 00:00.
- Speed: the step-time model of :mod:`simulator.perf.training` on the job's layout (its
  ``tensor_parallel``/``pipeline_parallel``/... where given, the fastest layout that fits in
  memory for the rest) with the efficiencies of the pool's calibration profile
  (:func:`simulator.scenario.resolve.profile_for_pool`). Failure-free compute time = tokens /
  tokens per second of that layout; its MFU is what the job reports. A job's ``mfu:`` (or a
  profile's ``training_mfu``) overrides the speed: FLOPs / (GPUs x peak for the dtype x MFU); the
  layout is still chosen and must fit in memory. A job no layout fits is a validation error.
- Compute: ``method: full`` costs :func:`simulator.perf.roofline.training_flops` (6 N D plus
  attention); ``method: lora`` costs :func:`simulator.perf.lora.lora_training_flops` (4 N D plus
  the adapters' 6 N_lora D plus attention: no weight gradients for the frozen base).
- Global batch: ``global_batch_tokens``, else DeepSeek LLM's compute-optimal batch for the run's
  FLOPs (:func:`simulator.perf.training.default_global_batch_tokens`), run as whole micro-batches.
- Checkpoints: ``checkpoint_minutes``, else the weights and optimizer state (14 bytes per
  parameter: bf16 weights + fp32 master and Adam moments; adapters only for LoRA, plus nothing for
  the frozen base) over ``checkpoint_storage_gb_per_s_per_gpu`` x GPUs (0.122 GB/s per GPU:
  Llama 3 paper Sec. 3.3.1, Tectonic sustains 2 TB/s for 16,384 GPUs). ``checkpoint_interval_hours``,
  else the Young-Daly optimum for the job's interruption rate
  (:func:`simulator.training.jobs.young_daly_interval_s`).
- Restart: ``restart_minutes`` (default 10: an engineering estimate for relaunch, NCCL set-up and
  checkpoint load at scale; the Llama 3 paper reports cutting job start-up time without a figure.
  With the default failure rate and Young-Daly interval it gives 16,384-GPU Llama 3 405B a
  goodput of ~92%, where Meta reports > 90% effective training time).
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
from simulator.perf.lora import adapter_parameters
from simulator.perf.training import CHECKPOINT_BYTES_PER_PARAMETER, LayoutError, StepTime
from simulator.scenario.resolve import gpu_of, model_of, profile_for_pool
from simulator.scenario.schema import Horizon, Scenario, TrainingJob, add_months
from simulator.scenario.training_layout import job_flops, layout_message
from simulator.scenario.training_layout import job_step as _job_step
from simulator.training.jobs import (
    DEFAULT_FAILURES_PER_GPU_DAY,
    MAX_EXPECTED_INTERRUPTIONS,
    SECONDS_PER_DAY,
    SECONDS_PER_HOUR,
    RunSpec,
    expected_interruptions,
    young_daly_interval_s,
)


@dataclass(frozen=True)
class JobPlan:
    """A training job resolved against the catalog and its pool (one spec for all its runs)."""

    index: int  # position in scenario.training_jobs (names random streams and tie-breaks)
    job: TrainingJob
    pool: str
    mfu: float
    mfu_source: str  # "job", "profile:<name>" (its training_mfu) or "model:<profile name>"
    flops: float  # per run
    spec: RunSpec
    step: StepTime  # the layout and its step-time breakdown (speed from it unless mfu is set)


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


def job_step(scenario: Scenario, job: TrainingJob) -> StepTime:
    """The job's layout and step time (a ScenarioError when none fits, for callers that did
    not validate the scenario first)."""
    try:
        return _job_step(scenario, job)
    except LayoutError as exc:
        raise ScenarioError(
            [Problem(("training_jobs", job.name, "gpus"), layout_message(scenario, job, exc))],
            f"scenario {scenario.name!r}",
        ) from None


def checkpoint_s(scenario: Scenario, job: TrainingJob) -> float:
    """Seconds to write one checkpoint: the job's, else state bytes over storage bandwidth."""
    if job.checkpoint_minutes is not None:
        return job.checkpoint_minutes * 60.0
    model = model_of(scenario, job.model)
    if job.method == "lora":
        state_bytes = adapter_parameters(model, job.lora_rank) * CHECKPOINT_BYTES_PER_PARAMETER
    else:
        state_bytes = model.parameters * CHECKPOINT_BYTES_PER_PARAMETER
    return state_bytes / (job.gpus * job.checkpoint_storage_gb_per_s_per_gpu * 1e9)


def plan_job(scenario: Scenario, index: int) -> JobPlan:
    """Resolve job ``index``: layout, FLOPs, MFU, failure-free compute time, rates."""
    job = scenario.training_jobs[index]
    pool = scenario.pool(job.pool)
    gpu = gpu_of(scenario, pool)
    profile = profile_for_pool(scenario, pool)
    step = job_step(scenario, job)
    flops = job_flops(scenario, job)
    peak = gpu.peak_flops_per_s(gpu.compute_dtype_for(job.dtype))
    if job.mfu is not None or profile.parameters.training_mfu is not None:
        mfu = job.mfu if job.mfu is not None else profile.parameters.training_mfu
        source = "job" if job.mfu is not None else f"profile:{profile.name}"
        work_s = flops / (job.gpus * peak * mfu)
    else:
        work_s = job.tokens / step.tokens_per_s
        mfu, source = flops / (job.gpus * peak * work_s), f"model:{profile.name}"
    per_gpu_day = (
        job.failures_per_gpu_day
        if job.failures_per_gpu_day is not None
        else DEFAULT_FAILURES_PER_GPU_DAY
    )
    preempt_per_gpu_day = (
        pool.pricing.preemptions_per_gpu_day if pool.pricing.kind == "spot" else 0.0
    )
    failure_rate = per_gpu_day * job.gpus / SECONDS_PER_DAY
    preemption_rate = preempt_per_gpu_day * job.gpus / SECONDS_PER_DAY
    write_s = checkpoint_s(scenario, job)
    interval_s = (
        job.checkpoint_interval_hours * SECONDS_PER_HOUR
        if job.checkpoint_interval_hours is not None
        else young_daly_interval_s(write_s, failure_rate + preemption_rate, work_s)
    )
    spec = RunSpec(
        work_s=work_s,
        checkpoint_interval_s=interval_s,
        checkpoint_s=write_s,
        restart_s=job.restart_minutes * 60.0,
        failure_rate_per_s=failure_rate,
        preemption_rate_per_s=preemption_rate,
    )
    expected = expected_interruptions(spec)
    if expected > MAX_EXPECTED_INTERRUPTIONS:
        every_s = 1 / spec.interruption_rate_per_s
        raise ScenarioError([Problem(
            ("training_jobs", job.name, "failures_per_gpu_day"),
            f"at {per_gpu_day + preempt_per_gpu_day:g} interruptions per GPU-day on {job.gpus} GPUs (one "
            f"every {every_s:,.0f} s) a {interval_s / SECONDS_PER_HOUR:g}-hour checkpoint segment almost "
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
        step=step,
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


def job_figures(scenario: Scenario, name: str) -> dict[str, float | int | str]:
    """What ``fleetsim cost --job`` shows: the layout, its step-time breakdown and the run's
    expected wall time with failures, checkpoints and restarts (closed form, no sampling)."""
    names = [j.name for j in scenario.training_jobs]
    if name not in names:
        raise ScenarioError(
            [Problem(("training_jobs",), f"no training job {name!r} (jobs: {', '.join(names) or 'none'})")],
            f"scenario {scenario.name!r}",
        )
    plan = plan_job(scenario, names.index(name))
    step, spec, job = plan.step, plan.spec, plan.job
    expected_wall_s = spec.expected_wall_s()
    # A fixed mfu (job or profile) sets the speed; the shares stay the layout model's.
    speed = job.tokens / spec.work_s
    figures: dict[str, float | int | str] = {
        "layout": step.layout.describe(),
        "gpus": job.gpus,
        "global_batch_tokens": step.tokens_per_step,
        "micro_batches_per_step": step.micro_batches,
        "step_s": step.tokens_per_step / speed,
        "tokens_per_s_per_gpu": speed / job.gpus,
        "mfu": plan.mfu,
        "mfu_source": plan.mfu_source,
    }
    figures.update({f"share_{term}": value for term, value in step.shares().items()})
    figures.update({
        "memory_gib_per_gpu": step.memory_bytes_per_gpu / 2**30,
        "memory_limit_gib_per_gpu": step.memory_limit_bytes / 2**30,
        "compute_hours": spec.work_s / SECONDS_PER_HOUR,
        "checkpoint_write_s": spec.checkpoint_s,
        "checkpoint_interval_hours": spec.checkpoint_interval_s / SECONDS_PER_HOUR,
        "restart_minutes": spec.restart_s / 60.0,
        "interruptions_per_day": spec.interruption_rate_per_s * SECONDS_PER_DAY,
        "expected_wall_hours": expected_wall_s / SECONDS_PER_HOUR,
        "expected_goodput": spec.work_s / expected_wall_s,
        "expected_gpu_hours": expected_wall_s * job.gpus / SECONDS_PER_HOUR,
    })  # fmt: skip
    return figures
