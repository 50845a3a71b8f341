"""Routers: which replica a request goes to.

A router picks among replicas by their counters (``outstanding``: requests routed to it and not
finished; ``active``: requests in its batch; ``pending``: requests it was told about but has not
admitted yet). Policies:

- ``round_robin``: replicas in turn, each with its own FCFS queue.
- ``least_outstanding``: the replica with the fewest outstanding requests (lowest index on ties),
  each with its own FCFS queue.
- ``session_affinity``: a conversation's turn goes to the replica that served its previous turn
  (where its prefix is cached), unless the replicas are out of balance, then to the least
  outstanding: the cache-aware policy of the SGLang gateway and vLLM router, with their default
  thresholds (busiest - idlest > 64 requests and busiest > 1.5 x idlest). Requests without a
  session route as ``least_outstanding``. (Their radix-tree prefix match across sessions is
  not modelled: only a session's own history and, on every replica, the shared system prompt.)
- ``shared_queue``: one central FCFS queue that every replica admits from (join-the-shortest-queue
  with a central queue). The arriving request is offered to the replica with the most room in its
  batch; when none has room it waits centrally and the next replica to free a slot takes the
  queue's head. With batch size 1 this is exactly the M/M/c discipline (c servers, one queue).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Literal, Protocol

RouterName = Literal["round_robin", "least_outstanding", "shared_queue", "session_affinity"]
ROUTERS: tuple[str, ...] = ("round_robin", "least_outstanding", "shared_queue", "session_affinity")
#: Cache-aware routing falls back to load when busiest - idlest > this many requests...
BALANCE_ABS_THRESHOLD = 64
#: ... and busiest > this times idlest (SGLang gateway / vLLM router defaults).
BALANCE_REL_THRESHOLD = 1.5
#: From this many replicas the load-aware routers keep their loads in heaps (O(log R) per
#: change) instead of scanning every replica per arrival; below it a scan is faster.
HEAP_FROM_REPLICAS = 24
#: The load a failed replica shows while it is down (``outstanding``, and ``pending`` with a
#: shared queue; :mod:`simulator.inference.failures`): the load-aware routers never pick it
#: while another is up, with no check of their own; session affinity leaves it out of its
#: balance test and re-homes its sessions.
DOWN_LOAD = 1 << 40


class RoutedReplica(Protocol):
    outstanding: int
    active: int
    pending: int
    max_batch: int


class Router(Protocol):
    #: True when every replica admits from one shared queue.
    shared_queue: bool

    def bind(self, replicas: Sequence[RoutedReplica]) -> None:
        """The replicas it will route to (their loads start at 0)."""
        ...

    def changed(self, replicas: Sequence[RoutedReplica], index: int) -> None:
        """Replica ``index``'s ``outstanding`` changed (own-queue routers only)."""
        ...

    def choose(self, replicas: Sequence[RoutedReplica]) -> int | None:
        """Index of the replica to send (or, with a shared queue, offer) the request to."""
        ...


class RoundRobinRouter:
    shared_queue = False

    def __init__(self) -> None:
        self._next = 0

    def bind(self, replicas: Sequence[RoutedReplica]) -> None:
        """Round robin keeps no loads."""

    def changed(self, replicas: Sequence[RoutedReplica], index: int) -> None:
        """Round robin keeps no loads."""

    def choose(self, replicas: Sequence[RoutedReplica]) -> int:
        i = self._next
        self._next = (i + 1) % len(replicas)
        return i


class LeastOutstandingRouter:
    """The replica with the fewest outstanding requests, the lowest index on ties.

    On many replicas the loads live in a :class:`_LoadHeap` (O(log R) per change instead of a
    scan per arrival), whose top is exactly the scan's choice. The engine reports each change
    through :meth:`changed`.
    """

    shared_queue = False

    def __init__(self) -> None:
        self._least: _LoadHeap | None = None

    def bind(self, replicas: Sequence[RoutedReplica]) -> None:
        """Start keeping the replicas' loads in heaps (when there are enough of them)."""
        if len(replicas) >= HEAP_FROM_REPLICAS:
            self._least = _LoadHeap(replicas, 1)

    def changed(self, replicas: Sequence[RoutedReplica], index: int) -> None:
        """Replica ``index``'s outstanding count changed."""
        if self._least is not None:
            self._least.push(replicas, index)

    def choose(self, replicas: Sequence[RoutedReplica]) -> int:
        if self._least is not None:
            return self._least.top(replicas)[1]
        best, best_load = 0, replicas[0].outstanding
        for i in range(1, len(replicas)):
            load = replicas[i].outstanding
            if load < best_load:
                best, best_load = i, load
        return best


class _LoadHeap:
    """(sign x outstanding, index) of every replica in a heap with lazy deletion: each change
    pushes the replica's new entry, and a stale top (a load that has changed since) is popped
    when seen, so the top is the least (sign x load, index) pair: with sign 1 the least loaded
    replica (lowest index on ties), with -1 the busiest."""

    def __init__(self, replicas: Sequence[RoutedReplica], sign: int) -> None:
        self.sign = sign
        self._rebuild(replicas)

    def _rebuild(self, replicas: Sequence[RoutedReplica]) -> None:
        self.entries = [(self.sign * r.outstanding, i) for i, r in enumerate(replicas)]
        heapq.heapify(self.entries)

    def push(self, replicas: Sequence[RoutedReplica], index: int) -> None:
        heapq.heappush(self.entries, (self.sign * replicas[index].outstanding, index))
        if len(self.entries) > 4 * len(replicas) + 64:  # mostly stale entries: rebuild from the loads
            self._rebuild(replicas)

    def top(self, replicas: Sequence[RoutedReplica]) -> tuple[int, int]:
        """(outstanding, index) of the top replica."""
        entries, sign = self.entries, self.sign
        while True:
            key, index = entries[0]
            if sign * replicas[index].outstanding == key:
                return sign * key, index
            heapq.heappop(entries)


class SessionAffinityRouter(LeastOutstandingRouter):
    """Sticky per session while the replicas are in balance (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.home: dict[int, int] = {}
        self._busiest: _LoadHeap | None = None

    def bind(self, replicas: Sequence[RoutedReplica]) -> None:
        super().bind(replicas)
        if self._least is not None:
            self._busiest = _LoadHeap(replicas, -1)

    def changed(self, replicas: Sequence[RoutedReplica], index: int) -> None:
        super().changed(replicas, index)
        if self._busiest is not None:
            self._busiest.push(replicas, index)

    def choose_for(self, replicas: Sequence[RoutedReplica], session: int) -> int:
        least = self.choose(replicas)
        home = self.home.get(session)
        if home is not None and replicas[home].outstanding < DOWN_LOAD:
            busiest = self._busiest.top(replicas)[0] if self._busiest is not None else max(r.outstanding for r in replicas)
            if busiest >= DOWN_LOAD:  # a replica is down: the busiest of those up
                busiest = self._busiest_up(replicas)
            idlest = replicas[least].outstanding
            if not (busiest - idlest > BALANCE_ABS_THRESHOLD and busiest > BALANCE_REL_THRESHOLD * idlest):
                return home
        self.home[session] = least
        return least

    def _busiest_up(self, replicas: Sequence[RoutedReplica]) -> int:
        """The most outstanding requests of a replica that is up (some replica is down)."""
        if self._busiest is None:
            return max(o for r in replicas if (o := r.outstanding) < DOWN_LOAD)
        entries = self._busiest.entries
        while True:  # a down replica's entry leaves the heap; it is pushed again when it is back
            load, _ = self._busiest.top(replicas)
            if load < DOWN_LOAD:
                return load
            heapq.heappop(entries)


class SharedQueueRouter:
    shared_queue = True

    def bind(self, replicas: Sequence[RoutedReplica]) -> None:
        """The shared queue reads batch room, which changes at every admission: it scans."""

    def changed(self, replicas: Sequence[RoutedReplica], index: int) -> None:
        """See :meth:`bind`."""

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
    if name == "session_affinity":
        return SessionAffinityRouter()
    raise ValueError(f"unknown router {name!r} (expected one of: {', '.join(ROUTERS)})")
