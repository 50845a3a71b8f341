"""The retrieval stage of a RAG workload, and the prompt the model sees with pipeline stages.

Model (``Workload.retrieval``): a pipeline stage (:mod:`simulator.economics.stages`) named
``retrieval``, of kind retrieval, before the model, on every request past the response cache:

- **Where it sits.** A request first meets the response cache; a hit is answered at once and
  skips retrieval and the model (a cached answer needs no fresh passages). Every other request
  runs retrieval, then reaches the deployment's router ``latency_ms`` later with
  ``retrieved_tokens`` added to its prompt.
- **Latency.** Each request draws its own retrieval latency from ``latency_ms`` (negative draws
  of an unbounded distribution such as a normal count as 0). TTFT and E2E run from the user's
  request, so they include it; queue wait and TPOT do not. The inference engine's per-request
  results, the latency curves and SLO attainment all include it.
- **Tokens.** Retrieved passages are prompt tokens like any other: prefill compute and KV cache
  grow with them, the prefix-cache hit rate applies to the whole prompt, and they count as input
  tokens for $/1M tokens and for the API baseline (an API would be sent them too). Other
  before-model stages' ``added_prompt_tokens`` count the same way.
- **Cost.** Two billed lines per workload, both in the inference category with entity kind
  ``retrieval`` (entity = the workload): ``retrieval_queries`` = requests that reach retrieval
  (routed to a serving deployment, answered or not for lack of capacity; response-cache hits and
  requests with no serving deployment do not query) / 1,000 x ``usd_per_thousand_queries``, and
  ``retrieval_hours`` = hours in which the workload has a serving deployment x ``usd_per_hour``.
  In tables that have a pool column the lines sit under the pseudo-pool ``retrieval:<workload>``.
"""

from __future__ import annotations

import numpy as np

from simulator.economics.stages import added_tokens_mean, stage_pool
from simulator.scenario.schema import Workload
from simulator.scenario.stages import RETRIEVAL_STAGE

RETRIEVAL_ENTITY_KIND = "retrieval"


def retrieval_pool(workload: str) -> str:
    """The pseudo-pool label of a workload's retrieval stage."""
    return stage_pool(workload, RETRIEVAL_STAGE)


def retrieved_tokens(workload: Workload) -> int:
    """Tokens the before-model stages add to each prompt, where one number stands for all
    requests (conversations, closed loops, the too-long estimate): the retrieval stage's
    ``retrieved_tokens`` exactly, or the rounded mean with stages that run on some requests."""
    return round(added_tokens_mean(workload))


def model_prompt_tokens_mean(workload: Workload) -> float:
    """Mean prompt the model sees: the user's prompt plus what the stages add (retrieved
    passages), and in a conversation the system prompt and history before them
    (:func:`mean_reusable_tokens`)."""
    mean = workload.prompt_tokens.mean
    added = added_tokens_mean(workload)
    new = mean + added if added else mean
    return new + mean_reusable_tokens(workload)


def _turns_sample(workload: Workload) -> np.ndarray:
    """Turns per session as sampled (whole, >= 1), a fixed sample for expectations."""
    assert workload.sessions is not None
    draws = np.rint(workload.sessions.turns.sample(np.random.default_rng(0), 100_000))
    return np.maximum(draws, 1.0)


def mean_turns(workload: Workload) -> float:
    """E[turns per session] of a conversation workload."""
    return float(_turns_sample(workload).mean())


def mean_reusable_tokens(workload: Workload) -> float:
    """E[system + history tokens] of a turn (0 without sessions): S + (E[new] + E[out]) x
    E[T(T-1)/2] / E[T], since a random turn of a session of T turns follows k - 1 earlier ones
    with k uniform on 1..T."""
    if workload.sessions is None:
        return 0.0
    t = _turns_sample(workload)
    earlier = float((t * (t - 1) / 2).mean() / t.mean())
    new = workload.prompt_tokens.mean + retrieved_tokens(workload)
    return workload.sessions.system_prompt_tokens + (new + workload.output_tokens.mean) * earlier


def expected_prefix_hit_rate(workload: Workload) -> float:
    """Share of prompt tokens the prefix cache serves, for closed-form estimates: the given
    rate, or for conversations every reusable token (a cache that keeps them all)."""
    if workload.sessions is None:
        return workload.prefix_cache_hit_rate
    return mean_reusable_tokens(workload) / model_prompt_tokens_mean(workload)
