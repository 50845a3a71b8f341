"""Headline cost-model figures of one replica, as ``fleetsim cost`` prints them (here, beside
the engine, because its KV limits and speculative timer are the engine's)."""

from __future__ import annotations

from simulator.economics.pricing import full_load_usd_per_gpu_hour
from simulator.inference.api import replica_setup
from simulator.scenario.resolve import decode_tokens_per_iteration, gpu_of, profile_for_pool
from simulator.scenario.schema import Scenario


def replica_cost_figures(
    scenario: Scenario, deployment: str, batch: int, context_tokens: int, prompt_tokens: int
) -> dict[str, float | int | str]:
    """Iteration times, throughput and $ per 1M tokens of one replica at full load.

    Decode: an iteration of ``batch`` requests with ``context_tokens`` each (with speculative
    decoding, its k draft steps and verification, emitting E[tokens per iteration] per
    request at the deployment's acceptance rate).
    Prefill: one prompt of ``prompt_tokens`` (chunked by the deployment's token budget). KV
    capacity after weights, resident LoRA adapters and a draft model, as the engine has it.
    """

    try:
        dep = scenario.deployment(deployment)
    except KeyError as err:
        from simulator.common.errors import Problem, ScenarioError

        raise ScenarioError([Problem(("deployments",), str(err.args[0]))]) from None
    pool = scenario.pool(dep.pool)
    gpu = gpu_of(scenario, pool)
    # a what-if batch past the deployment's limit still gets a timer whose tables reach it
    config, cm, timer = replica_setup(scenario, dep.model_copy(update={"max_batch_size": max(batch, dep.max_batch_size)}))
    tokens_per_iteration = decode_tokens_per_iteration(dep)
    if dep.speculative is None:
        decode_s = float(cm.decode_step_s(batch, context_tokens))
    else:  # one iteration: k draft steps and the verification of b (k + 1) tokens
        decode_s = timer.speculative_iteration_s(batch, batch * context_tokens)
    prefill_s = float(_chunked_prefill_s(cm, prompt_tokens, dep.max_batched_tokens))
    replica_usd_per_hour = dep.tensor_parallel * full_load_usd_per_gpu_hour(pool.pricing, gpu)
    decode_tokens_per_s = batch * tokens_per_iteration / decode_s
    prefill_tokens_per_s = prompt_tokens / prefill_s
    blocks = config.kv_blocks
    per_million = 1e6 / 3600 * replica_usd_per_hour
    return {
        "gpu": gpu.name,
        "calibration_profile": profile_for_pool(scenario, pool).name,
        "tensor_parallel": dep.tensor_parallel,
        "prefill_time_ms": prefill_s * 1e3,
        "prefill_tokens_per_s": prefill_tokens_per_s,
        "decode_iteration_ms": decode_s * 1e3,
        "decode_tokens_per_s": decode_tokens_per_s,
        "decode_tokens_per_iteration": tokens_per_iteration,
        "kv_cache_tokens": blocks * dep.kv_block_tokens,
        "max_requests_at_context": min(dep.max_batch_size, blocks * dep.kv_block_tokens // context_tokens),
        "replica_usd_per_hour": replica_usd_per_hour,
        "usd_per_million_input_tokens": per_million / prefill_tokens_per_s,
        "usd_per_million_output_tokens": per_million / decode_tokens_per_s,
    }


def _chunked_prefill_s(cm, prompt_tokens: int, chunk_tokens: int) -> float:
    """Prefill of one prompt split into chunks of at most ``chunk_tokens`` tokens."""
    total, done = 0.0, 0
    while done < prompt_tokens:
        c = min(chunk_tokens, prompt_tokens - done)
        pairs = c * (done + (c + 1) / 2)
        last = 1 if done + c == prompt_tokens else 0
        total += float(cm.iteration_time_s(prefill_tokens=c, prefill_attention_pairs=pairs,
                                           prefill_sequences=last))
        done += c
    return total
