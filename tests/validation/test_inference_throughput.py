"""Sanity against the cost model: a saturated replica decodes at the cost model's batch rate,
and overload is reported (never a hang)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from simulator.inference import serve
from simulator.inference.replica_cost import replica_cost_figures
from tests.inference_support import chat_scenario


def test_saturated_decode_throughput_equals_the_cost_model():
    """Batch always full (arrivals far beyond capacity, queue capped), long fixed outputs.

    Each request's decode iterations see contexts prompt + 1 ... prompt + output - 1; the decode
    step is linear in the batch's context, so the average step is the step at the mean context
    prompt + output / 2, and the cost model's batch throughput is batch / that step.
    """
    batch, prompt, output = 64, 100, 2000
    scenario = chat_scenario(
        deployment={"max_batch_size": batch},
        workload={"prompt_tokens": {"distribution": "fixed", "value": prompt},
                  "output_tokens": {"distribution": "fixed", "value": output},
                  "prefix_cache_hit_rate": 0.0, "response_cache_hit_rate": 0.0},
    )  # fmt: skip
    result = serve(scenario, "chat-8b", rps=20, duration_s=400, seed=1, warmup_s=60,
                   max_queue_per_replica=100)  # fmt: skip
    simulated = float(result.replicas["output_tokens_per_s"].iloc[0])
    figures = replica_cost_figures(scenario, "chat-8b", batch, prompt + output // 2, prompt)
    assert result.replicas["mean_batch_size"].iloc[0] == pytest.approx(batch, rel=1e-3)
    assert simulated == pytest.approx(figures["decode_tokens_per_s"], rel=0.02)


def test_overload_is_detected_and_bounded():
    """Three times the capacity: the queue and the waits grow; a capped queue drops; quick."""
    started = time.perf_counter()
    result = serve(chat_scenario(), "chat-8b", rps=75, duration_s=300, seed=2,
                   max_queue_per_replica=50_000)
    s = result.summary
    assert s["overloaded"]
    assert s["queue_growth_per_s"] > 40  # ~50 req/s beyond the ~24 req/s the replica serves
    assert s["requests_arrived"] == s["requests_completed"] + s["requests_dropped"] + s["requests_in_flight"]
    frame = result.requests
    served = frame[frame["measured"] & (frame["status"] == "completed")]
    early, late = np.array_split(served.sort_values("arrival_s")["queue_wait_ms"].to_numpy(), 2)
    assert late.mean() > 2 * early.mean()  # waits grow: an unstable queue
    capped = serve(chat_scenario(), "chat-8b", rps=75, duration_s=300, seed=2,
                   max_queue_per_replica=500).summary  # fmt: skip
    assert capped["overloaded"] and capped["dropped_by_reason"]["queue_full"] > 10_000
    assert time.perf_counter() - started < 10


def test_stable_load_is_not_overloaded():
    s = serve(chat_scenario(), "chat-8b", rps=15, duration_s=600, seed=3).summary
    assert not s["overloaded"]
    assert s["requests_in_flight"] == 0
    assert s["slo_attainment"] > 0.99
