"""Sample path by sample path, batch-size-1 replicas behind a shared queue are the FCFS c-server
queue: the engine's waits equal the Kiefer-Wolfowitz recursion on the same requests
(J. Kiefer & J. Wolfowitz, "On the theory of queues with many servers", Trans. AMS 78, 1955):
each arrival starts at max(its arrival, the earliest time a server frees)."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from simulator.inference import serve
from tests.inference_support import UNIT_ITERATION_S, unit_scenario


def fcfs_waits(arrival_s: np.ndarray, service_s: np.ndarray, servers: int) -> np.ndarray:
    free = [0.0] * servers
    waits = np.empty(len(arrival_s))
    for i, (a, s) in enumerate(zip(arrival_s.tolist(), service_s.tolist())):
        start = max(a, heapq.heappop(free))
        waits[i] = start - a
        heapq.heappush(free, start + s)
    return waits


@pytest.mark.parametrize(("servers", "rho"), [(1, 0.9), (3, 0.8), (8, 0.95)])
def test_engine_is_the_fcfs_multi_server_queue(servers, rho):
    rate = rho * servers  # mean service ~1 s
    result = serve(unit_scenario(), "d", rps=rate, duration_s=3000 / rate, replicas=servers,
                   seed=servers, router="shared_queue")  # fmt: skip
    frame = result.requests
    service = frame["output_tokens"].to_numpy() * UNIT_ITERATION_S
    expected = fcfs_waits(frame["arrival_s"].to_numpy(), service, servers)
    np.testing.assert_allclose(frame["queue_wait_ms"].to_numpy() / 1e3, expected, atol=1e-8)
    np.testing.assert_allclose(frame["e2e_ms"].to_numpy() / 1e3, expected + service, atol=1e-8)
    assert (expected > 0).mean() > 0.3  # the queue was busy enough for the check to mean something
