"""Conservation and sanity of the serving engine over random workloads and settings."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.inference.engine import EngineConfig, RequestArrays, simulate
from simulator.inference.replica import ReplicaConfig
from simulator.inference.timing import IterationTimer
from simulator.scenario.resolve import serving_cost_model
from tests.inference_support import chat_scenario, unit_scenario

COST_MODELS = {
    "unit": serving_cost_model(unit_scenario(), "d"),
    "chat-8b": serving_cost_model(chat_scenario(), "chat-8b"),
}


@st.composite
def cases(draw):
    config = ReplicaConfig(
        max_batch_size=draw(st.integers(1, 16)),
        max_batched_tokens=draw(st.integers(1, 128)),
        kv_blocks=draw(st.integers(0, 200)),
        kv_block_tokens=draw(st.integers(1, 16)),
        max_context_tokens=draw(st.integers(2, 400)),
        kv_watermark=draw(st.sampled_from([0.0, 0.01, 0.2])),
    )
    engine = EngineConfig(config, replicas=draw(st.integers(1, 4)),
                          router=draw(st.sampled_from(["round_robin", "least_outstanding",
                                                       "shared_queue"])),
                          max_queue_per_replica=draw(st.integers(0, 60)))  # fmt: skip
    n = draw(st.integers(1, 150))
    seed = draw(st.integers(0, 2**32 - 1))
    rate = draw(st.floats(0.5, 500))
    return {
        "engine": engine,
        "model": draw(st.sampled_from(sorted(COST_MODELS))),
        "n": n,
        "seed": seed,
        "rate": rate,
        "prompt_max": draw(st.integers(1, 120)),
        "output_max": draw(st.integers(1, 120)),
        "prefix": draw(st.floats(0, 0.95)),
        "drain_s": draw(st.sampled_from([0.0, 0.05, 1.0, None, 1e6])),
        "warmup_share": draw(st.floats(0, 0.9)),
    }


def _run(case):
    rng = np.random.default_rng(case["seed"])
    n = case["n"]
    arrival = np.cumsum(rng.exponential(1 / case["rate"], n))
    prompt = rng.integers(1, case["prompt_max"] + 1, n)
    output = rng.integers(1, case["output_max"] + 1, n)
    cached = np.minimum(np.rint(case["prefix"] * prompt).astype(int), prompt - 1)
    duration = float(arrival[-1]) * rng.uniform(0.5, 1.2) + 1e-3
    engine = case["engine"]
    timer = IterationTimer.from_cost_model(COST_MODELS[case["model"]],
                                           engine.replica.max_iteration_tokens)  # fmt: skip
    return simulate(engine, timer, RequestArrays(arrival, prompt, output, cached),
                    duration_s=duration, warmup_s=case["warmup_share"] * duration,
                    drain_s=case["drain_s"])  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_every_request_is_completed_dropped_or_in_flight(case):
    r = _run(case)
    arrived = len(r.arrival_s)
    completed = int((r.status == "completed").sum())
    dropped = int((r.status == "dropped").sum())
    in_flight = int((r.status == "in_flight").sum())
    assert arrived == completed + dropped + in_flight
    assert set(r.drop_reason[r.status == "dropped"]) <= {"queue_full", "too_long"}
    assert (r.drop_reason[r.status != "dropped"] == "").all()
    done = r.status == "completed"
    assert np.all(r.arrival_s[done] <= r.first_scheduled_s[done])
    assert np.all(r.first_scheduled_s[done] < r.first_token_s[done])
    assert np.all(r.first_token_s[done] <= r.finish_s[done])
    assert np.all(r.finish_s[done] <= r.end_s + 1e-9)
    assert np.isnan(r.finish_s[~done]).all()
    assert np.isnan(r.first_scheduled_s[r.status == "dropped"]).all()
    assert (r.preemptions >= 0).all()
    if case["drain_s"] == 1e6:  # a long enough drain: everything admitted finishes
        assert in_flight == 0
    window = r.duration_s - r.warmup_s
    for stats in r.replica_stats:
        assert 0 <= stats.busy_s <= window * (1 + 1e-9)
        assert stats.output_tokens >= 0 and stats.prefill_tokens >= 0


@settings(max_examples=25, deadline=None)
@given(case=cases())
def test_same_inputs_same_results(case):
    a, b = _run(case), _run(case)
    for field in ("first_scheduled_s", "first_token_s", "finish_s", "replica", "preemptions"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.mean_in_system == b.mean_in_system
