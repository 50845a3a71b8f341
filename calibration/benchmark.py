"""The PyTorch micro-benchmark behind ``fleetsim calibrate`` (imports torch).

It times, on the local device, the kernels the roofline prices (see
:mod:`simulator.perf.roofline`), at generic transformer shapes:

- the four GEMMs of a Llama-style layer (QKV, output, gate+up, down), and an LM head, at token
  counts M from 1 (decode GEMV) to thousands (prefill), for a few hidden sizes, in each dtype the
  device supports. Weights rotate through several copies totalling >= 4x the last-level cache,
  so small M streams weights from memory as a real model's decode does;
- scaled_dot_product_attention: causal prefill, and one decode token against a KV cache of
  growing length (a view into a pre-allocated cache, as a serving engine holds it);
- the unfused element-wise ops between the GEMMs (RMSNorm, rotary, residual adds, SwiGLU);
- a decode step of a tiny-width model (hidden 64) with 1..16 layers: the fixed per-step and
  per-layer dispatch overhead of the engine's code;
- one forward + backward + AdamW step of a stack of transformer blocks (training MFU);
- large copies and reads (raw memory bandwidth, for reference);
- with more than one GPU, NCCL all-reduce (otherwise skipped, and recorded as skipped).

:func:`run` returns :class:`~calibration.records.Measurements`; it prints nothing. Progress is
reported through a callback.

Noise: the timed repeats of all points are interleaved (repeat 1 of every point, then repeat 2,
...), so each point's statistic (:mod:`calibration.stats`) draws on samples spread over the
whole run rather than on one stretch of time that a noisy neighbour may have slowed down.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from calibration.benchmark_runtime import DTYPES, Runtime
from calibration.plan import BenchmarkPlan, TrainingShape
from calibration.records import (
    AllreducePoint,
    AttentionPoint,
    ElementwisePoint,
    GemmPoint,
    Measurements,
    MemoryPoint,
    OverheadPoint,
    TrainingPoint,
)
from calibration.reference_model import Block, DecoderLM, apply_rope, rope_tables
from calibration.stats import DEFAULT_STATISTIC, Statistic, summarize
from simulator.catalog import ModelSpec
from simulator.perf.roofline import elementwise_bytes_per_token_layer, training_flops

#: Bytes per element of each benchmarked dtype.
ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp8": 1}

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Timed:
    """A prepared point: how to make the call to time, and how to record its seconds per call.

    ``make`` allocates the point's inputs and returns the call; the session makes it anew for
    each timed repeat and drops it after, so only one point's activations are alive at a time
    (weight pools, shared by many points, live for the whole run).
    """

    make: Callable[[], Callable[[], object]]
    record: Callable[[float, tuple[float, ...]], None]
    #: Seconds each timed repeat lasts at least (0: one call per repeat).
    min_repeat_s: float | None = None


@dataclass(frozen=True)
class Step:
    """One point of the benchmark: a label for the progress bar and how to prepare it."""

    label: str
    prepare: Callable[[Context], Timed]


@dataclass
class Context:
    """State shared by the steps of one run: runtime, plan, results, shared weight pools."""

    runtime: Runtime
    plan: BenchmarkPlan
    out: Measurements
    pools: dict[object, Any] = field(default_factory=dict)

    def pool(self, key: object, build: Callable[[], Any]) -> Any:
        """The object built for ``key`` (built once per run)."""
        if key not in self.pools:
            self.pools[key] = build()
        return self.pools[key]


def _tensor(shape: tuple[int, ...], dtype: str, device: torch.device, scale: float = 1.0) -> Tensor:
    """Uniform random values in +-scale (no denormals, no overflow)."""
    torch_dtype = DTYPES.get(dtype, torch.bfloat16)
    t = torch.empty(shape, dtype=torch_dtype, device=device).uniform_(-scale, scale)
    if dtype == "fp8":
        return t.to(torch.float8_e4m3fn)
    return t


def _copies(bytes_each: float, minimum: int) -> int:
    """How many copies of a ``bytes_each`` object make at least ``minimum`` bytes."""
    return max(1, math.ceil(minimum / max(bytes_each, 1.0)))


# ---------------------------------------------------------------------- GEMMs


def layer_shapes(hidden: int, ffn: int) -> list[tuple[int, int]]:
    """(out, in) of a Llama-style layer's weights with as many KV heads as query heads."""
    return [(3 * hidden, hidden), (hidden, hidden), (2 * ffn, hidden), (hidden, ffn)]


def gemm_shapes(kind: str, hidden: int, plan: BenchmarkPlan) -> list[tuple[int, int]]:
    """(out, in) of the weights one GEMM point multiplies: a layer's four, or an LM head."""
    if kind == "lm_head":
        return [(plan.lm_head_vocab, hidden)]
    return layer_shapes(hidden, plan.ffn_for(hidden))


def _gemm_step(dtype: str, hidden: int, tokens: int, kind: str = "layer") -> Step:
    def prepare(ctx: Context) -> Timed:
        plan, device = ctx.plan, ctx.runtime.device
        shapes = gemm_shapes(kind, hidden, plan)
        ffn = plan.lm_head_vocab if kind == "lm_head" else plan.ffn_for(hidden)
        params = sum(o * i for o, i in shapes)
        width = ELEMENT_BYTES[dtype]
        scale = 1.0 / math.sqrt(hidden)

        def build() -> list[list[Tensor]]:
            n = _copies(params * width, plan.rotate_bytes_min)
            return [[_tensor(s, dtype, device, scale) for s in shapes] for _ in range(n)]

        pool = ctx.pool(("gemm", kind, dtype, hidden), build)
        act = "bf16" if dtype == "fp8" else dtype

        def make() -> Callable[[], object]:
            # each weight's input: [M, in] (the down projection's input is ffn wide)
            inputs = {i: _tensor((tokens, i), act, device) for _, i in shapes}
            cycle = itertools.cycle(pool)
            if dtype == "fp8":
                return _fp8_gemms(shapes, inputs, cycle, device)

            def call() -> None:
                for (_, i), w in zip(shapes, next(cycle), strict=True):
                    F.linear(inputs[i], w)

            return call

        def record(seconds: float, samples: tuple[float, ...]) -> None:
            point = GemmPoint(dtype, hidden, ffn, tokens, 2.0 * tokens * params,
                              float(params * width), seconds, samples, kind)  # fmt: skip
            ctx.out.gemm.append(point)

        return Timed(make, record)

    return Step(f"GEMM {kind} {dtype} h={hidden} M={tokens}", prepare)


def _fp8_gemms(
    shapes: list[tuple[int, int]],
    inputs: dict[int, Tensor],
    cycle: Iterator[list[Tensor]],
    device: torch.device,
) -> Callable[[], None]:  # pragma: no cover - needs a GPU with FP8
    """The GEMMs in FP8 (torch._scaled_mm, per-tensor scales, bf16 out).

    Needs compute capability >= 8.9 and M a multiple of 16; not testable without such a GPU.
    """
    one = torch.ones((), device=device)
    inputs8 = {i: x.to(torch.float8_e4m3fn) for i, x in inputs.items()}

    def call() -> None:
        for (_, i), weight in zip(shapes, next(cycle), strict=True):
            torch._scaled_mm(inputs8[i], weight.t(), scale_a=one, scale_b=one,
                             out_dtype=torch.bfloat16)  # fmt: skip

    return call


# ---------------------------------------------------------------------- attention


def _prefill_attention_step(dtype: str, batch: int, seq: int) -> Step:
    def prepare(ctx: Context) -> Timed:
        plan, device = ctx.plan, ctx.runtime.device
        heads, hd = plan.attention_heads, plan.head_dim

        def make() -> Callable[[], object]:
            # [batch, seq, heads, hd] transposed, as the projections lay Q, K, V out
            shape = (batch, seq, heads, hd)
            q, k, v = (_tensor(shape, dtype, device).transpose(1, 2) for _ in "qkv")
            return lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)

        pairs = batch * seq * (seq + 1) / 2
        kv_bytes = 2.0 * batch * seq * heads * hd * ELEMENT_BYTES[dtype]

        def record(seconds: float, samples: tuple[float, ...]) -> None:
            ctx.out.attention.append(AttentionPoint(dtype, "prefill", batch, seq, heads, heads, hd,
                                                    4.0 * heads * hd * pairs, kv_bytes, seconds,
                                                    samples))  # fmt: skip

        return Timed(make, record)

    return Step(f"attention prefill {dtype} b={batch} s={seq}", prepare)


def _decode_attention_step(dtype: str, batch: int, context: int) -> Step:
    def prepare(ctx: Context) -> Timed:
        plan, device = ctx.plan, ctx.runtime.device
        heads, hd = plan.attention_heads, plan.head_dim
        capacity = context + 64  # a pre-allocated cache longer than the context
        kv_bytes = 2.0 * batch * context * heads * hd * ELEMENT_BYTES[dtype]
        n = _copies(kv_bytes, plan.rotate_bytes_min)

        def make() -> Callable[[], object]:
            shape = (batch, heads, capacity, hd)
            caches = [(_tensor(shape, dtype, device), _tensor(shape, dtype, device))
                      for _ in range(n)]  # fmt: skip
            q = _tensor((batch, 1, heads, hd), dtype, device).transpose(1, 2)
            cycle = itertools.cycle(caches)

            def call() -> None:
                k, v = next(cycle)
                F.scaled_dot_product_attention(q, k[:, :, :context], v[:, :, :context])

            return call

        flops = 4.0 * heads * hd * batch * context

        def record(seconds: float, samples: tuple[float, ...]) -> None:
            point = AttentionPoint(dtype, "decode", batch, context, heads, heads, hd, flops,
                                   kv_bytes, seconds, samples)  # fmt: skip
            ctx.out.attention.append(point)

        return Timed(make, record)

    return Step(f"attention decode {dtype} b={batch} ctx={context}", prepare)


# ---------------------------------------------------------------------- element-wise


def _elementwise_step(dtype: str, hidden: int, tokens: int) -> Step:
    def prepare(ctx: Context) -> Timed:
        plan, device = ctx.plan, ctx.runtime.device
        hd = plan.head_dim
        heads = max(1, hidden // hd)
        ffn = plan.ffn_for(hidden)
        q_width = heads * hd

        def make() -> Callable[[], object]:
            x = _tensor((1, tokens, hidden), dtype, device)
            o = _tensor((1, tokens, hidden), dtype, device)
            d = _tensor((1, tokens, hidden), dtype, device)
            qkv = _tensor((1, tokens, 3 * q_width), dtype, device)
            gate_up = _tensor((1, tokens, 2 * ffn), dtype, device)
            weight = torch.ones(hidden, dtype=x.dtype, device=device)
            cos, sin = (t.to(device) for t in rope_tables(hd, tokens, x.dtype))

            def call() -> None:
                F.rms_norm(x, (hidden,), weight, 1e-5)
                q, k, _ = qkv.split([q_width, q_width, q_width], dim=-1)
                apply_rope(q.view(1, tokens, heads, hd).transpose(1, 2), cos, sin)
                apply_rope(k.view(1, tokens, heads, hd).transpose(1, 2), cos, sin)
                h2 = x + o
                F.rms_norm(h2, (hidden,), weight, 1e-5)
                gate, up = gate_up.split(ffn, dim=-1)
                F.silu(gate) * up
                h2 + d

            return call

        per_token = elementwise_bytes_per_token_layer(hidden, q_width, q_width, ffn,
                                                      float(ELEMENT_BYTES[dtype]))  # fmt: skip

        def record(seconds: float, samples: tuple[float, ...]) -> None:
            ctx.out.elementwise.append(
                ElementwisePoint(dtype, hidden, ffn, tokens, per_token * tokens, seconds, samples)
            )

        return Timed(make, record)

    return Step(f"element-wise {dtype} h={hidden} M={tokens}", prepare)


# ---------------------------------------------------------------------- overheads


def tiny_spec(layers: int) -> ModelSpec:
    """A Llama-style model so narrow that a decode step is dispatch overhead only."""
    return ModelSpec(name=f"overhead-{layers}", parameters=1, layers=layers, hidden_size=64,
                     heads=2, kv_heads=2, head_dim=32, ffn_hidden_size=128,
                     vocab_size=256)  # fmt: skip


def _overhead_step(dtype: str, layers: int) -> Step:
    def prepare(ctx: Context) -> Timed:
        device = ctx.runtime.device
        torch.manual_seed(0)
        model = DecoderLM(tiny_spec(layers), 64).to(device=device, dtype=DTYPES[dtype]).eval()
        shape = (1, 2, 64, 32)
        caches = [
            (torch.zeros(shape, dtype=DTYPES[dtype], device=device),
             torch.zeros(shape, dtype=DTYPES[dtype], device=device))
            for _ in range(layers)
        ]  # fmt: skip
        token = torch.zeros((1, 1), dtype=torch.long, device=device)

        @torch.inference_mode()
        def call() -> None:
            logits = model(token, caches, 16)
            logits[:, -1].argmax(dim=-1, keepdim=True)

        def record(seconds: float, samples: tuple[float, ...]) -> None:
            ctx.out.overhead.append(OverheadPoint(layers, seconds, samples))

        return Timed(lambda: call, record)

    return Step(f"overhead {layers} layers", prepare)


# ---------------------------------------------------------------------- training


def block_spec(shape: TrainingShape, plan: BenchmarkPlan) -> ModelSpec:
    """The ModelSpec of a stack of blocks (no embedding: vocab 1), for the roofline's FLOPs."""
    h, hd = shape.hidden, plan.head_dim
    heads = max(1, h // hd)
    ffn = plan.ffn_for(h)
    per_layer = 4 * h * heads * hd + 3 * h * ffn + 2 * h
    return ModelSpec(name=f"blocks-{h}", parameters=shape.layers * per_layer, layers=shape.layers,
                     hidden_size=h, heads=heads, kv_heads=heads, head_dim=hd,
                     ffn_hidden_size=ffn, vocab_size=1)  # fmt: skip


def _training_step(dtype: str, shape: TrainingShape) -> Step:
    def prepare(ctx: Context) -> Timed:
        device, plan = ctx.runtime.device, ctx.plan
        spec = block_spec(shape, plan)
        torch.manual_seed(0)
        blocks = nn.ModuleList(Block(spec) for _ in range(shape.layers)).to(device, DTYPES[dtype])
        assert sum(p.numel() for p in blocks.parameters()) == spec.parameters
        cos, sin = (t.to(device, DTYPES[dtype]) for t in rope_tables(plan.head_dim, shape.seq,
                                                                    torch.float32))  # fmt: skip
        optimizer = torch.optim.AdamW(blocks.parameters(), lr=1e-4)
        x = _tensor((shape.batch, shape.seq, shape.hidden), dtype, device)

        def call() -> None:
            h = x
            for block in blocks:
                h = block(h, cos, sin)
            loss = h.float().square().mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        flops = training_flops(spec, shape.batch * shape.seq, shape.seq)

        def record(seconds: float, samples: tuple[float, ...]) -> None:
            ctx.out.training.append(TrainingPoint(dtype, shape.hidden, shape.layers, shape.batch,
                                                  shape.seq, flops, seconds, samples))  # fmt: skip

        return Timed(lambda: call, record, min_repeat_s=0.0)

    return Step(f"training step {dtype} h={shape.hidden} {shape.batch}x{shape.seq}", prepare)


# ---------------------------------------------------------------------- memory, all-reduce


def _memory_step(kind: str, mib: int) -> Step:
    def prepare(ctx: Context) -> Timed:
        device = ctx.runtime.device
        n = mib * 2**20 // 4

        def make() -> Callable[[], object]:
            src = torch.full((n,), 0.5, device=device)
            dst = torch.empty_like(src)
            return (lambda: dst.copy_(src)) if kind == "copy" else src.sum

        def record(seconds: float, samples: tuple[float, ...]) -> None:
            moved = (2.0 if kind == "copy" else 1.0) * n * 4
            ctx.out.memory.append(MemoryPoint(kind, moved, seconds, samples))

        return Timed(make, record)

    return Step(f"memory {kind} {mib} MiB", prepare)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _allreduce_worker(
    rank: int, world: int, port: int, sizes: list[int], repeats: int, path: str
) -> None:  # pragma: no cover - needs several GPUs
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)  # fmt: skip
    results = []
    for size in sizes:
        t = torch.ones(max(1, size // 2), dtype=torch.bfloat16, device="cuda")
        for _ in range(5):
            dist.all_reduce(t)
        torch.cuda.synchronize()
        samples = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            dist.barrier()
            start.record()
            for _ in range(10):
                dist.all_reduce(t)
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / 10)
        samples.sort()
        results.append({"bytes": t.numel() * 2, "seconds": samples[len(samples) // 2]})
    if rank == 0:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(results, f)
    dist.destroy_process_group()


def _allreduce(ctx: Context) -> None:  # pragma: no cover - needs several GPUs
    """Measure NCCL all-reduce in worker processes, one per GPU (not interleaved)."""
    import torch.multiprocessing as mp

    world = ctx.runtime.gpus
    sizes = [int(mib * 2**20) for mib in ctx.plan.allreduce_mib]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "allreduce.json")
        mp.spawn(_allreduce_worker, args=(world, _free_port(), sizes, ctx.plan.repeats, path),
                 nprocs=world, join=True)  # fmt: skip
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    ctx.out.allreduce.extend(AllreducePoint(world, r["bytes"], r["seconds"]) for r in rows)


# ---------------------------------------------------------------------- the run


def steps(plan: BenchmarkPlan, dtypes: list[str], primary: str) -> list[Step]:
    """Every step of a run, in order. GEMMs in all ``dtypes`` (``primary`` only unless
    ``plan.all_dtypes``), the rest in ``primary``."""
    out: list[Step] = []
    for dtype in dtypes if plan.all_dtypes else [primary]:
        for kind in ("layer", "lm_head"):
            for hidden in plan.hidden_sizes:
                params = sum(o * i for o, i in gemm_shapes(kind, hidden, plan))
                for m in plan.gemm_tokens:
                    if dtype == "fp8" and m % 16:
                        continue
                    if 2.0 * m * params <= plan.gemm_max_flops:
                        out.append(_gemm_step(dtype, hidden, m, kind))
    out += [_memory_step(kind, mib) for mib in plan.memory_mib for kind in ("copy", "read")]
    out += [_prefill_attention_step(primary, b, s) for b, s in plan.prefill_attention]
    out += [_decode_attention_step(primary, b, c) for b, c in plan.decode_attention]
    out += [
        _elementwise_step(primary, h, m) for h in plan.hidden_sizes for m in plan.elementwise_tokens
    ]
    out += [_overhead_step(primary, n) for n in plan.overhead_layers]
    out += [_training_step(primary, shape) for shape in plan.training]
    return out


class Session:
    """A benchmark run in three phases, so that a caller can interleave its rounds with other
    timed work (the reference check): :meth:`prepare`, ``repeats`` x :meth:`round`, :meth:`finish`.

    ``prepare`` allocates every point's inputs, warms it up and chooses its calls per repeat
    (so a repeat lasts ``plan.min_repeat_s``); each ``round`` times every point once;
    ``finish`` records each point's ``statistic`` of its repeats (and runs all-reduce on
    several GPUs). ``progress(label, done, total)`` is called after every unit of work.
    """

    def __init__(
        self,
        plan: BenchmarkPlan,
        runtime: Runtime,
        dtypes: list[str],
        primary: str,
        progress: ProgressFn | None = None,
        statistic: Statistic = DEFAULT_STATISTIC,
    ) -> None:
        self.plan, self.runtime, self.statistic, self.progress = plan, runtime, statistic, progress
        out = Measurements(settings={**runtime.describe(), "plan": plan.name, "dtypes": dtypes,
                                     "primary_dtype": primary, "ffn_multiple": plan.ffn_multiple,
                                     "lm_head_vocab": plan.lm_head_vocab,
                                     "repeats": plan.repeats, "min_repeat_s": plan.min_repeat_s,
                                     "reference_repeats": plan.reference_repeats,
                                     "statistic": statistic,
                                     "timing": f"{statistic} over interleaved repeats of the "
                                               "mean time per call"})  # fmt: skip
        if runtime.gpus <= 1:
            out.skipped.append(
                f"all-reduce: {max(runtime.gpus, 1)} device(s) here, needs 2 or more GPUs; "
                "interconnect_efficiency and allreduce_latency_s are kept from the bundled profile"
            )
        self.ctx = Context(runtime, plan, out)
        self.todo = steps(plan, dtypes, primary)
        self.total = len(self.todo) * (1 + plan.repeats) + (1 if runtime.gpus > 1 else 0)
        self.done = 0
        self.prepared: list[tuple[Step, Timed, int]] = []  # step, how to time it, calls/repeat
        self.samples: list[list[float]] = []

    @property
    def rounds(self) -> int:
        return self.plan.repeats

    def _advance(self, label: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(label, self.done, self.total)

    def prepare(self) -> None:
        """Allocate, warm up and size every point."""
        for step in self.todo:
            timed = step.prepare(self.ctx)
            call = timed.make()
            for _ in range(max(self.plan.warmup, 0)):
                call()
            floor = self.plan.min_repeat_s if timed.min_repeat_s is None else timed.min_repeat_s
            one = self.runtime.time_calls(call, 1)
            del call
            calls = max(1, math.ceil(floor / one)) if one > 0 else 1
            self.prepared.append((step, timed, calls))
            self._advance(f"prepare {step.label}")
        self.samples = [[] for _ in self.prepared]

    def round(self, index: int) -> None:
        """Time every point once (repeat ``index`` + 1)."""
        for (step, timed, calls), got in zip(self.prepared, self.samples, strict=True):
            call = timed.make()
            got.append(self.runtime.time_calls(call, calls) / calls)
            del call
            self._advance(f"repeat {index + 1}/{self.plan.repeats}: {step.label}")

    def finish(self) -> Measurements:
        """Record every point, free the inputs; all-reduce last (GPUs only)."""
        for (_, timed, _), got in zip(self.prepared, self.samples, strict=True):
            timed.record(summarize(got, self.statistic), tuple(got))
        self.ctx.pools.clear()
        self.prepared, self.samples = [], []
        if self.runtime.gpus > 1:
            _allreduce(self.ctx)
            self._advance("all-reduce")
        return self.ctx.out


def run(
    plan: BenchmarkPlan,
    runtime: Runtime,
    dtypes: list[str],
    primary: str,
    progress: ProgressFn | None = None,
    statistic: Statistic = DEFAULT_STATISTIC,
) -> Measurements:
    """Run every step of ``plan`` on ``runtime`` (a :class:`Session` on its own)."""
    session = Session(plan, runtime, dtypes, primary, progress, statistic)
    session.prepare()
    for r in range(session.rounds):
        session.round(r)
    return session.finish()
