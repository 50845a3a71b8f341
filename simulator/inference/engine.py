"""The discrete-event simulation of one deployment's replicas serving a request stream (simpy).

:func:`simulate` takes plain arrays (arrival instants and token counts of the requests that reach
the GPUs) and returns a :class:`SimulationRecord`; :mod:`simulator.inference.metrics` turns it into
DataFrames. No I/O, no printing, no randomness: the caller samples the requests.

Flow of a request: an arrival event (one simpy timeout per request) → admission checks (a prompt
at or beyond the model's context limit, or one whose prompt + output cannot fit in the replica's
whole KV cache, is dropped with reason ``too_long``; an output that would run past the context
limit is cut there, as vLLM stops at ``max_model_len``) → the router → the replica's queue
(dropped with reason ``queue_full`` when ``max_queue_per_replica`` requests already wait there; a
shared queue holds ``max_queue_per_replica`` x replicas) → the replica's continuous-batching
scheduler (:mod:`simulator.inference.replica`).

Time: arrivals run over [0, ``duration_s``); the simulation then drains (no new arrivals) until
every admitted request has finished or ``duration_s + drain_s`` is reached, whichever is first;
requests still unfinished then are "in flight". So arrived = completed + dropped + in flight.
Statistics use the measurement window [``warmup_s``, ``duration_s``): requests arriving in it,
replica time inside it.

Requests may carry a LoRA adapter id (``RequestArrays.adapter``; see
:mod:`simulator.inference.replica`) and the time they spent in a retrieval stage before reaching
the deployment (``RequestArrays.retrieval_s``, :mod:`simulator.economics.retrieval`): ``arrival_s`` is when
a request reaches the router; its TTFT and E2E add its retrieval time
(:func:`simulator.inference.metrics.latencies_ms`).

Failures (a :class:`~simulator.inference.failures.FailureInjection`): replicas fail at random
and recover; the requests on a failed replica are retried or fail (status ``failed``, reason
``replica_failure``): arrived = completed + dropped + failed + in flight. See
:mod:`simulator.inference.failures`; without it the engine has no failure code in its path.

Speculative decoding (the timer's ``speculation``): requests carry the verification iterations
their decode needs (``RequestArrays.decode_iterations``, drawn by the caller); the replicas run
:func:`speculative_steps` token steps for them (see :mod:`simulator.inference.timing`). The
record keeps the real output token counts.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.inference.failures import FailureInjection, FailureLog
from simulator.inference.replica import (
    DONE,
    DROPPED,
    FAILED,
    WAITING,
    Replica,
    ReplicaConfig,
    ReplicaStats,
    RequestTable,
)
from simulator.inference.router import DOWN_LOAD, SessionAffinityRouter, make_router
from simulator.inference.timing import IterationTimer

#: Default cap on requests waiting per replica before arrivals are dropped ("queue_full").
DEFAULT_MAX_QUEUE_PER_REPLICA = 10_000

DROP_REASONS = ("", "queue_full", "too_long", "replica_failure")


@dataclass(frozen=True)
class EngineConfig:
    """How the deployment serves: per-replica scheduler limits, replica count, router, queue cap."""

    replica: ReplicaConfig
    replicas: int = 1
    router: str = "least_outstanding"
    max_queue_per_replica: int = DEFAULT_MAX_QUEUE_PER_REPLICA

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError(f"replicas (={self.replicas}) must be >= 1")
        if self.max_queue_per_replica < 0:
            raise ValueError(f"max_queue_per_replica (={self.max_queue_per_replica}) must be >= 0")
        make_router(self.router)  # raises on an unknown name


@dataclass(frozen=True)
class RequestArrays:
    """Requests reaching the GPUs, sorted by arrival: one entry per request."""

    arrival_s: np.ndarray  #: arrival instants, seconds, non-decreasing
    prompt_tokens: np.ndarray  #: int, >= 1
    output_tokens: np.ndarray  #: int, >= 1
    cached_tokens: np.ndarray  #: prompt tokens found in the prefix cache (no compute), int
    adapter: np.ndarray | None = None  #: LoRA adapter id per request (-1: base model), int
    retrieval_s: np.ndarray | None = None  #: seconds in retrieval before ``arrival_s``
    #: speculative decoding: verification iterations to emit each request's output tokens after
    #: the first (:func:`simulator.perf.speculative.sample_decode_iterations`)
    decode_iterations: np.ndarray | None = None
    #: conversations: session id per request, and the prompt tokens (system + history) an
    #: earlier turn of the session may have left in a replica's prefix cache; ``cached_tokens``
    #: is then decided by the replicas (:mod:`simulator.inference.replica`)
    session: np.ndarray | None = None
    reusable_tokens: np.ndarray | None = None
    shared_prefix_tokens: int = 0  #: conversations: the system prompt every session starts with

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        names = ["prompt_tokens", "output_tokens", "cached_tokens"]
        names += [name for name in ("adapter", "retrieval_s", "decode_iterations", "session", "reusable_tokens")
                  if getattr(self, name) is not None]  # fmt: skip
        for name in names:
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected {n}")
        if n and np.any(np.diff(self.arrival_s) < 0):
            raise ValueError("arrival_s must be sorted")

    def __len__(self) -> int:
        return len(self.arrival_s)


@dataclass(frozen=True)
class ReplicaGroup:
    """Replicas of one role in a record (disaggregated serving: prefill, then decode)."""

    name: str
    replicas: int
    gpus_per_replica: int
    kv_blocks: int


@dataclass(frozen=True)
class SimulationRecord:
    """What one simulation observed. Times in seconds; NaN where a request never got there."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray  #: as served (requests dropped as too_long: as sent)
    output_tokens: np.ndarray  #: as served (cut at the context limit)
    cached_tokens: np.ndarray
    first_scheduled_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    replica: np.ndarray  #: replica that last admitted it, -1 if none
    preemptions: np.ndarray
    status: np.ndarray  #: "completed", "dropped", "failed" (lost with a failed replica) or "in_flight"
    drop_reason: np.ndarray  #: "", "queue_full", "too_long" or "replica_failure"
    replica_stats: tuple[ReplicaStats, ...]
    duration_s: float
    warmup_s: float
    end_s: float  #: when the simulation stopped
    mean_in_system: float  #: time-average requests in the system (queued + in a batch), window
    waiting_at_warmup: int  #: requests queued (not yet admitted) at ``warmup_s``
    waiting_at_end: int  #: requests queued at ``duration_s``
    config: EngineConfig
    adapter: np.ndarray | None = None  #: LoRA adapter id per request (-1: base), if any
    retrieval_s: np.ndarray | None = None  #: retrieval seconds before arrival, if any
    #: disaggregated serving: the replica groups, in the order of ``replica_stats`` (None: one
    #: group of ``config.replicas`` alike replicas)
    groups: tuple[ReplicaGroup, ...] | None = None
    failures: FailureLog | None = None  #: the failures injected, if any

    def replica_gpus(self) -> np.ndarray:
        """GPUs of each replica in ``replica_stats`` (weights for GPU-time shares; 1 each when
        all replicas are alike)."""
        if self.groups is None:
            return np.ones(len(self.replica_stats))
        return np.concatenate([np.full(g.replicas, float(g.gpus_per_replica)) for g in self.groups])

    def replica_kv_blocks(self) -> np.ndarray:
        """KV blocks of each replica in ``replica_stats``."""
        if self.groups is None:
            return np.full(len(self.replica_stats), float(self.config.replica.kv_blocks))
        return np.concatenate([np.full(g.replicas, float(g.kv_blocks)) for g in self.groups])


class _Engine:
    def __init__(
        self,
        env: simpy.Environment,
        config: EngineConfig,
        timer: IterationTimer,
        table: RequestTable,
        too_long: list[bool],
        window: tuple[float, float],
        failures: FailureInjection | None = None,
    ) -> None:
        self.env = env
        self.table = table
        self.too_long = too_long
        self.window = window
        self.router = make_router(config.router)
        self.shared = self.router.shared_queue
        self.max_queue = config.max_queue_per_replica
        self.queue: deque[int] = deque()
        self.replicas = [
            Replica(i, env, timer, config.replica, table, self.queue if self.shared else deque(),
                    self.on_finish, ReplicaStats(*window), self.shared)
            for i in range(config.replicas)
        ]  # fmt: skip
        if self.shared:
            self.max_queue *= config.replicas
        self.router.bind(self.replicas)
        self.drop_reason = [0] * len(too_long)
        self.in_system = 0
        self.area = 0.0  # integral of requests in system over the window
        #: closed loop: each client sends its next request when the last one ends (+ think time)
        self.closed: _ClosedLoop | None = None
        #: failure injection (None: off, and nothing below ``arrive`` knows of failures)
        self.failing: _Failures | None = None
        if failures is not None:
            self.failing = _Failures(self, failures)
            if failures.rate_per_s > 0:
                self.arrive = self._arrive_failing  # type: ignore[method-assign]

    def _credit(self, t: float) -> float:
        """Window time from ``t`` to the window's end (how Little's area counts an event)."""
        w0, w1 = self.window
        if t >= w1:
            return 0.0
        return w1 - max(w0, t)

    def waiting(self) -> int:
        if self.shared:
            return len(self.queue)
        held = len(self.failing.parked) if self.failing is not None else 0
        return held + sum(len(r.waiting) for r in self.replicas)

    def arrive(self, rid: int) -> None:
        now = self.env.now
        if self.too_long[rid]:
            self._drop(rid, 2)
            return
        if self.shared:
            if len(self.queue) >= self.max_queue:
                self._drop(rid, 1)
                return
            self.queue.append(rid)
            self.table.status[rid] = 0
            self.in_system += 1
            self.area += self._credit(now)
            i = self.router.choose(self.replicas)
            if i is not None:
                self.replicas[i].offer(now)
            return
        sessions = self.table.session
        if sessions is not None and isinstance(self.router, SessionAffinityRouter):
            replica = self.replicas[self.router.choose_for(self.replicas, sessions[rid])]
        else:
            replica = self.replicas[self.router.choose(self.replicas)]
        if len(replica.waiting) >= self.max_queue:
            self._drop(rid, 1)
            return
        self.in_system += 1
        self.area += self._credit(now)
        replica.enqueue(rid, now)
        self.router.changed(self.replicas, replica.index)

    def _leave(self, now: float, rid: int) -> None:
        """``rid`` left its replica (finished there): counters and the router's loads."""
        self.in_system -= 1
        self.area -= self._credit(now)
        if not self.shared:
            self.router.changed(self.replicas, self.table.replica[rid])

    def _drop(self, rid: int, reason: int) -> None:
        self.table.status[rid] = DROPPED
        self.drop_reason[rid] = reason
        if self.closed is not None:
            self.closed.next_after(self.env.now)

    def on_finish(self, now: float, rid: int) -> None:
        self._leave(now, rid)
        if self.closed is not None:
            self.closed.next_after(now)

    # ------------------------------------------------------------------ failure injection
    def _arrive_failing(self, rid: int) -> None:
        """:meth:`arrive` while replicas may be down (with failure injection only)."""
        if self.shared or self.too_long[rid]:  # a shared queue offers to replicas that are up
            _Engine.arrive(self, rid)
            return
        self.in_system += 1
        self.area += self._credit(self.env.now)
        self.route(rid)

    def route(self, rid: int) -> None:
        """Send ``rid`` (counted in the system) to a replica that is up, or hold it at the router
        while none is (own queues; failure injection)."""
        failing = self.failing
        assert failing is not None
        if failing.up == 0:
            if len(failing.parked) >= self.max_queue * len(self.replicas):
                self._drop_in_system(rid, 1)
            else:
                self.table.status[rid] = WAITING
                failing.parked.append(rid)
            return
        router, replicas = self.router, self.replicas
        sessions = self.table.session
        if sessions is not None and isinstance(router, SessionAffinityRouter):
            i = router.choose_for(replicas, sessions[rid])
        else:
            i = router.choose(replicas)
            while replicas[i].down:  # round robin: on to the next one up
                i = router.choose(replicas)
        replica = replicas[i]
        if len(replica.waiting) >= self.max_queue:
            self._drop_in_system(rid, 1)
            return
        replica.enqueue(rid, self.env.now)
        router.changed(replicas, i)

    def retry(self, rid: int) -> None:
        """``rid`` was lost with a failed replica: routed again from the start, as a new arrival
        would be (its arrival time kept; its generated tokens, first token and admission gone)."""
        t = self.table
        t.target[rid] = t.prompt[rid]
        t.gen[rid] = 0
        t.done[rid] = t.cached[rid]  # conversations: looked up again in the new replica's cache
        t.first_sched[rid] = -1.0
        t.first_token[rid] = -1.0
        t.status[rid] = WAITING
        if not self.shared:
            self.route(rid)
            return
        self.queue.append(rid)
        i = self.router.choose(self.replicas)
        if i is not None:
            self.replicas[i].offer(self.env.now)

    def fail_request(self, rid: int) -> None:
        """``rid`` was lost with a failed replica and is not retried."""
        self.table.status[rid] = FAILED
        self.drop_reason[rid] = 3
        now = self.env.now
        self.in_system -= 1
        self.area -= self._credit(now)
        if self.closed is not None:
            self.closed.next_after(now)

    def _drop_in_system(self, rid: int, reason: int) -> None:
        """Drop ``rid``, which was already counted in the system."""
        self.in_system -= 1
        self.area -= self._credit(self.env.now)
        self._drop(rid, reason)


class _Failures:
    """Failures of an engine's replicas: each up replica fails after an exponential time drawn
    from its own stream, is down for ``recovery_s``, then rejoins empty and draws its next."""

    def __init__(self, engine: _Engine, spec: FailureInjection) -> None:
        self.engine, self.spec, self.env = engine, spec, engine.env
        n = len(engine.replicas)
        self.rngs = spec.streams(n)
        self.up = n
        self.parked: deque[int] = deque()  # arrived while every replica was down
        self.replica: list[int] = []
        self.down_s: list[float] = []
        self.retries = [0] * len(engine.too_long)
        if spec.rate_per_s > 0:
            for i in range(n):
                self._arm(i)

    def _arm(self, i: int) -> None:
        event = self.env.timeout(float(self.rngs[i].exponential(1.0 / self.spec.rate_per_s)))
        event.callbacks.append(lambda _: self._fail(i))

    def _fail(self, i: int) -> None:
        engine, env = self.engine, self.env
        now = env.now
        lost = engine.replicas[i].fail(now, DOWN_LOAD)
        self.up -= 1
        if not engine.shared:
            engine.router.changed(engine.replicas, i)
        self.replica.append(i)
        self.down_s.append(now)
        back = env.timeout(self.spec.recovery_s)
        back.callbacks.append(lambda _: self._recover(i))
        lost.sort()  # in order of arrival
        if self.spec.retry:
            for rid in lost:
                self.retries[rid] += 1
                engine.retry(rid)
        else:
            for rid in lost:
                engine.fail_request(rid)

    def _recover(self, i: int) -> None:
        engine = self.engine
        engine.replicas[i].recover(self.env.now)
        self.up += 1
        if not engine.shared:
            engine.router.changed(engine.replicas, i)
        self._arm(i)
        parked = self.parked
        while parked:  # held while every replica was down
            engine.route(parked.popleft())

    def log(self, n: int) -> FailureLog:
        """The failures so far, with the retries of the first ``n`` requests."""
        down = np.asarray(self.down_s, dtype=float)
        return FailureLog(self.spec, np.asarray(self.replica, dtype=np.int64), down, down + self.spec.recovery_s,
                          np.asarray(self.retries[:n], dtype=np.int64))  # fmt: skip


class _ClosedLoop:
    """Clients of a closed-loop load: each sends at 0, and again ``think_s[j]`` seconds after
    its request ends (the j-th wait drawn, in order of the ends), until ``stop_s`` or the
    requests run out. A client whose wait passes ``stop_s`` stops; its wait is used up, so the
    next client draws its own (reusing it would stop every client after it)."""

    def __init__(self, env: simpy.Environment, engine: _Engine, arrival: np.ndarray,
                 think_s: np.ndarray, clients: int, stop_s: float) -> None:  # fmt: skip
        self.env, self.engine, self.arrival, self.think, self.stop_s = env, engine, arrival, think_s, stop_s
        self.issued = 0
        self.waits = 0  # waits drawn so far (one per request ended)
        for _ in range(min(clients, len(arrival))):
            self._send(0.0)

    def _send(self, at: float) -> None:
        rid = self.issued
        self.issued += 1
        self.arrival[rid] = at
        event = self.env.timeout(max(at - self.env.now, 0.0))
        event.callbacks.append(lambda _: self.engine.arrive(rid))

    def next_after(self, now: float) -> None:
        if self.issued < len(self.arrival):
            at = now + float(self.think[self.waits])  # waits <= requests ended < issued
            self.waits += 1
            if at < self.stop_s:
                self._send(at)


def _arrivals(env: simpy.Environment, times: list[float], engine: _Engine) -> Iterator[simpy.Event]:
    timeout = env.timeout
    arrive = engine.arrive
    for rid, t in enumerate(times):
        delay = t - env.now
        yield timeout(delay if delay > 0 else 0.0)
        arrive(rid)


def served_output_tokens(prompt: np.ndarray, output: np.ndarray, rc: ReplicaConfig) -> np.ndarray:
    """Output tokens as served: cut where prompt + output would pass the context limit."""
    return np.minimum(output, np.maximum(rc.max_context_tokens - prompt, 1))


def speculative_steps(
    served_output: np.ndarray, offered_output: np.ndarray, iterations: np.ndarray, tokens_per_iteration: float
) -> np.ndarray:
    """Output tokens the replica runs for each request under speculation: the first (from the
    prefill) + round(I x E[X]) token steps, so its decode lasts about its own I iterations; an
    output cut at the context limit keeps its share of the iterations."""
    decode = np.maximum(served_output - 1, 0)
    share = decode / np.maximum(offered_output - 1, 1)
    steps = np.rint(iterations * tokens_per_iteration * share).astype(np.int64)
    return 1 + np.where(decode > 0, np.maximum(steps, 1), 0)


@dataclass(frozen=True)
class PreparedRequests:
    """The requests a run simulates (those arriving before its end; all of a closed loop's
    pool, unsent ones NaN), with their outputs as served and the token steps a replica runs."""

    n: int
    arrival: np.ndarray
    prompt: np.ndarray
    output: np.ndarray  #: as served (cut at the context limit)
    cached: np.ndarray
    steps: np.ndarray  #: ``output``, or with speculation its token steps (:func:`speculative_steps`)

    @property
    def kv_tokens(self) -> np.ndarray:
        """Output tokens whose KV a request may hold: its output, or its token steps if more."""
        return self.output if self.steps is self.output else np.maximum(self.output, self.steps)


def prepare(
    requests: RequestArrays, duration_s: float, warmup_s: float, concurrency: int | None,
    rc: ReplicaConfig, timer: IterationTimer,
) -> PreparedRequests:  # fmt: skip
    """Check a run's window and load, and cut ``requests`` to what it simulates on replicas
    of ``rc`` timed by ``timer`` (the decode side's, when disaggregated)."""
    if duration_s <= 0:
        raise ValueError(f"duration_s (={duration_s}) must be > 0")
    if not 0 <= warmup_s < duration_s:
        raise ValueError(f"warmup_s (={warmup_s}) must be in [0, duration_s={duration_s})")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency (={concurrency}) must be >= 1")
    n = len(requests) if concurrency else int(np.searchsorted(requests.arrival_s, duration_s, side="left"))
    arrival = np.full(n, np.nan) if concurrency else np.asarray(requests.arrival_s[:n], dtype=float)
    prompt = np.asarray(requests.prompt_tokens[:n], dtype=np.int64)
    offered = np.asarray(requests.output_tokens[:n], dtype=np.int64)
    output = served_output_tokens(prompt, offered, rc)
    cached = np.clip(np.asarray(requests.cached_tokens[:n], dtype=np.int64), 0, prompt - 1)
    steps = output
    spec = timer.speculation
    if spec is not None and requests.decode_iterations is not None:
        steps = speculative_steps(output, offered, np.asarray(requests.decode_iterations[:n]),
                                  spec.tokens_per_iteration)  # fmt: skip
    return PreparedRequests(n, arrival, prompt, output, cached, steps)


def with_sessions(table: RequestTable, requests: RequestArrays, prompt: np.ndarray) -> None:
    """Conversations: give ``table`` its session ids and reusable prefixes (their replicas
    then decide each turn's cached tokens)."""
    if requests.session is None or requests.reusable_tokens is None:
        return
    n = len(prompt)
    table.session = np.asarray(requests.session[:n], dtype=np.int64).tolist()
    table.reusable = np.minimum(np.asarray(requests.reusable_tokens[:n], dtype=np.int64), prompt - 1).tolist()
    table.shared_prefix = requests.shared_prefix_tokens


def count_output_tokens(replicas, output: np.ndarray, steps: np.ndarray) -> None:
    """Speculation: replicas count token steps, which pass the real output by the tokens the
    last verification accepts beyond it; scale their output-token counters to the real
    outputs (the stream's ratio, a simplification per replica)."""
    if not steps.sum() > 0:
        return
    ratio = float(output.sum()) / float(steps.sum())
    for replica in replicas:
        replica.stats.output_tokens *= ratio


def too_long_mask(prompt: np.ndarray, output: np.ndarray, rc: ReplicaConfig) -> np.ndarray:
    """Requests refused as too long: a prompt at or past the context limit, or prompt + (served)
    output needing more KV blocks than the whole replica has."""
    blocks = -(-(prompt + output) // rc.kv_block_tokens)
    return (prompt >= rc.max_context_tokens) | (blocks > rc.kv_blocks)


def simulate(
    config: EngineConfig,
    timer: IterationTimer,
    requests: RequestArrays,
    *,
    duration_s: float,
    warmup_s: float = 0.0,
    drain_s: float | None = None,
    concurrency: int | None = None,
    think_s: np.ndarray | None = None,
    failures: FailureInjection | None = None,
) -> SimulationRecord:
    """Serve ``requests`` (those arriving before ``duration_s``) on ``config.replicas`` replicas.

    duration_s: seconds of arrivals simulated; warmup_s: start of the measurement window;
    drain_s: most seconds simulated after ``duration_s`` to let admitted requests finish
    (default ``duration_s``).

    concurrency: closed-loop load instead (how ``vllm bench serve --max-concurrency``, NIM's
    and AIPerf's concurrency sweeps measure): that many clients each send a request, wait for
    it to end, think ``think_s[k]`` seconds (default 0) and send the next, in the order of
    ``requests`` (its ``arrival_s`` is ignored); the record's ``arrival_s`` holds the send
    times, and only requests sent before ``duration_s`` appear in it.

    failures: replicas fail and recover during the run (:mod:`simulator.inference.failures`);
    the record's ``failures`` logs them. None: they never fail.
    """
    if timer.max_tokens < config.replica.max_iteration_tokens:
        raise ValueError("timer tables are smaller than the replica's largest iteration")
    drain = duration_s if drain_s is None else drain_s
    rc = config.replica
    req = prepare(requests, duration_s, warmup_s, concurrency, rc, timer)
    n, arrival, prompt, output, cached, steps = req.n, req.arrival, req.prompt, req.output, req.cached, req.steps
    adapter = None if requests.adapter is None else np.asarray(requests.adapter[:n], dtype=np.int64)
    retrieval = None if requests.retrieval_s is None else np.asarray(requests.retrieval_s[:n], dtype=float)
    too_long = too_long_mask(prompt, req.kv_tokens, rc)

    env = simpy.Environment()
    table = RequestTable(prompt, steps, cached, adapter)
    with_sessions(table, requests, prompt)
    engine = _Engine(env, config, timer, table, too_long.tolist(), (warmup_s, duration_s), failures)
    probes = {"warmup": 0}
    if warmup_s > 0:
        probe = env.timeout(warmup_s)
        probe.callbacks.append(lambda _: probes.__setitem__("warmup", engine.waiting()))
    if concurrency:
        think = np.zeros(n) if think_s is None else np.asarray(think_s, dtype=float)
        if len(think) < n or np.any(think[:n] < 0):
            raise ValueError("think_s needs one non-negative time per request")
        engine.closed = _ClosedLoop(env, engine, arrival, think, concurrency, duration_s)
    else:
        env.process(_arrivals(env, arrival.tolist(), engine))
    env.run(until=duration_s)
    waiting_at_end = engine.waiting()
    limit = duration_s + drain
    while engine.in_system > 0 and env.peek() <= limit:
        env.step()
    end_s = max(env.now, duration_s) if engine.in_system == 0 else limit
    for replica in engine.replicas:
        replica.finalize(end_s)
    count_output_tokens(engine.replicas, output, steps)
    record = _record(config, table, engine, arrival, prompt, output, cached, duration_s, warmup_s,
                     end_s, probes["warmup"], waiting_at_end)  # fmt: skip
    if engine.failing is not None:
        record = dataclasses.replace(record, failures=engine.failing.log(n))
    if concurrency:  # keep the requests that were sent
        record = _first(record, engine.closed.issued)  # type: ignore[union-attr]
        adapter = None if adapter is None else adapter[: len(record.arrival_s)]
        retrieval = None if retrieval is None else retrieval[: len(record.arrival_s)]
    if adapter is None and retrieval is None:
        return record
    return dataclasses.replace(record, adapter=adapter, retrieval_s=retrieval)


def _first(record: SimulationRecord, k: int) -> SimulationRecord:
    """The record of requests 0..k-1 only (closed loop: the ones that were sent)."""
    per_request = ("arrival_s", "prompt_tokens", "output_tokens", "cached_tokens", "first_scheduled_s",
                   "first_token_s", "finish_s", "replica", "preemptions", "status", "drop_reason")  # fmt: skip
    cut = {name: getattr(record, name)[:k] for name in per_request}
    if record.failures is not None:
        cut["failures"] = dataclasses.replace(record.failures, retries=record.failures.retries[:k])
    return dataclasses.replace(record, **cut)


def _record(
    config: EngineConfig,
    table: RequestTable,
    engine: _Engine,
    arrival: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    cached: np.ndarray,
    duration_s: float,
    warmup_s: float,
    end_s: float,
    waiting_at_warmup: int,
    waiting_at_end: int,
) -> SimulationRecord:
    def times(values: list[float]) -> np.ndarray:
        out = np.asarray(values, dtype=float)
        out[out < 0] = np.nan
        return out

    status_code = np.asarray(table.status, dtype=np.int64)
    status = np.where(status_code == DONE, "completed", np.where(status_code == DROPPED, "dropped",
                      np.where(status_code == FAILED, "failed", "in_flight")))  # fmt: skip
    reasons = np.asarray(DROP_REASONS, dtype=object)[np.asarray(engine.drop_reason, dtype=int)]
    window = duration_s - warmup_s
    return SimulationRecord(
        arrival_s=arrival,
        prompt_tokens=prompt,
        output_tokens=output,
        cached_tokens=np.asarray(table.cached, dtype=np.int64) if table.session is not None else cached,
        first_scheduled_s=times(table.first_sched),
        first_token_s=times(table.first_token),
        finish_s=times(table.finish),
        replica=np.asarray(table.replica, dtype=np.int64),
        preemptions=np.asarray(table.preemptions, dtype=np.int64),
        status=status.astype(object),
        drop_reason=reasons,
        replica_stats=tuple(r.stats for r in engine.replicas),
        duration_s=duration_s,
        warmup_s=warmup_s,
        end_s=end_s,
        mean_in_system=engine.area / window,
        waiting_at_warmup=waiting_at_warmup,
        waiting_at_end=waiting_at_end,
        config=config,
    )
