"""Closed-loop load (N clients, think time Z) against the theory of closed queueing systems.

With one replica serving one request at a time, every request takes S = output x the unit
iteration; the server is the bottleneck once N S > S + Z, so the throughput is
X = min(N / (S + Z), 1 / S) (the asymptotic bounds of a closed system), and Little's law for the
whole loop holds exactly in steady state: N = X (R + Z), R the mean response time.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.inference.engine import EngineConfig, RequestArrays, simulate
from simulator.inference.replica import ReplicaConfig
from simulator.inference.timing import IterationTimer
from simulator.scenario.resolve import serving_cost_model
from tests.inference_support import UNIT_ITERATION_S, unit_scenario

COST_MODEL = serving_cost_model(unit_scenario(), "d")


def run_closed(clients: int, think_s: float, output: int = 10, batch: int = 1, n: int = 4000):
    config = ReplicaConfig(batch, 64, 100_000, 16)
    timer = IterationTimer.from_cost_model(COST_MODEL, config.max_iteration_tokens)
    requests = RequestArrays(np.zeros(n), np.ones(n, dtype=int), np.full(n, output), np.zeros(n, dtype=int))
    return simulate(EngineConfig(config, 1, max_queue_per_replica=n), timer, requests, duration_s=300.0,
                    warmup_s=30.0, drain_s=100.0, concurrency=clients, think_s=np.full(n, think_s))  # fmt: skip


@pytest.mark.parametrize(("clients", "think_s"), [(1, 0.0), (3, 0.2), (8, 0.5), (20, 0.1)])
def test_closed_loop_throughput_and_littles_law(clients, think_s):
    record = run_closed(clients, think_s)
    service = 10 * UNIT_ITERATION_S
    sent = record.arrival_s
    window = (sent >= 30.0) & (sent < 300.0) & (record.status == "completed")
    throughput = window.sum() / 270.0
    expected = min(clients / (service + think_s), 1 / service)
    assert throughput == pytest.approx(expected, rel=0.03)
    response = float(np.mean(record.finish_s[window] - sent[window]))
    assert clients == pytest.approx(throughput * (response + think_s), rel=0.03)


def test_closed_loop_never_has_more_than_n_requests_in_flight():
    record = run_closed(4, 0.0, batch=64)
    sent, finish = record.arrival_s, record.finish_s
    times = np.sort(np.concatenate([sent, finish]))
    in_flight = [int(((sent <= t) & (finish > t)).sum()) for t in times[::97]]
    assert max(in_flight) <= 4
    assert np.all(np.isfinite(sent))
