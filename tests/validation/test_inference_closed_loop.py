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


def test_closed_loop_keeps_every_client_when_one_waits_past_the_end():
    """Exponential waits of 120 s over 600 s: a wait past the end stops only its own client,
    so 40 clients send about 40 x (1 + 600 / 120) requests (they once sent 67: each stopped
    client passed its too-long wait on to the next)."""
    n = 2000
    think = np.random.default_rng(1).exponential(120.0, n)
    config = ReplicaConfig(64, 64, 100_000, 16)
    timer = IterationTimer.from_cost_model(COST_MODEL, config.max_iteration_tokens)
    requests = RequestArrays(np.zeros(n), np.ones(n, dtype=int), np.full(n, 10), np.zeros(n, dtype=int))
    record = simulate(EngineConfig(config, 1, max_queue_per_replica=n), timer, requests, duration_s=600.0,
                      warmup_s=60.0, drain_s=100.0, concurrency=40, think_s=think)  # fmt: skip
    assert 200 < len(record.arrival_s) < 280


def test_closed_loop_never_has_more_than_n_requests_in_flight():
    record = run_closed(4, 0.0, batch=64)
    sent, finish = record.arrival_s, record.finish_s
    times = np.sort(np.concatenate([sent, finish]))
    in_flight = [int(((sent <= t) & (finish > t)).sum()) for t in times[::97]]
    assert max(in_flight) <= 4
    assert np.all(np.isfinite(sent))


def machine_repairman(clients: int, servers: int, service_s: float, think_s: float) -> tuple[float, float]:
    """Throughput and mean response time of M/M/c//N (exponential think and service): the
    birth-death chain with birth (N - n) / Z and death min(n, c) / S, n requests in service or
    queued."""
    weights = [1.0]
    for n in range(1, clients + 1):
        weights.append(weights[-1] * ((clients - n + 1) / think_s) / (min(n, servers) / service_s))
    p = np.array(weights) / sum(weights)
    throughput = float(sum(p[n] * min(n, servers) / service_s for n in range(clients + 1)))
    return throughput, clients / throughput - think_s


@pytest.mark.parametrize(("clients", "servers", "think_s"), [(6, 1, 2.0), (10, 2, 1.5), (12, 3, 0.5)])
def test_closed_loop_matches_the_machine_repairman_model(clients, servers, think_s):
    """Batch 1, a shared FCFS queue over c replicas, exponential think times and (nearly)
    exponential service: output tokens geometric with mean 50 (CV^2 0.98) x the unit iteration."""
    rng = np.random.default_rng(11)
    n, mean_output = 40_000, 50
    output = rng.geometric(1 / mean_output, n)
    think = rng.exponential(think_s, n)
    config = ReplicaConfig(1, 64, 100_000, 16)
    timer = IterationTimer.from_cost_model(COST_MODEL, config.max_iteration_tokens)
    requests = RequestArrays(np.zeros(n), np.ones(n, dtype=int), output, np.zeros(n, dtype=int))
    record = simulate(EngineConfig(config, servers, "shared_queue", max_queue_per_replica=n), timer, requests,
                      duration_s=3000.0, warmup_s=100.0, drain_s=200.0, concurrency=clients, think_s=think)  # fmt: skip
    sent = record.arrival_s
    window = (sent >= 100.0) & (sent < 3000.0) & (record.status == "completed")
    throughput = window.sum() / 2900.0
    response = float(np.mean(record.finish_s[window] - sent[window]))
    service_s = mean_output * UNIT_ITERATION_S
    expected_x, expected_r = machine_repairman(clients, servers, service_s, think_s)
    assert throughput == pytest.approx(expected_x, rel=0.02)  # measured: within 0.5%
    assert response == pytest.approx(expected_r, rel=0.03)
    # Little's law for the whole loop (N = X (R + Z)), with the think times these requests
    # waited: request k >= N follows the (k - N)-th wait (waits that passed the end shift a
    # handful of the last ones)
    waited = np.concatenate([np.zeros(clients), think])[: len(sent)]
    sent_think = float(np.mean(waited[window]))
    assert clients == pytest.approx(throughput * (response + sent_think), rel=0.01)
