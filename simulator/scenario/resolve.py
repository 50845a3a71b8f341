"""From a validated scenario to the objects engines need: catalog entries, profiles, cost models."""

from __future__ import annotations

from simulator.catalog import Catalog, GpuSpec, ModelSpec, bundled_catalog
from simulator.perf.profile import CalibrationProfile, EfficiencyParameters, bundled_profile
from simulator.perf.roofline import ServingCostModel
from simulator.perf.speculative import draft_head_model, expected_tokens_per_iteration
from simulator.scenario.schema import Deployment, Pool, Scenario


def catalog_for(scenario: Scenario) -> Catalog:
    """The bundled catalog with the scenario's own entries merged in by name."""
    return bundled_catalog().merged(scenario.catalog.gpus, scenario.catalog.models)


def gpu_of(scenario: Scenario, pool: Pool) -> GpuSpec:
    return catalog_for(scenario).gpus[pool.gpu]


def model_of(scenario: Scenario, name: str) -> ModelSpec:
    return catalog_for(scenario).models[name]


def draft_model_of(scenario: Scenario, deployment: Deployment) -> ModelSpec | None:
    """The model that drafts for ``deployment``'s speculative decoding (None: no speculation):
    the named catalog model, or a one-layer head of the target (method ``mtp``)."""
    spec = deployment.speculative
    if spec is None:
        return None
    if spec.method == "mtp":
        return draft_head_model(model_of(scenario, deployment.model))
    return model_of(scenario, spec.draft_model)  # type: ignore[arg-type]


def decode_tokens_per_iteration(deployment: Deployment) -> float:
    """Tokens one decode iteration emits per request: 1, or with speculative decoding
    E[accepted + 1] at the deployment's acceptance rate."""
    spec = deployment.speculative
    if spec is None:
        return 1.0
    return expected_tokens_per_iteration(spec.acceptance_rate, spec.draft_tokens)


def profile_for_pool(scenario: Scenario, pool: Pool) -> CalibrationProfile:
    """The pool's profile, else the scenario's, else the bundled default for the pool's GPU."""
    chosen = pool.calibration if pool.calibration is not None else scenario.calibration
    if chosen is None:
        chosen = pool.gpu
    return bundled_profile(chosen) if isinstance(chosen, str) else chosen


def serving_cost_model(scenario: Scenario, deployment: Deployment | str) -> ServingCostModel:
    """The iteration-time model of one replica of ``deployment``."""
    dep = scenario.deployment(deployment) if isinstance(deployment, str) else deployment
    pool = scenario.pool(dep.pool)
    return deployment_cost_model(dep, model_of(scenario, dep.model), gpu_of(scenario, pool),
                                 profile_for_pool(scenario, pool).parameters)  # fmt: skip


def deployment_cost_model(
    dep: Deployment, model: ModelSpec, gpu: GpuSpec, efficiency: EfficiencyParameters
) -> ServingCostModel:
    """The iteration-time model of one replica of ``dep`` on ``gpu`` priced with ``efficiency``
    (for callers that resolve the catalog and profile themselves, e.g. benchmark replays)."""
    return ServingCostModel(
        model=model,
        gpu=gpu,
        dtype=dep.dtype,
        kv_dtype=dep.kv_dtype,
        tensor_parallel=dep.tensor_parallel,
        efficiency=efficiency,
        host_overhead_scale=dep.preset.iteration_overhead_scale,
        expert_parallel=dep.expert_parallel,
    )


def kv_memory_options(deployment: Deployment) -> dict[str, int | bool]:
    """Keyword arguments of :func:`simulator.perf.memory.kv_cache_blocks` beyond the basics:
    the activation reserve's batch shape and the engine's memory-fraction semantics."""
    return {"max_batched_tokens": deployment.max_batched_tokens,
            "max_batch_size": deployment.max_batch_size,
            "fraction_of_free": deployment.preset.memory_fraction_of_free}  # fmt: skip
