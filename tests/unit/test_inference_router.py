"""Routing policies pick replicas by their counters."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulator.inference.router import (
    LeastOutstandingRouter,
    RoundRobinRouter,
    SharedQueueRouter,
    make_router,
)


@dataclass
class FakeReplica:
    outstanding: int = 0
    active: int = 0
    pending: int = 0
    max_batch: int = 4


def test_round_robin_cycles():
    router = RoundRobinRouter()
    replicas = [FakeReplica() for _ in range(3)]
    assert [router.choose(replicas) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_least_outstanding_picks_the_least_loaded_lowest_index_on_ties():
    router = LeastOutstandingRouter()
    replicas = [FakeReplica(outstanding=n) for n in (3, 1, 1, 2)]
    assert router.choose(replicas) == 1
    replicas[1].outstanding = 5
    assert router.choose(replicas) == 2


def test_shared_queue_offers_to_the_replica_with_most_room():
    router = SharedQueueRouter()
    replicas = [FakeReplica(active=4), FakeReplica(active=2, pending=1), FakeReplica(active=2)]
    assert router.choose(replicas) == 2
    replicas[2].pending = 2
    assert router.choose(replicas) == 1
    for r in replicas:
        r.active, r.pending = 4, 0
    assert router.choose(replicas) is None  # nobody has room: the request waits centrally
    assert router.shared_queue and not LeastOutstandingRouter.shared_queue


def test_make_router():
    assert isinstance(make_router("round_robin"), RoundRobinRouter)
    with pytest.raises(ValueError, match="unknown router 'random'"):
        make_router("random")
