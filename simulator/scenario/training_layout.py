"""A training job's layout on its pool: the shape the step-time model needs, and the search.

In the scenario layer because "does this job fit in GPU memory" is a validation question
(``fleetsim validate`` reports it at the job's FILE:LINE); :mod:`simulator.training.plan` uses
the same resolution for the job's speed.
"""

from __future__ import annotations

from functools import lru_cache

from simulator.perf.lora import adapter_active_parameters, lora_training_flops
from simulator.perf.profile import EfficiencyParameters
from simulator.perf.roofline import training_flops
from simulator.perf.training import (
    LayoutError,
    LayoutRequest,
    StepTime,
    TrainingJobShape,
    best_layout,
    default_global_batch_tokens,
)
from simulator.scenario.resolve import gpu_of, model_of, profile_for_pool
from simulator.scenario.schema import Scenario, TrainingJob


def job_flops(scenario: Scenario, job: TrainingJob) -> float:
    """Model FLOPs of one run: 6 N D plus attention, or the LoRA count (4 N D + adapters)."""
    model = model_of(scenario, job.model)
    if job.method == "lora":
        return lora_training_flops(model, job.tokens, job.sequence_length_tokens, job.lora_rank)
    return training_flops(model, job.tokens, job.sequence_length_tokens)


@lru_cache(maxsize=256)
def _best(shape: TrainingJobShape, request: LayoutRequest, eff: EfficiencyParameters) -> StepTime:
    return best_layout(shape, request, eff)


def job_step(scenario: Scenario, job: TrainingJob) -> StepTime:
    """The job's layout (as given, the rule for the rest) and its step time on its pool.

    Raises :class:`simulator.perf.training.LayoutError` when no layout fits in memory.
    """
    pool = scenario.pool(job.pool)
    model = model_of(scenario, job.model)
    lora = job.method == "lora"
    shape = TrainingJobShape(
        model=model,
        gpu=gpu_of(scenario, pool),
        dtype=job.dtype,
        gpus=job.gpus,
        sequence_length_tokens=job.sequence_length_tokens,
        global_batch_tokens=job.global_batch_tokens
        or default_global_batch_tokens(job_flops(scenario, job)),
        method=job.method,
        lora_parameters=adapter_active_parameters(model, job.lora_rank) if lora else 0.0,
        overlap_expert_communication=job.overlap_expert_communication,
    )
    request = LayoutRequest(
        tensor_parallel=job.tensor_parallel,
        pipeline_parallel=job.pipeline_parallel,
        context_parallel=job.context_parallel,
        expert_parallel=job.expert_parallel,
        virtual_stages=job.virtual_pipeline_stages,
        micro_batch_sequences=job.micro_batch_sequences,
        recompute=job.activation_recompute,
        sharding=job.data_parallel_sharding,
    )
    return _best(shape, request, profile_for_pool(scenario, pool).parameters)


def layout_message(scenario: Scenario, job: TrainingJob, error: LayoutError) -> str:
    """``error`` as said of ``job``: which model on how many of which GPU, and why."""
    return f"{job.model} on {job.gpus} x {scenario.pool(job.pool).gpu}: {error}"


def layout_problem(scenario: Scenario, job: TrainingJob) -> str | None:
    """Why no layout of ``job`` runs on its pool (memory, divisibility), or None."""
    try:
        job_step(scenario, job)
    except KeyError:  # no calibration profile for the pool's GPU: reported by its own check
        return None
    except LayoutError as exc:
        return layout_message(scenario, job, exc)
    return None
