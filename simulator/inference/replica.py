"""One serving replica: a continuous-batching scheduler in the manner of vLLM.

At every iteration boundary the scheduler (:meth:`Replica._plan`)

1. makes sure the running decoders have a KV slot for their next token; when the KV cache is
   short it pre-empts the newest admitted request (recompute: its blocks are freed, it goes back
   to the front of the waiting queue and its prompt plus the tokens generated so far are
   prefilled again, as vLLM does), counting pre-emptions;
2. spends the iteration's token budget (``max_batched_tokens``): one token per running decoder,
   then the chunks of prompts being prefilled (chunked prefill, oldest first), then admits
   waiting requests FCFS while the batch cap (``max_batch_size``), the budget and the KV cache
   allow. A request is admitted when the blocks for its whole prompt are free, keeping a
   watermark of free blocks (1% of the cache, like vLLM's ``watermark``) when the batch is not
   empty; it stops at the first request that does not fit (FCFS, no overtaking);
   With ``admission="reserve"`` (TensorRT-LLM's ``GUARANTEED_NO_EVICT``) a request is admitted
   only when the blocks for its prompt and its whole output are free besides those promised to
   the batch, so step 1 never pre-empts;
3. runs the iteration: prefill chunks plus one decode token per running request, timed by the
   cost model (:class:`~simulator.inference.timing.IterationTimer`).

A prefix-cache hit means the cached prompt tokens are already in the KV cache: they need no
compute but their blocks are held. The last prefill chunk of a request yields its first token.

Events scale with requests, not tokens: when nothing can change the batch's membership
(no prefill running, nobody admissible, no completion yet) the replica schedules one event for a
whole run of decode iterations, priced in closed form (:class:`DecodeRun`). A run ends at the
first completion or just before the KV cache would overflow. An arrival that could be admitted
cuts the run at the first iteration boundary after it (found by inverting the closed form); a
cut is a new event, the old one is ignored when it fires. A mixed (prefill) iteration that
completes every prefill without finishing anybody is merged with the decode run that follows.

Running decoders are kept as aggregates, not per-request arrays: the replica counts iterations
``it``; a decoder r holds ``a_r + it`` tokens of KV during iteration ``it`` and finishes after
iteration ``fin_r - 1``. A heap of ``(fin_r, r)`` gives the next completion, the sum of ``a_r``
the batch's context, and the counts of ``a_r mod block`` give exact block usage in O(block).

LoRA adapters: a request may name an adapter (``RequestTable.adapter``, -1 = the base model).
The replica counts the requests per adapter in its batch and among its decoders; an iteration
pays the adapter overhead of the distinct adapters of the requests it runs
(:meth:`IterationTimer.adapter_s`). With ``max_adapters_per_batch`` a waiting request whose
adapter is not in the batch while the batch already holds that many distinct adapters is
skipped, and the scheduler looks past it for requests it can admit (up to ``max_batch_size``
skipped requests per plan), as vLLM's scheduler does for ``max_loras``; the skipped keep their
places in the queue. A KV shortage still stops admissions at the first request that does not
fit.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.inference.timing import DecodeRun, IterationTimer

# request status codes (FAILED: lost with a failed replica, not retried)
NOT_ARRIVED, WAITING, PREFILL, DECODE, DONE, DROPPED, FAILED = -1, 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class ReplicaConfig:
    """Scheduler limits of one replica."""

    max_batch_size: int  #: requests in the batch (prefilling + decoding)
    max_batched_tokens: int  #: token budget per iteration (decodes count one each)
    kv_blocks: int  #: KV-cache blocks of the replica
    kv_block_tokens: int  #: tokens per block
    max_context_tokens: int = 1 << 62  #: prompt + output limit of the model
    kv_watermark: float = 0.01  #: share of blocks kept free when admitting into a busy batch
    max_adapters_per_batch: int | None = None  #: distinct LoRA adapters in a batch (None: no cap)
    #: "preempt": admit when the prompt fits, pre-empt the newest when decoding runs short (vLLM,
    #: SGLang); "reserve": admit only when prompt + whole output fit, never evict (TensorRT-LLM's
    #: GUARANTEED_NO_EVICT)
    admission: str = "preempt"

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_batched_tokens", "kv_block_tokens",
                     "max_context_tokens"):  # fmt: skip
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} (={value}) must be >= 1")
        if self.kv_blocks < 0:
            raise ValueError(f"kv_blocks (={self.kv_blocks}) must be >= 0")
        if not 0 <= self.kv_watermark < 1:
            raise ValueError(f"kv_watermark (={self.kv_watermark}) must be in [0, 1)")
        if self.admission not in ("preempt", "reserve"):
            raise ValueError(f"admission (={self.admission!r}) must be 'preempt' or 'reserve'")
        if self.max_adapters_per_batch is not None and self.max_adapters_per_batch < 1:
            raise ValueError(f"max_adapters_per_batch (={self.max_adapters_per_batch}) must be >= 1")

    @property
    def watermark_blocks(self) -> int:
        return int(self.kv_watermark * self.kv_blocks)

    @property
    def max_iteration_tokens(self) -> int:
        """Most tokens one iteration can hold (sizes the timer's tables)."""
        return max(self.max_batched_tokens, self.max_batch_size)


class RequestTable:
    """Per-request state shared by the replicas: plain lists indexed by request id (fast)."""

    def __init__(
        self,
        prompt: np.ndarray,
        output: np.ndarray,
        cached: np.ndarray,
        adapter: np.ndarray | None = None,
    ) -> None:
        n = len(prompt)
        #: LoRA adapter id per request (-1: base model); None when no request uses one
        self.adapter: list[int] | None = None if adapter is None else np.asarray(adapter).tolist()
        self.prompt: list[int] = prompt.tolist()
        self.output: list[int] = output.tolist()
        self.cached: list[int] = cached.tolist()
        self.target: list[int] = list(self.prompt)  # tokens the current prefill must hold
        self.done: list[int] = list(self.cached)  # prefill tokens in the KV cache
        self.gen: list[int] = [0] * n  # output tokens before the current prefill
        self.a: list[int] = [0] * n  # decoder offset: KV tokens during iteration x = a + x
        self.fin: list[int] = [0] * n  # decoder finishes when the iteration count reaches fin
        self.seq: list[int] = [-1] * n  # admission number, unique across replicas (newest first out)
        self.next_seq = 0
        self.status: list[int] = [NOT_ARRIVED] * n
        self.first_sched: list[float] = [-1.0] * n
        self.first_token: list[float] = [-1.0] * n
        self.finish: list[float] = [-1.0] * n
        self.replica: list[int] = [-1] * n
        self.preemptions: list[int] = [0] * n
        #: conversations (None: ``cached`` is fixed): session id and reusable prefix per request
        self.session: list[int] | None = None
        self.reusable: list[int] | None = None
        self.shared_prefix = 0  #: tokens of the system prompt every session starts with
        #: True where ``cached`` is KV that arrived with the request (disaggregated decode): its
        #: own blocks, lost on a pre-emption, after which the whole prompt is recomputed
        self.cached_lost_on_preemption = False


class ReplicaStats:
    """Counters of one replica inside the measurement window [start_s, end_s]."""

    __slots__ = (
        "batch_sum",
        "busy_s",
        "end_s",
        "iterations",
        "kv_block_seconds",
        "output_tokens",
        "preemptions",
        "prefill_busy_s",
        "prefill_tokens",
        "start_s",
    )  # fmt: skip

    def __init__(self, start_s: float, end_s: float) -> None:
        self.start_s, self.end_s = start_s, end_s
        self.busy_s = 0.0
        self.iterations = 0.0
        self.batch_sum = 0.0
        self.prefill_tokens = 0.0
        self.output_tokens = 0.0
        self.kv_block_seconds = 0.0
        self.preemptions = 0
        self.prefill_busy_s = 0.0  # busy seconds of iterations that ran prefill chunks


class Replica:
    """The scheduler of one replica, driven by simpy timeouts with callbacks."""

    def __init__(
        self,
        index: int,
        env: simpy.Environment,
        timer: IterationTimer,
        config: ReplicaConfig,
        table: RequestTable,
        waiting: deque[int],
        on_finish: Callable[[float, int], None],
        stats: ReplicaStats,
        shared_queue: bool = False,
    ) -> None:
        self.index = index
        self.shared = shared_queue
        self.env = env
        self.timer = timer
        self.config = config
        self.t = table
        self.waiting = waiting  # own FCFS queue, or the shared one
        self.on_finish = on_finish
        self.stats = stats
        self.max_batch = config.max_batch_size
        self.block = config.kv_block_tokens
        self.total_blocks = config.kv_blocks
        self.watermark = config.watermark_blocks
        self.reserve = config.admission == "reserve"
        #: whether iterations with prompt chunks count as prefill-busy (power; a disaggregated
        #: decode replica's one-token chunks are decodes)
        self.count_prefill_busy = True
        self.reserved_blocks = 0  # reserve admission: blocks promised to the admitted requests
        self._neg_res = -np.arange(self.block, dtype=np.int64)
        # router counters
        self.outstanding = 0  # in this replica's queue or batch (own queue: routed, unfinished)
        self.active = 0  # requests in the batch
        self.pending = 0  # offered by a shared-queue router since the last plan
        # batch state
        self.it = 0  # iterations run
        self.heap: list[tuple[int, int]] = []  # (fin, rid) of decoders, lazily cleaned
        self.b = 0  # decoders
        self.a_sum = 0  # sum of a_r over decoders
        self.res_counts = np.zeros(self.block, dtype=np.int64)  # decoders by a_r mod block
        self.prefilling: list[int] = []  # admission order
        self.prefill_blocks = 0
        self.order: list[tuple[int, int]] = []  # (seq, rid) admissions, for pre-emption
        # the segment in progress: [mixed iteration] + decode run
        self.busy = False
        self.event: simpy.Event | None = None
        self.t0 = 0.0
        self.chunks: list[tuple[int, int]] | None = None
        self.t_first = 0.0
        self.run: DecodeRun | None = None
        self.n_planned = 0
        self.seg_mixed_batch = 0
        self.seg_run_batch = 0
        self.seg_kv_start = 0.0
        # LoRA adapters: requests per adapter id in the batch / among the decoders
        self.adapter_of = table.adapter
        self.adapter_cap = config.max_adapters_per_batch if table.adapter is not None else None
        self.batch_adapters: dict[int, int] = {}
        self.dec_adapters: dict[int, int] = {}
        # prefix cache of finished turns' KV in the free blocks (conversations only)
        self.cache_on = table.session is not None
        self.prefix_cache: OrderedDict[int, int] = OrderedDict()  # session -> tokens; -1: system prompt
        self.cache_blocks = 0
        self.down = False  # failed and not yet back (simulator.inference.failures)

    # ------------------------------------------------------------------ adapters
    @staticmethod
    def _count_in(counts: dict[int, int], adapter: int) -> None:
        if adapter >= 0:
            counts[adapter] = counts.get(adapter, 0) + 1

    @staticmethod
    def _count_out(counts: dict[int, int], adapter: int) -> None:
        if adapter >= 0:
            left = counts[adapter] - 1
            if left:
                counts[adapter] = left
            else:
                del counts[adapter]

    def _adapter_blocked(self, rid: int) -> bool:
        """Whether ``rid``'s adapter cannot join the batch (the cap of distinct adapters)."""
        a = self.adapter_of[rid]  # type: ignore[index]
        return a >= 0 and a not in self.batch_adapters and len(self.batch_adapters) >= self.adapter_cap  # type: ignore[operator]

    # ------------------------------------------------------------------ prefix cache
    def _cache_hit(self, rid: int) -> int:
        """Prompt tokens of ``rid`` found in the cache: its session's last turn, else the system
        prompt; whole blocks only (vLLM caches full blocks), the last prompt token computed."""
        t = self.t
        cache = self.prefix_cache
        reusable = t.reusable[rid]  # type: ignore[index]
        hit = min(cache.get(t.session[rid], 0), reusable)  # type: ignore[index]
        if hit < t.shared_prefix and -1 in cache:
            hit = min(t.shared_prefix, reusable)
        hit = hit // self.block * self.block
        return min(hit, t.target[rid] - 1)

    def _cache_take(self, rid: int) -> None:
        """``rid`` was admitted: its session's cached KV becomes its own blocks; the shared system
        prompt stays cached (counted in the request as well: a simplification)."""
        cache = self.prefix_cache
        tokens = cache.pop(self.t.session[rid], None)  # type: ignore[index]
        if tokens is not None:
            self.cache_blocks -= -(-tokens // self.block)
        if -1 in cache:
            cache.move_to_end(-1)

    def _cache_keep(self, rid: int) -> None:
        """``rid`` finished: the KV of its prompt and answer stays cached for its next turn."""
        t = self.t
        cache = self.prefix_cache
        session = t.session[rid]  # type: ignore[index]
        old = cache.pop(session, None)
        if old is not None:
            self.cache_blocks -= -(-old // self.block)
        tokens = t.prompt[rid] + t.output[rid]
        cache[session] = tokens
        self.cache_blocks += -(-tokens // self.block)
        shared = t.shared_prefix
        if shared > 0 and -1 not in cache:
            cache[-1] = shared
            self.cache_blocks += -(-shared // self.block)

    def _cache_evict(self) -> None:
        """Least recently used entries out until the cache fits the blocks nobody runs on."""
        free = self.total_blocks - self._decode_blocks(self.it) - self.prefill_blocks
        cache = self.prefix_cache
        while cache and self.cache_blocks > free:
            _, tokens = cache.popitem(last=False)
            self.cache_blocks -= -(-tokens // self.block)

    # ------------------------------------------------------------------ arrivals
    def enqueue(self, rid: int, now: float) -> None:
        """A request routed to this replica's own queue."""
        waiting = self.waiting
        waiting.append(rid)
        self.t.status[rid] = WAITING
        self.outstanding += 1
        if not self.busy:
            self._plan(now)
        elif self.active < self.max_batch and self.run is not None and (
            len(waiting) == 1 or (self.adapter_cap is not None and not self._adapter_blocked(rid))
        ):  # with an adapter cap the queue ahead may be skipped
            self._cut(now)

    def offer(self, now: float) -> None:
        """A shared-queue router put a request in the shared queue and chose this replica."""
        self.pending += 1
        if not self.busy:
            self._plan(now)
        elif self.run is not None:
            self._cut(now)

    # ------------------------------------------------------------------ segment timing
    def _boundary_s(self, n: int) -> float:
        """Time of the boundary after ``n`` iterations of the current segment."""
        if self.chunks is not None:
            if n == 0:
                return self.t0
            run = self.run
            return self.t0 + self.t_first + (run.elapsed_s(n - 1) if run is not None else 0.0)
        return self.t0 + self.run.elapsed_s(n)  # type: ignore[union-attr]

    def _cut(self, now: float) -> None:
        """End the current segment at the first iteration boundary at or after ``now``."""
        run = self.run
        if self.chunks is not None:
            if now <= self.t0:
                n = 0
            elif now <= self.t0 + self.t_first or run is None:
                n = 1
            else:
                n = 1 + run.iterations_until(now - self.t0 - self.t_first)
        else:
            n = run.iterations_until(now - self.t0)  # type: ignore[union-attr]
        if n < self.n_planned:
            self.n_planned = n
            self._schedule(self._boundary_s(n) - now)

    def _schedule(self, delay: float) -> None:
        event = self.env.timeout(delay if delay > 0 else 0.0)
        event.callbacks.append(self._on_boundary)
        self.event = event

    def _on_boundary(self, event: simpy.Event) -> None:
        if event is not self.event:
            return  # superseded by a cut
        now = self.env.now
        self._advance(self.n_planned, now)
        self._plan(now)

    # ------------------------------------------------------------------ KV accounting
    def _decode_blocks(self, x: int) -> int:
        """Exact blocks the decoders hold during iteration ``x``: sum of ceil((a_r + x)/block)."""
        if self.b == 0:
            return 0
        pad = int(((self._neg_res - x) % self.block) @ self.res_counts)
        return (self.a_sum + self.b * x + pad) // self.block

    def _decode_blocks_bound(self, a_sum: int, b: int, x: int) -> float:
        """Upper bound of the decoders' blocks during iteration ``x`` (O(1))."""
        return (a_sum + b * x + b * (self.block - 1)) / self.block

    # ------------------------------------------------------------------ state changes
    def _advance(self, n: int, now: float) -> None:
        """Apply the first ``n`` iterations of the segment that started at ``t0``."""
        t = self.t
        self.busy = False
        self.event = None
        decode_iters = n
        chunks = self.chunks
        prefill_tokens = first_tokens = 0
        if chunks is not None and n >= 1:
            decode_iters = n - 1
            t1 = self.t0 + self.t_first
            self.it += 1
            if self.heap and self.heap[0][0] <= self.it:
                self._pop_finished(t1)
            done, target = t.done, t.target
            completed = False
            for rid, c in chunks:
                prefill_tokens += c
                d = done[rid] + c
                done[rid] = d
                if d >= target[rid]:
                    completed = True
                    first_tokens += 1
                    self._prefill_complete(rid, t1)
            if completed:
                if first_tokens == len(self.prefilling):
                    self.prefilling = []
                else:
                    status = t.status
                    self.prefilling = [r for r in self.prefilling if status[r] == PREFILL]
        if decode_iters > 0:
            self.it += decode_iters
            if self.heap and self.heap[0][0] <= self.it:
                self._pop_finished(now)
        # statistics, clipped to the measurement window
        stats = self.stats
        t0 = self.t0
        lo = max(stats.start_s, t0)
        hi = min(stats.end_s, now)
        if hi > lo and now > t0:
            share = (hi - lo) / (now - t0)
            iterations = n
            batch = self.seg_run_batch * decode_iters
            out_tokens = self.seg_run_batch * decode_iters
            if chunks is not None and n >= 1:
                batch += self.seg_mixed_batch
                out_tokens += self.seg_mixed_batch - len(chunks) + first_tokens
            stats.busy_s += hi - lo
            if chunks is not None and n >= 1 and self.count_prefill_busy:  # mixed iteration [t0, t0 + t_first]
                stats.prefill_busy_s += max(min(hi, t0 + self.t_first) - lo, 0.0)
            stats.iterations += iterations * share
            stats.batch_sum += batch * share
            stats.prefill_tokens += prefill_tokens * share
            stats.output_tokens += out_tokens * share
            b, block = self.b, self.block
            kv_end = (self.a_sum + b * self.it + b * (block - 1) / 2) / block + self.prefill_blocks
            stats.kv_block_seconds += (self.seg_kv_start + kv_end) / 2 * (hi - lo)

    def _pop_finished(self, now: float) -> None:
        t = self.t
        heap, status, fin, a, where = self.heap, t.status, t.fin, t.a, t.replica
        it, me = self.it, self.index
        while heap and heap[0][0] <= it:
            f, rid = heapq.heappop(heap)
            if status[rid] != DECODE or fin[rid] != f or where[rid] != me:
                continue  # stale entry of a pre-empted request
            ar = a[rid]
            self.b -= 1
            self.a_sum -= ar
            self.res_counts[ar % self.block] -= 1
            if self.adapter_of is not None:
                self._count_out(self.batch_adapters, self.adapter_of[rid])
                self._count_out(self.dec_adapters, self.adapter_of[rid])
            self._finish(rid, now)

    def _finish(self, rid: int, now: float) -> None:
        t = self.t
        t.status[rid] = DONE
        t.finish[rid] = now
        if self.cache_on:
            self._cache_keep(rid)
        if self.reserve:
            self.reserved_blocks -= -(-(t.prompt[rid] + t.output[rid]) // self.block)
        self.active -= 1
        self.outstanding -= 1
        self.on_finish(now, rid)

    def _prefill_complete(self, rid: int, now: float) -> None:
        """The last chunk of ``rid`` ran in iteration ``it - 1``: it produced a token."""
        t = self.t
        self.prefill_blocks -= -(-t.target[rid] // self.block)
        if t.first_token[rid] < 0:
            t.first_token[rid] = now
        g = t.gen[rid] + 1
        t.gen[rid] = g
        if g >= t.output[rid]:
            if self.adapter_of is not None:
                self._count_out(self.batch_adapters, self.adapter_of[rid])
            self._finish(rid, now)
            return
        if self.adapter_of is not None:
            self._count_in(self.dec_adapters, self.adapter_of[rid])
        ar = t.target[rid] + 1 - self.it
        fin = self.it + t.output[rid] - g
        t.a[rid] = ar
        t.fin[rid] = fin
        t.status[rid] = DECODE
        self.b += 1
        self.a_sum += ar
        self.res_counts[ar % self.block] += 1
        heapq.heappush(self.heap, (fin, rid))

    def _preempt_newest(self) -> None:
        """Recompute pre-emption of the most recently admitted request in the batch."""
        t = self.t
        while True:
            seq, rid = self.order.pop()
            if t.seq[rid] == seq and t.status[rid] in (PREFILL, DECODE) and t.replica[rid] == self.index:
                break
        if self.adapter_of is not None:
            self._count_out(self.batch_adapters, self.adapter_of[rid])
            if t.status[rid] == DECODE:
                self._count_out(self.dec_adapters, self.adapter_of[rid])
        if t.status[rid] == DECODE:
            ar = t.a[rid]
            self.b -= 1
            self.a_sum -= ar
            self.res_counts[ar % self.block] -= 1
            gen = ar + self.it - t.prompt[rid]  # tokens generated so far
            t.gen[rid] = gen
            t.target[rid] = t.prompt[rid] + gen
        else:
            self.prefilling.remove(rid)
            self.prefill_blocks -= -(-t.target[rid] // self.block)
        if t.cached_lost_on_preemption:
            t.cached[rid] = 0
        t.done[rid] = t.cached[rid]
        t.status[rid] = WAITING
        t.preemptions[rid] += 1
        self.active -= 1
        if self.shared:
            self.outstanding -= 1
        self.stats.preemptions += 1
        self.waiting.appendleft(rid)

    # ------------------------------------------------------------------ the scheduler
    def _plan(self, now: float) -> None:
        """Schedule the next segment starting at ``now`` (an iteration boundary), or go idle."""
        t = self.t
        it = self.it
        block = self.block
        total = self.total_blocks
        self.pending = 0
        # 1. KV slots for the decoders' next token: pre-empt the newest while short
        b = self.b
        if b and (self.a_sum + b * (it + block - 1)) / block + self.prefill_blocks > total:
            while self.b and self._decode_blocks(it) + self.prefill_blocks > total:
                self._preempt_newest()
        heap = self.heap
        if heap:  # drop stale entries (pre-empted decoders) from the top
            status, fin, where, me = t.status, t.fin, t.replica, self.index
            while True:
                f, rid = heap[0]
                if status[rid] == DECODE and fin[rid] == f and where[rid] == me:
                    break
                heapq.heappop(heap)
                if not heap:
                    break
        b = self.b
        if self.cache_on and self.prefix_cache:  # the decoders' growth evicts before lookups
            self._cache_evict()
        # 2. token budget: decodes first, then running prefills, then admissions (FCFS)
        budget = self.config.max_batched_tokens - b
        chunks: list[tuple[int, int]] = []
        done, target = t.done, t.target
        for rid in self.prefilling:
            if budget <= 0:
                break
            c = target[rid] - done[rid]
            c = min(c, budget)
            chunks.append((rid, c))
            budget -= c
        waiting = self.waiting
        if waiting and budget > 0 and self.active < self.max_batch:
            used = self._decode_blocks_bound(self.a_sum, b, it) + self.prefill_blocks
            exact = False
            adapter_of = self.adapter_of
            capped = self.adapter_cap is not None
            skipped: list[int] = []
            while waiting and budget > 0 and self.active < self.max_batch:
                rid = waiting[0]
                if capped and self._adapter_blocked(rid):
                    skipped.append(waiting.popleft())  # look past it (see the module docstring)
                    if len(skipped) >= self.max_batch:
                        break
                    continue
                if self.cache_on and t.first_sched[rid] < 0:
                    hit = self._cache_hit(rid)  # first admission (a pre-empted one recomputes)
                    t.cached[rid] = done[rid] = hit
                need = -(-target[rid] // block)
                if self.reserve:  # room for the whole output (which covers the prompt), or wait
                    whole = -(-(t.prompt[rid] + t.output[rid]) // block)
                    if self.reserved_blocks + whole > total:
                        break
                    self.reserved_blocks += whole
                else:
                    reserve = self.watermark if self.active else 0
                    if used + need + reserve > total:
                        if exact:
                            break
                        used = self._decode_blocks(it) + self.prefill_blocks
                        exact = True
                        if used + need + reserve > total:
                            break
                waiting.popleft()
                if self.cache_on:
                    self._cache_take(rid)
                used += need
                self.prefill_blocks += need
                self.active += 1
                if self.shared:
                    self.outstanding += 1
                if adapter_of is not None:
                    self._count_in(self.batch_adapters, adapter_of[rid])
                self.prefilling.append(rid)
                t.status[rid] = PREFILL
                seq = t.next_seq
                t.next_seq = seq + 1
                t.seq[rid] = seq
                self.order.append((seq, rid))
                t.replica[rid] = self.index
                if t.first_sched[rid] < 0:
                    t.first_sched[rid] = now
                c = target[rid] - done[rid]
                c = min(c, budget)
                chunks.append((rid, c))
                budget -= c
            if skipped:
                waiting.extendleft(reversed(skipped))
            if len(self.order) > 4 * self.active + 64:
                status = t.status
                self.order = [(s, r) for s, r in self.order if t.seq[r] == s and status[r] in
                              (PREFILL, DECODE)]  # fmt: skip
        if self.cache_on and self.prefix_cache:
            self._cache_evict()
        self.t0 = now
        # KV blocks in use (decoders counted at half a block of rounding each), for occupancy
        self.seg_kv_start = (self.a_sum + b * it + b * (block - 1) / 2) / block + self.prefill_blocks
        if chunks:
            self._plan_mixed(now, chunks, b)
        elif b:
            self._plan_decode(now, b)
        else:
            self.chunks = None
            self.run = None
            return  # idle
        self.busy = True

    def _plan_mixed(self, now: float, chunks: list[tuple[int, int]], b: int) -> None:
        """One iteration with prefill chunks, merged with the decode run after it if possible."""
        t = self.t
        it = self.it
        done, target, gen, output = t.done, t.target, t.gen, t.output
        prefill_tokens = 0
        pairs = 0.0
        seqs = 0
        merge = len(chunks) == len(self.prefilling)
        join_a = 0
        join_fin = 1 << 62
        for rid, c in chunks:
            d = done[rid]
            prefill_tokens += c
            pairs += c * (d + (c + 1) / 2)
            if d + c >= target[rid]:
                seqs += 1
                if gen[rid] + 1 >= output[rid]:
                    merge = False
                else:
                    ar = target[rid] + 1 - (it + 1)
                    join_a += ar
                    f = (it + 1) + output[rid] - (gen[rid] + 1)
                    join_fin = min(join_fin, f)
            else:
                merge = False
        timer = self.timer
        distinct = 0
        adapter_of = self.adapter_of
        if adapter_of is not None:  # adapters of the decoders and of the chunks running now
            dec = self.dec_adapters
            extra = {adapter_of[rid] for rid, _ in chunks} - dec.keys()
            extra.discard(-1)
            distinct = len(dec) + len(extra)
        self.t_first = timer.iteration_s(prefill_tokens, pairs, seqs, b, self.a_sum + b * it, distinct,
                                         len(chunks))  # fmt: skip
        self.chunks = chunks
        self.seg_mixed_batch = b + len(chunks)
        self.run = None
        self.n_planned = 1
        heap = self.heap
        if merge and heap and heap[0][0] <= it + 1:
            merge = False
        if merge and self.waiting and self.active < self.max_batch:
            merge = False  # the queue's head may be admitted at the next boundary
        delay = self.t_first
        if merge:
            b2 = b + seqs
            a2 = self.a_sum + join_a
            fin_min = heap[0][0] if heap and heap[0][0] < join_fin else join_fin
            k = fin_min - (it + 1)
            if k >= 1 and self._decode_blocks_bound(a2, b2, it + k) <= self.total_blocks:
                # the chunks' requests all join the decoders: the same distinct adapters
                run = self.run = timer.decode_run(b2, a2 + b2 * (it + 1), distinct)
                self.n_planned = 1 + k
                self.seg_run_batch = b2
                delay += run.elapsed_s(k)
        self._schedule(delay)

    def _plan_decode(self, now: float, b: int) -> None:
        """A run of decode iterations up to the next completion (or KV exhaustion)."""
        it = self.it
        k = self.heap[0][0] - it
        limit = self.total_blocks - self.prefill_blocks
        last = it + k - 1
        if self._decode_blocks_bound(self.a_sum, b, last) > limit and self._decode_blocks(last) > limit:
            lo, hi = it, last  # fits during iteration lo, not during hi
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._decode_blocks(mid) > limit:
                    hi = mid
                else:
                    lo = mid
            k = hi - it  # stop before iteration hi; the next plan pre-empts
        self.chunks = None
        self.run = self.timer.decode_run(b, self.a_sum + b * it, len(self.dec_adapters))
        self.n_planned = k
        self.seg_run_batch = b
        self._schedule(self.run.elapsed_s(k))

    # ------------------------------------------------------------------ failures
    def fail(self, now: float, down_load: int) -> list[int]:
        """The replica fails at ``now``: the segment in progress is abandoned (its busy time so
        far counted, its tokens lost), the batch, its own queue, the KV and prefix caches are
        emptied, and it shows ``down_load`` to the routers until :meth:`recover`. Returns the
        requests that were on it (its batch, and its own queue), in no particular order."""
        t = self.t
        me = self.index
        status, seq_of, where = t.status, t.seq, t.replica
        lost = [rid for seq, rid in self.order
                if seq_of[rid] == seq and status[rid] in (PREFILL, DECODE) and where[rid] == me]  # fmt: skip
        if not self.shared:
            lost.extend(self.waiting)
            self.waiting.clear()
        if self.busy:  # busy time of the segment cut short, clipped to the window
            stats = self.stats
            lo, hi = max(self.t0, stats.start_s), min(now, stats.end_s)
            if hi > lo:
                stats.busy_s += hi - lo
        self.busy = False
        self.event = None  # the pending boundary, if any, is ignored when it fires
        self.chunks = None
        self.run = None
        self.heap = []
        self.b = 0
        self.a_sum = 0
        self.res_counts[:] = 0
        self.prefilling = []
        self.prefill_blocks = 0
        self.order = []
        self.reserved_blocks = 0
        self.active = 0
        self.batch_adapters = {}
        self.dec_adapters = {}
        self.prefix_cache.clear()
        self.cache_blocks = 0
        self.outstanding = down_load
        self.pending = down_load
        self.down = True
        return lost

    def recover(self, now: float) -> None:
        """Back after a failure, empty: it takes requests again (and, with a shared queue, the
        queue's head at once)."""
        self.down = False
        self.outstanding = 0
        self.pending = 0
        if self.shared and self.waiting:
            self._plan(now)

    def finalize(self, end_s: float) -> None:
        """Account the busy time of a segment still running when the simulation stops."""
        if not self.busy:
            return
        stats = self.stats
        seg_end = min(self._boundary_s(self.n_planned), end_s)
        lo = max(self.t0, stats.start_s)
        hi = min(seg_end, stats.end_s)
        if hi > lo:
            stats.busy_s += hi - lo
