"""Routing policies pick replicas by their counters."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.inference import router as router_module
from simulator.inference.router import (
    LeastOutstandingRouter,
    RoundRobinRouter,
    SessionAffinityRouter,
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


@settings(max_examples=60, deadline=None)
@given(
    replicas=st.integers(min_value=1, max_value=60),
    changes=st.lists(st.tuples(st.integers(0, 59), st.sampled_from([1, -1]), st.integers(0, 2000)), max_size=400),
)
def test_heap_routers_choose_exactly_what_the_scan_chooses(replicas, changes):
    """The O(log R) least-outstanding and session-affinity routers (heaps with lazy deletion)
    pick the same replica as a scan, ties to the lowest index, after any sequence of changes."""
    fleet = [FakeReplica() for _ in range(replicas)]
    fast, scan = LeastOutstandingRouter(), LeastOutstandingRouter()
    sticky_fast, sticky_scan = SessionAffinityRouter(), SessionAffinityRouter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(router_module, "HEAP_FROM_REPLICAS", 1)
        fast.bind(fleet)
        sticky_fast.bind(fleet)
        patch.setattr(router_module, "HEAP_FROM_REPLICAS", 10**9)
        scan.bind(fleet)
        sticky_scan.bind(fleet)
    assert fast._least is not None and scan._least is None
    for index, step, session in changes:
        index %= replicas
        fleet[index].outstanding = max(fleet[index].outstanding + step * 40, 0)
        for router in (fast, scan, sticky_fast, sticky_scan):
            router.changed(fleet, index)
        assert fast.choose(fleet) == scan.choose(fleet)
        assert sticky_fast.choose_for(fleet, session % 7) == sticky_scan.choose_for(fleet, session % 7)
