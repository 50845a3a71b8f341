"""A slow, obviously-correct reference of one replica's scheduler: one loop turn per iteration.

It prices every iteration with ``ServingCostModel.iteration_time_s`` and keeps per-request token
counts, with none of the engine's shortcuts (no closed-form runs, no merged segments, no
aggregates). The engine must reproduce its timeline; see test_inference_reference.py.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from simulator.inference.replica import ReplicaConfig
from simulator.perf.roofline import ServingCostModel


def reference_replica(
    cm: ServingCostModel,
    rc: ReplicaConfig,
    arrival: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    cached: np.ndarray,
) -> dict[str, np.ndarray]:
    n = len(arrival)
    B = rc.kv_block_tokens
    nan = math.nan
    first_sched = [nan] * n
    first_token = [nan] * n
    finish = [nan] * n
    preempt = [0] * n
    dropped = [False] * n
    target = [int(p) for p in prompt]
    done = [int(c) for c in cached]
    gen = [0] * n
    queue: deque[int] = deque()
    prefilling: list[int] = []  # admission order
    decoding: list[int] = []  # admission order
    admitted_order: list[int] = []  # admission order of everything active (for pre-emption)
    t = 0.0
    i = 0

    def blocks(tokens: int) -> int:
        return -(-tokens // B)

    def decode_blocks() -> int:
        return sum(blocks(int(prompt[r]) + gen[r]) for r in decoding)

    def prefill_blocks() -> int:
        return sum(blocks(target[r]) for r in prefilling)

    while True:
        while i < n and arrival[i] <= t:
            if prompt[i] >= rc.max_context_tokens or blocks(int(prompt[i] + output[i])) > rc.kv_blocks:
                dropped[i] = True
            else:
                queue.append(i)
            i += 1
        if not queue and not prefilling and not decoding:
            if i == n:
                break
            t = float(arrival[i])
            continue
        # 1. pre-empt the newest while the decoders' next slots do not fit
        while decoding and decode_blocks() + prefill_blocks() > rc.kv_blocks:
            victim = admitted_order.pop()
            if victim in decoding:
                decoding.remove(victim)
                target[victim] = int(prompt[victim]) + gen[victim]
            else:
                prefilling.remove(victim)
            done[victim] = int(cached[victim])
            preempt[victim] += 1
            queue.appendleft(victim)
        # 2. budget: decodes, running prefills, admissions
        budget = rc.max_batched_tokens - len(decoding)
        chunks: list[tuple[int, int]] = []
        for r in prefilling:
            if budget <= 0:
                break
            c = min(target[r] - done[r], budget)
            chunks.append((r, c))
            budget -= c
        while queue and budget > 0 and len(prefilling) + len(decoding) < rc.max_batch_size:
            r = queue[0]
            active = len(prefilling) + len(decoding)
            reserve = rc.watermark_blocks if active else 0
            if decode_blocks() + prefill_blocks() + blocks(target[r]) + reserve > rc.kv_blocks:
                break
            queue.popleft()
            prefilling.append(r)
            admitted_order.append(r)
            if math.isnan(first_sched[r]):
                first_sched[r] = t
            c = min(target[r] - done[r], budget)
            chunks.append((r, c))
            budget -= c
        # 3. the iteration
        p = sum(c for _, c in chunks)
        pairs = sum(c * (done[r] + (c + 1) / 2) for r, c in chunks)
        seqs = sum(1 for r, c in chunks if done[r] + c >= target[r])
        ctx = sum(int(prompt[r]) + gen[r] for r in decoding)
        t += float(cm.iteration_time_s(p, pairs, seqs, len(decoding), ctx))
        # 4. its effects
        for r in list(decoding):
            gen[r] += 1
            if gen[r] >= output[r]:
                decoding.remove(r)
                admitted_order.remove(r)
                finish[r] = t
        for r, c in chunks:
            done[r] += c
            if done[r] >= target[r]:
                prefilling.remove(r)
                gen[r] += 1
                if math.isnan(first_token[r]):
                    first_token[r] = t
                if gen[r] >= output[r]:
                    admitted_order.remove(r)
                    finish[r] = t
                else:
                    decoding.append(r)
    return {
        "first_scheduled_s": np.array(first_sched),
        "first_token_s": np.array(first_token),
        "finish_s": np.array(finish),
        "preemptions": np.array(preempt),
        "dropped": np.array(dropped),
    }
