"""Disaggregated serving: prefill replicas and decode replicas in separate groups.

How DistServe (Zhong et al., OSDI 2024), Splitwise (Patel et al., ISCA 2024), vLLM's and
llm-d's P/D disaggregation and NVIDIA Dynamo serve: a request is prefilled on a prefill replica
(its last prompt chunk yields the first token), its KV cache is sent over the link between the
groups, and a decode replica generates the rest. Decode iterations then never wait behind
prompt chunks, at the price of the transfer and of two groups to size.

Here one *unit* is ``prefill.replicas`` prefill replicas + ``decode.replicas`` decode replicas
(each group with its own scheduler limits, timer and router); the projection scales whole units,
so the unit's P:D ratio is the plan's. Per request:

1. the prefill group serves it as a request of its prompt and one output token;
2. when that token is out, the KV cache of the prompt moves to the decode group:
   ``kv_transfer_latency_s + prompt x kv_bytes_per_token / kv_transfer_bytes_per_s``;
3. the decode group admits it with the prompt already in its KV cache (a prefix hit of the whole
   prompt; the first token is fed as a one-token step) and generates the remaining tokens.

TTFT is when the KV lands on the decode side (the first token is streamed from there, as llm-d
and Dynamo return it), so the transfer is charged to TTFT. Simplifications: a decode-side
pre-emption recomputes the request there (no second transfer); the transfer link is not shared
(no contention between concurrent transfers); prefill and decode share one GPU type (the
deployment's pool).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import simpy

from simulator.inference.engine import (
    DROP_REASONS,
    EngineConfig,
    ReplicaGroup,
    RequestArrays,
    SimulationRecord,
    _arrivals,
    _ClosedLoop,
    _Engine,
    count_output_tokens,
    prepare,
    too_long_mask,
    with_sessions,
)
from simulator.inference.replica import DONE, DROPPED, RequestTable
from simulator.inference.timing import IterationTimer


@dataclass(frozen=True)
class DisaggregatedConfig:
    """One unit: a prefill group and a decode group, and the KV link between them."""

    prefill: EngineConfig
    decode: EngineConfig
    prefill_timer: IterationTimer
    kv_transfer_s_per_token: float  #: seconds per prompt token of KV sent (bytes / bandwidth)
    kv_transfer_latency_s: float = 0.0  #: fixed seconds per transfer
    prefill_gpus_per_replica: int = 1
    decode_gpus_per_replica: int = 1

    def __post_init__(self) -> None:
        if self.kv_transfer_s_per_token < 0 or self.kv_transfer_latency_s < 0:
            raise ValueError("KV transfer times must be >= 0")

    def transfer_s(self, prompt_tokens: np.ndarray) -> np.ndarray:
        """Seconds to move the KV of prompts of these lengths to the decode group."""
        return self.kv_transfer_latency_s + self.kv_transfer_s_per_token * np.asarray(prompt_tokens, float)


class _PrefillGroup(_Engine):
    """The prefill replicas: a finished request (its first token out) is handed to decode."""

    handoff: _Handoff

    def on_finish(self, now: float, rid: int) -> None:
        self._leave(now, rid)
        self.handoff.prefilled(now, rid)

    def _drop(self, rid: int, reason: int) -> None:
        self.table.status[rid] = DROPPED
        self.drop_reason[rid] = reason
        self.handoff.dropped(rid)


class _DecodeGroup(_Engine):
    """The decode replicas: requests arrive with their prompt's KV already transferred."""

    handoff: _Handoff

    def on_finish(self, now: float, rid: int) -> None:
        super().on_finish(now, rid)
        self.handoff.decoded(now)

    def _drop(self, rid: int, reason: int) -> None:
        super()._drop(rid, reason)
        self.handoff.dropped(rid)


class _Handoff:
    """Moves requests from the prefill group to the decode group after their KV transfer."""

    def __init__(self, env: simpy.Environment, prefill: _PrefillGroup, decode: _DecodeGroup,
                 transfer_s: list[float], output: list[int]) -> None:  # fmt: skip
        self.env, self.prefill, self.decode = env, prefill, decode
        self.transfer_s, self.output = transfer_s, output
        self.in_transfer = 0
        self.area = 0.0  # Little's area of requests in transfer, over the window
        self.landed = [-1.0] * len(output)  # when the KV reached the decode group
        self.closed: _ClosedLoop | None = None
        prefill.handoff = decode.handoff = self

    def prefilled(self, now: float, rid: int) -> None:
        if self.output[rid] <= 1:  # nothing left to decode
            self.landed[rid] = now
            self.decoded(now)
            return
        self.in_transfer += 1
        self.area += self.prefill._credit(now)
        event = self.env.timeout(self.transfer_s[rid])
        event.callbacks.append(lambda _: self._land(rid))

    def _land(self, rid: int) -> None:
        now = self.env.now
        self.in_transfer -= 1
        self.area -= self.prefill._credit(now)
        self.landed[rid] = now
        self.decode.arrive(rid)

    def decoded(self, now: float) -> None:
        if self.closed is not None:
            self.closed.next_after(now)

    def dropped(self, rid: int) -> None:
        if self.closed is not None:
            self.closed.next_after(self.env.now)

    def in_system(self) -> int:
        return self.prefill.in_system + self.in_transfer + self.decode.in_system


def simulate_disaggregated(
    config: DisaggregatedConfig,
    decode_timer: IterationTimer,
    requests: RequestArrays,
    *,
    duration_s: float,
    warmup_s: float = 0.0,
    drain_s: float | None = None,
    concurrency: int | None = None,
    think_s: np.ndarray | None = None,
) -> SimulationRecord:
    """Serve ``requests`` on one unit of prefill + decode replicas (arguments as
    :func:`simulator.inference.engine.simulate`). The record lists the prefill replicas first,
    then the decode replicas (``record.groups``)."""
    drain = duration_s if drain_s is None else drain_s
    pc, dc = config.prefill.replica, config.decode.replica
    req = prepare(requests, duration_s, warmup_s, concurrency, dc, decode_timer)
    n, arrival, prompt, output, cached, decode_output = req.n, req.arrival, req.prompt, req.output, req.cached, req.steps
    ones = np.ones(n, dtype=np.int64)
    too_long = too_long_mask(prompt, ones, pc) | too_long_mask(prompt, req.kv_tokens, dc)

    env = simpy.Environment()
    window = (warmup_s, duration_s)
    prefill_table = RequestTable(prompt, ones, cached, None)
    with_sessions(prefill_table, requests, prompt)  # the prefix cache is the prefill side's
    decode_table = RequestTable(prompt + 1, np.maximum(decode_output - 1, 1), prompt, None)
    decode_table.cached_lost_on_preemption = True  # a pre-empted request recomputes its prompt there
    prefill = _PrefillGroup(env, config.prefill, config.prefill_timer, prefill_table, too_long.tolist(), window)
    decode = _DecodeGroup(env, config.decode, decode_timer, decode_table, [False] * n, window)
    for replica in decode.replicas:
        replica.count_prefill_busy = False  # its one-token steps are decodes
    handoff = _Handoff(env, prefill, decode, config.transfer_s(prompt).tolist(), output.tolist())
    probes = {"warmup": 0}
    if warmup_s > 0:
        probe = env.timeout(warmup_s)
        probe.callbacks.append(lambda _: probes.__setitem__("warmup", prefill.waiting() + decode.waiting()))
    if concurrency:
        think = np.zeros(n) if think_s is None else np.asarray(think_s, dtype=float)
        handoff.closed = _ClosedLoop(env, prefill, arrival, think, concurrency, duration_s)
    else:
        env.process(_arrivals(env, arrival.tolist(), prefill))
    env.run(until=duration_s)
    waiting_at_end = prefill.waiting() + decode.waiting()
    limit = duration_s + drain
    while handoff.in_system() > 0 and env.peek() <= limit:
        env.step()
    end_s = max(env.now, duration_s) if handoff.in_system() == 0 else limit
    for replica in prefill.replicas + decode.replicas:
        replica.finalize(end_s)
    count_output_tokens(decode.replicas, output - 1, decode_output - 1)  # the first token is the prefill's
    k = handoff.closed.issued if handoff.closed is not None else n
    record = _record(config, prefill, decode, handoff, arrival, prompt, output, cached, duration_s, warmup_s,
                     end_s, probes["warmup"], waiting_at_end, k)  # fmt: skip
    if requests.retrieval_s is None:
        return record
    return dataclasses.replace(record, retrieval_s=np.asarray(requests.retrieval_s[:k], dtype=float))


def _record(
    config: DisaggregatedConfig, prefill: _PrefillGroup, decode: _DecodeGroup, handoff: _Handoff,
    arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, cached: np.ndarray, duration_s: float,
    warmup_s: float, end_s: float, waiting_at_warmup: int, waiting_at_end: int, k: int,
) -> SimulationRecord:  # fmt: skip
    def times(values: list[float]) -> np.ndarray:
        out = np.asarray(values, dtype=float)[:k]
        out[out < 0] = np.nan
        return out

    p, d = prefill.table, decode.table
    single = output[:k] <= 1
    p_status = np.asarray(p.status[:k])
    d_status = np.asarray(d.status[:k])
    done = np.where(single, p_status == DONE, d_status == DONE)
    dropped = (p_status == DROPPED) | (d_status == DROPPED)
    status = np.where(done, "completed", np.where(dropped, "dropped", "in_flight")).astype(object)
    reason_code = np.where(p_status == DROPPED, np.asarray(prefill.drop_reason[:k]), np.asarray(decode.drop_reason[:k]))
    prefill_finish = times(p.finish)
    finish = np.where(single, prefill_finish, times(d.finish))
    offset = config.prefill.replicas
    decode_replica = np.asarray(d.replica[:k], dtype=np.int64)
    replica = np.where(decode_replica >= 0, decode_replica + offset, np.asarray(p.replica[:k], dtype=np.int64))
    window = duration_s - warmup_s
    groups = (
        ReplicaGroup("prefill", config.prefill.replicas, config.prefill_gpus_per_replica, config.prefill.replica.kv_blocks),
        ReplicaGroup("decode", config.decode.replicas, config.decode_gpus_per_replica, config.decode.replica.kv_blocks),
    )  # fmt: skip
    return SimulationRecord(
        arrival_s=arrival[:k],
        prompt_tokens=prompt[:k],
        output_tokens=output[:k],
        cached_tokens=np.asarray(p.cached[:k], dtype=np.int64),
        first_scheduled_s=times(p.first_sched),
        first_token_s=times(handoff.landed),
        finish_s=finish,
        replica=replica,
        preemptions=np.asarray(p.preemptions[:k], dtype=np.int64) + np.asarray(d.preemptions[:k], dtype=np.int64),
        status=status,
        drop_reason=np.asarray(DROP_REASONS, dtype=object)[reason_code],
        replica_stats=tuple(r.stats for r in prefill.replicas + decode.replicas),
        duration_s=duration_s,
        warmup_s=warmup_s,
        end_s=end_s,
        mean_in_system=(prefill.area + handoff.area + decode.area) / window,
        waiting_at_warmup=waiting_at_warmup,
        waiting_at_end=waiting_at_end,
        config=config.decode,
        groups=groups,
    )
