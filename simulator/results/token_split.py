"""Input vs output share of a workload's inference cost, by GPU-time (design.md: $/1M tokens).

A request's GPU-time is its prefill (the prompt tokens not served from the prefix cache, in one
prefill iteration) plus its share of the decode iterations it takes part in: ``output`` steps of a
batch of ``B`` requests, each step costing ``decode_step_s(B, context) / B`` per request. The
representative batch ``B`` is a quarter of the deployment's ``max_batch_size`` (a replica run at
the usual 50-70 % target utilisation rarely fills its batch), capped by the requests whose KV
cache fits in the replica at that context, and at least 1. The context of a decode step is the
mean prompt plus half the mean output (the average over the request's decode steps).

Both parts are multiplied by the replica's GPUs (tensor-parallel degree) so that routes to
deployments of different sizes weigh by GPU-seconds. The split is a cost-model estimate made once
per workload, not a simulated figure; the workbook and summary say so.
"""

from __future__ import annotations

from simulator.economics.retrieval import expected_prefix_hit_rate, model_prompt_tokens_mean
from simulator.scenario.resolve import serving_cost_model
from simulator.scenario.schema import Deployment, Scenario, Workload

#: Representative decode batch as a fraction of the deployment's ``max_batch_size``.
BATCH_FRACTION = 0.25


def gpu_time_shares(prefill_gpu_s: float, decode_gpu_s: float) -> tuple[float, float]:
    """(input share, output share) of GPU-time from the prefill and decode GPU-seconds.

    The shares sum to 1. Raises ValueError when a time is negative or both are zero.
    """
    if prefill_gpu_s < 0 or decode_gpu_s < 0:
        raise ValueError(
            f"GPU-times must be >= 0 (prefill={prefill_gpu_s!r}, decode={decode_gpu_s!r})"
        )
    total = prefill_gpu_s + decode_gpu_s
    if total == 0:
        raise ValueError("prefill and decode GPU-times are both 0: no share to split")
    return prefill_gpu_s / total, decode_gpu_s / total


def representative_batch(scenario: Scenario, deployment: Deployment, context_tokens: float) -> int:
    """Decode batch at which a request's per-token GPU-time is priced (see the module docstring)."""
    from simulator.inference.api import replica_kv_blocks  # adapters take KV memory

    cm = serving_cost_model(scenario, deployment)
    blocks = replica_kv_blocks(cm, deployment)
    fits = int(blocks * deployment.kv_block_tokens // max(context_tokens, 1.0))
    wanted = int(deployment.max_batch_size * BATCH_FRACTION)
    return max(1, min(wanted, fits))


def request_gpu_seconds(
    scenario: Scenario, deployment: Deployment, workload: Workload
) -> tuple[float, float]:
    """GPU-seconds of (prefill, decode) of one mean request of ``workload`` on ``deployment``."""
    cm = serving_cost_model(scenario, deployment)
    prompt = model_prompt_tokens_mean(workload)  # retrieved passages included
    output = workload.output_tokens.mean
    uncached = prompt * (1.0 - expected_prefix_hit_rate(workload))
    context = prompt + output / 2.0
    batch = representative_batch(scenario, deployment, context)
    prefill_s = float(cm.prefill_s(uncached)) if uncached > 0 else 0.0
    decode_s = output * float(cm.decode_step_s(batch, context)) / batch
    gpus = deployment.tensor_parallel
    return prefill_s * gpus, decode_s * gpus


def workload_input_share(scenario: Scenario, workload: str | Workload) -> float:
    """Share of a workload's inference GPU-time spent on its input (prefill), over its routes.

    Routes weigh by their traffic share times the GPU-seconds of a request on their deployment.
    """
    w = scenario.workload(workload) if isinstance(workload, str) else workload
    prefill = decode = 0.0
    for route in w.routes:
        p, d = request_gpu_seconds(scenario, scenario.deployment(route.deployment), w)
        prefill += route.share * p
        decode += route.share * d
    return gpu_time_shares(prefill, decode)[0]
