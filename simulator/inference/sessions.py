"""Conversations: a workload's requests as the turns of multi-turn sessions.

A session of T turns (``sessions.turns``) starts at an arrival of the workload's process at
rate = request rate / E[T]; turn k + 1 arrives an exponential ``think_s`` after turn k. Turn
k's prompt is the system prompt + every earlier turn's prompt tokens and answer (the history) +
its own new tokens (``prompt_tokens``, plus retrieved passages if any), so it can reuse
``system + history`` tokens of KV if a replica still holds them (its ``reusable_tokens``).
Sessions start from ``warm_s`` before 0 so the rate of turns is steady from 0 (turns before 0
are not simulated: their KV is not in any cache, the cold start the warm-up excludes).

Histories are never truncated: a turn past the model's context is refused as too long, where
a chat application would drop old turns (a simplification).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.economics.retrieval import mean_turns
from simulator.inference.arrivals import arrival_process, arrival_times_s
from simulator.scenario.distributions import sample_token_counts
from simulator.scenario.schema import Workload


@dataclass(frozen=True)
class Turns:
    """The turns arriving in [0, duration), in order of arrival."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray  #: system + history + new tokens
    output_tokens: np.ndarray
    session: np.ndarray  #: session id (int)
    reusable_tokens: np.ndarray  #: system + history: the prefix an earlier turn left in KV


def sample_turns(
    workload: Workload, rate_per_s: float, duration_s: float, rngs: dict[str, np.random.Generator],
    extra_prompt_tokens: int = 0,
) -> Turns:  # fmt: skip
    """Turns of ``workload``'s sessions at ``rate_per_s`` turns per second over ``duration_s``
    (see the module docstring); ``extra_prompt_tokens`` are added to each turn's new tokens."""
    spec = workload.sessions
    assert spec is not None
    turns_mean = mean_turns(workload)
    warm_s = spec.think_s * max(turns_mean - 1, 0.0) * 3
    process = arrival_process(workload.traffic, rate_per_s / turns_mean)
    starts = arrival_times_s(process, rngs["arrivals"], duration_s + warm_s) - warm_s
    rng = rngs["sessions"]
    count = sample_token_counts(spec.turns, rng, len(starts))
    session = np.repeat(np.arange(len(starts)), count)
    first = np.concatenate(([0], np.cumsum(count)[:-1])).astype(np.int64)
    n = len(session)
    gaps = rng.exponential(spec.think_s, n)
    gaps[first] = 0.0
    arrival = starts[session] + _cumsum_within(gaps, first, count)
    new = sample_token_counts(workload.prompt_tokens, rngs["prompt_tokens"], n) + extra_prompt_tokens
    output = sample_token_counts(workload.output_tokens, rngs["output_tokens"], n)
    history = _cumsum_within(new + output, first, count) - (new + output)  # earlier turns only
    reusable = spec.system_prompt_tokens + history
    prompt = reusable + new
    keep = (arrival >= 0) & (arrival < duration_s)
    order = np.flatnonzero(keep)[np.argsort(arrival[keep], kind="stable")]
    return Turns(arrival[order], prompt[order].astype(np.int64), output[order].astype(np.int64),
                 session[order].astype(np.int64), reusable[order].astype(np.int64))  # fmt: skip


def _cumsum_within(values: np.ndarray, first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Running sums restarting at each session's first turn (inclusive)."""
    total = np.cumsum(values, dtype=float if values.dtype.kind == "f" else np.int64)
    before = np.concatenate(([0], total[:-1]))[first]  # sum of everything before each session
    return total - np.repeat(before, count)
