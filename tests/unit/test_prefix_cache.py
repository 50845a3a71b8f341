"""Conversations and the simulated prefix cache: hit rates against the stream's repeats, LRU
under a shrinking cache, and the sessions sampler."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.economics.retrieval import mean_reusable_tokens
from simulator.inference import serve
from simulator.inference.engine import EngineConfig, RequestArrays, simulate
from simulator.inference.replica import ReplicaConfig
from simulator.inference.sessions import sample_turns
from simulator.inference.timing import IterationTimer
from simulator.scenario.resolve import serving_cost_model
from tests.inference_support import chat_scenario, unit_scenario

UNIT = serving_cost_model(unit_scenario(), "d")


def conversation(sessions: int, turns: int, new: int, out: int, system: int, rng: np.random.Generator):
    """Turns of ``sessions`` interleaved conversations, one request at a time (far apart)."""
    order = np.concatenate([rng.permutation(np.repeat(np.arange(sessions), 1))] * turns)
    seen = np.zeros(sessions, int)
    prompt, reusable = [], []
    for s in order:
        history = seen[s] * (new + out)
        reusable.append(system + history)
        prompt.append(system + history + new)
        seen[s] += 1
    n = len(order)
    return order, np.array(prompt), np.full(n, out), np.array(reusable)


def run(order, prompt, output, reusable, system, blocks, block=1):
    config = ReplicaConfig(4, 64, blocks, block, 1 << 40)
    timer = IterationTimer.from_cost_model(UNIT, config.max_iteration_tokens)
    n = len(order)
    gap = 1e4  # every request alone: the cache's content depends on the order only
    requests = RequestArrays(np.arange(n) * gap, prompt, output, np.zeros(n, int), session=order,
                             reusable_tokens=reusable, shared_prefix_tokens=system)  # fmt: skip
    record = simulate(EngineConfig(config), timer, requests, duration_s=n * gap, drain_s=gap)
    assert (record.status == "completed").all()
    return record


def repeated_share(order, prompt, reusable, system):
    """Prompt tokens that repeat an earlier request's prefix: the session's history, else the
    system prompt once any request has been served (at most prompt - 1)."""
    seen: set[int] = set()
    repeated = 0
    for i, s in enumerate(order):
        hit = reusable[i] if s in seen else (system if i > 0 else 0)
        repeated += min(hit, prompt[i] - 1)
        seen.add(s)
    return repeated / prompt.sum()


def test_infinite_cache_hits_every_repeated_token():
    order, prompt, output, reusable = conversation(7, 5, 40, 30, 25, np.random.default_rng(1))
    record = run(order, prompt, output, reusable, 25, blocks=10**7)
    measured = record.cached_tokens.sum() / record.prompt_tokens.sum()
    assert measured == pytest.approx(repeated_share(order, prompt, reusable, 25), abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 9), st.integers(1, 6), st.integers(0, 64), st.integers(1, 400), st.integers(0, 2**31))
def test_hit_rate_never_rises_when_the_cache_shrinks(sessions, turns, system, blocks, seed):
    rng = np.random.default_rng(seed)
    order, prompt, output, reusable = conversation(sessions, turns, int(rng.integers(1, 60)),
                                                   int(rng.integers(1, 40)), system, rng)  # fmt: skip
    big = max(blocks, int(prompt.max() + output.max()) + 1)  # the largest request must fit
    hits = [run(order, prompt, output, reusable, system, b).cached_tokens.sum() for b in (big * 4, big * 2, big)]
    assert hits[0] >= hits[1] >= hits[2]


def test_turns_sampler_builds_histories_and_keeps_the_rate():
    scenario = chat_scenario(workload={"sessions": {"turns": {"distribution": "fixed", "value": 3}, "think_s": 20,
                                                    "system_prompt_tokens": 100}, "prefix_cache_hit_rate": 0})  # fmt: skip
    wl = scenario.workload("chat")
    from simulator.inference.api import streams

    turns = sample_turns(wl, 10.0, 3600, streams(4))
    assert len(turns.arrival_s) / 3600 == pytest.approx(10.0, rel=0.05)
    assert np.all(np.diff(turns.arrival_s) >= 0)
    assert np.all(turns.prompt_tokens > turns.reusable_tokens)
    assert turns.reusable_tokens.min() == 100  # a first turn reuses only the system prompt
    expected = mean_reusable_tokens(wl)
    assert turns.reusable_tokens.mean() == pytest.approx(expected, rel=0.05)


def test_served_conversations_report_their_hit_rate():
    scenario = chat_scenario(workload={"sessions": {"turns": {"distribution": "fixed", "value": 4}, "think_s": 30,
                                                    "system_prompt_tokens": 500}, "prefix_cache_hit_rate": 0,
                                       "prompt_tokens": {"distribution": "lognormal", "mean": 300, "sigma": 0.8}})  # fmt: skip
    light = serve(scenario, "chat-8b", rps=4, duration_s=900, seed=1)
    heavy = serve(scenario, "chat-8b", rps=4, duration_s=900, seed=1, replicas=4, router="round_robin")
    assert 0.6 < light.summary["prefix_cache_hit_rate"] < 0.85
    # spread over four replicas without affinity, a session's next turn mostly lands elsewhere
    assert heavy.summary["prefix_cache_hit_rate"] < light.summary["prefix_cache_hit_rate"] - 0.2


def test_session_affinity_keeps_the_cache_hits_across_replicas():
    scenario = chat_scenario(workload={"sessions": {"turns": {"distribution": "fixed", "value": 4}, "think_s": 30,
                                                    "system_prompt_tokens": 500}, "prefix_cache_hit_rate": 0,
                                       "prompt_tokens": {"distribution": "lognormal", "mean": 300, "sigma": 0.8}})  # fmt: skip
    spread = serve(scenario, "chat-8b", rps=12, duration_s=900, seed=2, replicas=4, router="least_outstanding")
    sticky = serve(scenario, "chat-8b", rps=12, duration_s=900, seed=2, replicas=4, router="session_affinity")
    assert sticky.summary["prefix_cache_hit_rate"] > spread.summary["prefix_cache_hit_rate"] + 0.2
    assert sticky.summary["ttft_ms"]["p50"] < spread.summary["ttft_ms"]["p50"]


def test_the_projection_reports_the_simulated_hit_rate_by_router():
    from simulator.inference import deployment_curve
    from simulator.results.runner import run

    rates = {}
    for router in ("least_outstanding", "session_affinity"):
        scenario = chat_scenario({"router": router}, {
            "sessions": {"turns": {"distribution": "fixed", "value": 4}, "think_s": 30, "system_prompt_tokens": 500},
            "prefix_cache_hit_rate": 0, "routes": [{"deployment": "chat-8b", "share": 1.0}]})  # fmt: skip
        scenario = scenario.model_copy(update={"horizon": scenario.horizon.model_copy(update={"months": 1})})
        result = run(scenario, curve_provider=lambda s, d, w: deployment_curve(s, d, w, quick=True))
        rates[router] = result.summary["workloads"]["chat"]["prefix_cache_hit_rate"]
    assert 0 < rates["least_outstanding"] < rates["session_affinity"] < 1
