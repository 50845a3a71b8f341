"""Speculative decoding: a draft proposes ``k`` tokens, the target verifies them in one pass.

The model (Leviathan, Kalman & Matias, "Fast Inference from Transformers via Speculative
Decoding", ICML 2023, section 3): each drafted token is accepted with probability ``alpha``
independently of the others (the paper's "acceptance rate" beta averaged into alpha); an
iteration stops at the first rejected token, and the target's verification pass always yields
one token of its own (the correction at the first rejection, or a bonus token after ``k``
accepts). So one iteration emits X tokens with

    P(X = j) = alpha^(j-1) (1 - alpha) for j = 1..k,   P(X = k + 1) = alpha^k,
    E[X] = (1 - alpha^(k+1)) / (1 - alpha)                    (the paper's equation 1).

An iteration costs the draft's ``k`` sequential decode steps plus one target pass over
``b x (k + 1)`` tokens (every drafted position and the last accepted token; vLLM's and
SGLang's verification). Because the verification multiplies the GEMM rows by k + 1, the gain
shrinks as the batch grows: a memory-bound decode step gets k + 1 tokens' work for almost the
price of one, a compute-bound one pays for all of them (the vLLM team's measurements, "How
Speculative Decoding Boosts vLLM Performance by up to 2.8x", Oct 2024: speed-ups at low request
rates, slow-downs at high ones).

Drafts: ``draft_model`` (a small model of the same tokenizer, its own weights and KV cache on the
replica's GPUs at the same tensor parallelism) or ``mtp`` (a multi-token-prediction / EAGLE-style
head: one decoder layer of the target's shape sharing its embedding and LM head, as DeepSeek-V3's
MTP module and EAGLE's draft head are). Simplifications, stated where the model is used: the
draft's prompt prefill is not priced (about the draft/target parameter ratio of the prefill,
1-2%); a draft step's attention is priced at the larger of its compute and KV-read rates; mixed
iterations (prefill chunks + decodes) decode one token per request without speculation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from simulator.catalog import ModelSpec
from simulator.perf.memory import kv_bytes_per_token, weight_bytes
from simulator.perf.roofline import ServingCostModel

#: Longest draft a deployment may ask for (vLLM's and SGLang's examples use 1-8).
MAX_DRAFT_TOKENS = 16


def expected_tokens_per_iteration(acceptance_rate: float, draft_tokens: int) -> float:
    """E[tokens emitted per verification] = (1 - alpha^(k+1)) / (1 - alpha) (Leviathan et al.)."""
    a, k = float(acceptance_rate), int(draft_tokens)
    if not 0 <= a < 1:
        raise ValueError(f"acceptance_rate (={a}) must be in [0, 1)")
    if k < 1:
        raise ValueError(f"draft_tokens (={k}) must be >= 1")
    return (1 - a ** (k + 1)) / (1 - a)


def sample_tokens_per_iteration(
    acceptance_rate: float, draft_tokens: int, rng: np.random.Generator, size: int
) -> np.ndarray:
    """``size`` draws of X, the tokens one iteration emits (1 .. k + 1, see the module docstring)."""
    accepted = rng.geometric(1 - acceptance_rate, size=size) - 1 if acceptance_rate > 0 else np.zeros(size, int)
    return np.minimum(accepted, draft_tokens) + 1


def sample_decode_iterations(
    decode_tokens: np.ndarray, acceptance_rate: float, draft_tokens: int, rng: np.random.Generator
) -> np.ndarray:
    """Verification iterations each request needs to emit its ``decode_tokens`` (exact draws of
    the renewal process: iterations until the emitted tokens reach the count; 0 for 0)."""
    need = np.asarray(decode_tokens, dtype=np.int64).copy()
    iterations = np.zeros(len(need), dtype=np.int64)
    active = np.flatnonzero(need > 0)
    while active.size:
        need[active] -= sample_tokens_per_iteration(acceptance_rate, draft_tokens, rng, active.size)
        iterations[active] += 1
        active = active[need[active] > 0]
    return iterations


def draft_head_model(target: ModelSpec) -> ModelSpec:
    """An MTP / EAGLE-style draft head: one decoder layer of the target's shape, sharing its
    embedding and LM head (its parameters: one layer's share of the body + the two tables)."""
    embedding = float(target.vocab_size * target.hidden_size)
    body_total = max(target.parameters - 2 * embedding, 0.0) / target.layers
    body_active = max(target.active - 2 * embedding, 0.0) / target.layers
    active = None if target.active_parameters is None else body_active + 2 * embedding
    return target.model_copy(update={
        "name": f"{target.name}-draft-head", "description": f"one-layer draft head of {target.name}",
        "layers": 1, "parameters": body_total + 2 * embedding, "active_parameters": active,
    })  # fmt: skip


@dataclass(frozen=True)
class SpeculationTerms:
    """What a speculative iteration adds to the timer (:class:`IterationTimer`): the draft's
    ``draft_tokens`` steps as a fixed part per batch size plus a part per context token."""

    draft_tokens: int  #: k
    tokens_per_iteration: float  #: E[X] at the deployment's (or workload's) acceptance rate
    draft_fixed_s: np.ndarray  #: k draft steps of a batch of b requests, context excluded, by b
    draft_s_per_context_token: float  #: k x the draft's seconds per context token of the batch


def speculation_terms(
    target: ServingCostModel, draft: ServingCostModel, draft_tokens: int, tokens_per_iteration: float,
    max_batch: int,
) -> SpeculationTerms:  # fmt: skip
    """Draft cost tables for batches 0..``max_batch``; ``draft`` prices the draft on the
    target's GPUs (same GPU, dtype, tensor parallelism and calibration)."""
    b = np.arange(max_batch + 1, dtype=float)
    step = draft.iteration_time_s(decode_requests=b, decode_context_tokens=0.0)
    terms = draft.iteration_terms(1)
    per_context = max(terms.attention_s_per_pair, terms.kv_s_per_token)
    return SpeculationTerms(
        draft_tokens=draft_tokens,
        tokens_per_iteration=tokens_per_iteration,
        draft_fixed_s=draft_tokens * step,
        draft_s_per_context_token=draft_tokens * per_context,
    )


def draft_cost_model(target: ServingCostModel, draft_model: ModelSpec) -> ServingCostModel:
    """The draft priced on the target's replica: same GPU, dtypes, TP, calibration, engine."""
    return dataclasses.replace(target, model=draft_model, expert_parallel=1)


def draft_memory(
    target: ModelSpec, draft: ModelSpec, method: str, dtype: str, kv_dtype: str, tensor_parallel: int
) -> tuple[float, float]:
    """(weight bytes, KV bytes per token) the draft adds to a replica. An MTP head shares the
    target's embedding and LM head, so only its layer counts; a draft model holds all its own."""
    weights = weight_bytes(draft, dtype)
    if method == "mtp":
        weights -= 2 * target.vocab_size * target.hidden_size * (weights / draft.parameters)
    return max(weights, 0.0), kv_bytes_per_token(draft, kv_dtype, tensor_parallel)
