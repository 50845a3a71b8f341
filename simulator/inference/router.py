"""Routers: which replica a request goes to.

A router picks among replicas by their counters (``outstanding``: requests routed to it and not
finished; ``active``: requests in its batch; ``pending``: requests it was told about but has not
admitted yet). Policies:

- ``round_robin``: replicas in turn, each with its own FCFS queue.
- ``least_outstanding``: the replica with the fewest outstanding requests (lowest index on ties),
  each with its own FCFS queue.
- ``shared_queue``: one central FCFS queue that every replica admits from (join-the-shortest-queue
  with a central queue). The arriving request is offered to the replica with the most room in its
  batch; when none has room it waits centrally and the next replica to free a slot takes the
  queue's head. With batch size 1 this is exactly the M/M/c discipline (c servers, one queue).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

RouterName = Literal["round_robin", "least_outstanding", "shared_queue"]
ROUTERS: tuple[str, ...] = ("round_robin", "least_outstanding", "shared_queue")


class RoutedReplica(Protocol):
    outstanding: int
    active: int
    pending: int
    max_batch: int


class Router(Protocol):
    #: True when every replica admits from one shared queue.
    shared_queue: bool

    def choose(self, replicas: Sequence[RoutedReplica]) -> int | None:
        """Index of the replica to send (or, with a shared queue, offer) the request to."""
        ...


class RoundRobinRouter:
    shared_queue = False

    def __init__(self) -> None:
        self._next = 0

    def choose(self, replicas: Sequence[RoutedReplica]) -> int:
        i = self._next
        self._next = (i + 1) % len(replicas)
        return i


class LeastOutstandingRouter:
    shared_queue = False

    def choose(self, replicas: Sequence[RoutedReplica]) -> int:
        best, best_load = 0, replicas[0].outstanding
        for i in range(1, len(replicas)):
            load = replicas[i].outstanding
            if load < best_load:
                best, best_load = i, load
        return best


class SharedQueueRouter:
    shared_queue = True

    def choose(self, replicas: Sequence[RoutedReplica]) -> int | None:
        best, best_load = None, None
        for i, r in enumerate(replicas):
            load = r.active + r.pending
            if load < r.max_batch and (best_load is None or load < best_load):
                best, best_load = i, load
                if load == 0:
                    break
        return best


def make_router(name: str) -> Router:
    """A fresh router of the named policy."""
    if name == "round_robin":
        return RoundRobinRouter()
    if name == "least_outstanding":
        return LeastOutstandingRouter()
    if name == "shared_queue":
        return SharedQueueRouter()
    raise ValueError(f"unknown router {name!r} (expected one of: {', '.join(ROUTERS)})")
