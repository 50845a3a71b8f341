"""What the micro-benchmark measures: shapes, token counts, repeats (no torch here).

Two plans per device kind: ``full`` (the bundled profiles) and ``quick`` (tests, a first look).
The shapes are generic transformer shapes, deliberately not those of any model the accuracy
check runs: the fit must predict models it has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DeviceKind = Literal["cpu", "cuda"]


@dataclass(frozen=True)
class TrainingShape:
    """A stack of ``layers`` transformer blocks of width ``hidden`` trained on batch x seq."""

    hidden: int
    layers: int
    batch: int
    seq: int


@dataclass(frozen=True)
class BenchmarkPlan:
    """Every knob of one calibration run.

    Sizes are in tokens (rows of a GEMM), elements or MiB as named. ``repeats`` timed repeats
    of at least ``min_repeat_s`` seconds each give one statistic per point (calibration.stats).
    """

    name: str
    device: DeviceKind
    #: Hidden sizes h whose layer weights the GEMMs use (ffn = ``ffn_multiple`` x h, rounded).
    hidden_sizes: tuple[int, ...]
    #: Token counts M of the GEMMs: 1 is a decode GEMV, thousands a prefill.
    gemm_tokens: tuple[int, ...]
    #: Largest GEMM work per point, FLOPs (larger (h, M) pairs are skipped to bound run time).
    gemm_max_flops: float
    #: GEMMs in every dtype the device supports (else the serving dtype only).
    all_dtypes: bool = True
    ffn_multiple: float = 3.5
    #: Vocabulary of the LM-head GEMMs timed beside the layers (Llama 2 / Mistral: 32000).
    lm_head_vocab: int = 32000
    head_dim: int = 64
    attention_heads: int = 8
    #: (batch, prompt length) of causal prefill attention.
    prefill_attention: tuple[tuple[int, int], ...] = ()
    #: (batch, context length) of one decode token against a KV cache.
    decode_attention: tuple[tuple[int, int], ...] = ()
    #: Token counts of the element-wise ops between GEMMs (per hidden size).
    elementwise_tokens: tuple[int, ...] = ()
    #: Layer counts of the tiny-width decode step that measures fixed overheads.
    overhead_layers: tuple[int, ...] = (1, 2, 4, 8)
    training: tuple[TrainingShape, ...] = ()
    #: Sizes of the large copy / read kernels, MiB.
    memory_mib: tuple[int, ...] = (256,)
    #: All-reduce message sizes, MiB (GPUs only, more than one).
    allreduce_mib: tuple[float, ...] = (0.0078125, 1, 16, 128, 512)
    repeats: int = 5
    #: Rounds of the reference check (run with the benchmark), spread over its ``repeats``.
    reference_repeats: int = 5
    min_repeat_s: float = 0.02
    warmup: int = 1
    #: Bytes of distinct weights (KV caches) a GEMM (decode attention) rotates through, so that
    #: decode-shaped kernels stream from memory as in a real model: 4 x the last-level cache
    #: (32 MiB L3 on the test VM).
    rotate_bytes_min: int = 128 * 2**20
    notes: tuple[str, ...] = field(default_factory=tuple)

    def ffn_for(self, hidden: int) -> int:
        """MLP width for ``hidden``: ``ffn_multiple`` x hidden rounded to a multiple of 64."""
        return max(64, round(self.ffn_multiple * hidden / 64) * 64)


_CPU_GEMM_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_GPU_GEMM_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


def plan_for(device: DeviceKind, quick: bool) -> BenchmarkPlan:
    """The bundled plan for a device kind; ``quick`` trades points and repeats for time."""
    if device == "cpu":
        if quick:
            return BenchmarkPlan(
                name="quick",
                device="cpu",
                hidden_sizes=(384, 1024),
                gemm_tokens=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096),
                gemm_max_flops=40e9,
                all_dtypes=False,
                prefill_attention=((1, 128), (4, 256), (1, 512), (16, 128), (2, 1024)),
                decode_attention=((1, 128), (1, 1024), (4, 256), (16, 128), (16, 1024), (64, 256)),
                elementwise_tokens=(256, 2048, 8192),
                overhead_layers=(1, 4, 8),
                training=(TrainingShape(768, 2, 2, 256),),
                memory_mib=(256,),
                repeats=5,
                reference_repeats=3,
                min_repeat_s=0.02,
            )
        return BenchmarkPlan(
            name="full",
            device="cpu",
            hidden_sizes=(256, 384, 768, 1024, 1536),
            gemm_tokens=_CPU_GEMM_TOKENS + (8192,),
            gemm_max_flops=100e9,
            prefill_attention=((1, 128), (1, 512), (1, 2048), (4, 256), (16, 128), (2, 1024),
                               (8, 512)),
            decode_attention=((1, 128), (1, 512), (1, 2048), (4, 256), (4, 1024), (16, 128),
                              (16, 512), (16, 2048), (64, 128), (64, 512)),
            elementwise_tokens=(256, 1024, 4096, 16384),
            overhead_layers=(1, 2, 4, 8),
            training=(TrainingShape(384, 2, 4, 256), TrainingShape(768, 2, 2, 256),
                      TrainingShape(1024, 2, 4, 128)),
            memory_mib=(64, 256, 512),
            repeats=7,
            min_repeat_s=0.05,
        )  # fmt: skip
    if quick:
        return BenchmarkPlan(
            name="quick",
            device="cuda",
            hidden_sizes=(2048, 8192),
            gemm_tokens=_GPU_GEMM_TOKENS,
            gemm_max_flops=5e12,
            all_dtypes=False,
            head_dim=128,
            attention_heads=32,
            prefill_attention=((1, 512), (1, 2048), (8, 1024), (4, 4096)),
            decode_attention=((1, 512), (1, 4096), (16, 512), (16, 2048), (64, 2048), (256, 1024)),
            elementwise_tokens=(1024, 8192),
            overhead_layers=(1, 4, 8),
            training=(TrainingShape(4096, 2, 4, 2048),),
            memory_mib=(1024,),
            repeats=5,
            min_repeat_s=0.02,
            rotate_bytes_min=1024 * 2**20,
        )
    return BenchmarkPlan(
        name="full",
        device="cuda",
        hidden_sizes=(1024, 2048, 4096, 8192),
        gemm_tokens=_GPU_GEMM_TOKENS + (32768,),
        gemm_max_flops=40e12,
        head_dim=128,
        attention_heads=32,
        prefill_attention=((1, 512), (1, 1024), (1, 4096), (8, 1024), (4, 4096), (2, 8192),
                           (16, 2048), (64, 512)),
        decode_attention=((1, 512), (1, 1024), (1, 8192), (16, 512), (16, 1024), (16, 4096),
                          (64, 2048), (128, 1024), (256, 512), (256, 4096)),
        elementwise_tokens=(1024, 4096, 16384),
        overhead_layers=(1, 2, 4, 8, 16),
        training=(TrainingShape(2048, 4, 8, 2048), TrainingShape(4096, 2, 4, 4096)),
        memory_mib=(1024, 4096),
        repeats=9,
        min_repeat_s=0.05,
        rotate_bytes_min=2048 * 2**20,
    )  # fmt: skip
