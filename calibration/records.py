"""Raw measurements of the micro-benchmark, as plain records (no torch here).

Each record is one timed point: its shape, the work it did (FLOPs, bytes), its time in seconds
(the :func:`calibration.stats.summarize` statistic of its repeats) and the repeats themselves.
:class:`Measurements` groups them and round-trips through plain data, which is how they are
stored in a profile's ``measurements:`` section.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar


@dataclass(frozen=True)
class GemmPoint:
    """GEMMs at M tokens: the four of one Llama-style layer (QKV, output, gate+up, down), or
    an LM head (hidden -> vocab; ``ffn`` then holds the vocabulary size)."""

    dtype: str
    hidden: int
    ffn: int
    tokens: int
    flops: float  #: 2 x M x weights
    weight_bytes: float  #: bytes of the weights (read once per call)
    seconds: float  #: wall time of the GEMMs of one call
    samples: tuple[float, ...] = ()  #: seconds of each timed repeat (interleaved runs)
    kind: str = "layer"  #: "layer" or "lm_head"

    @property
    def flops_per_s(self) -> float:
        return self.flops / self.seconds


@dataclass(frozen=True)
class AttentionPoint:
    """One scaled-dot-product attention call over all heads: causal prefill or one decode token."""

    dtype: str
    phase: str  #: "prefill" or "decode"
    batch: int
    tokens: int  #: prompt length (prefill) or context length (decode)
    heads: int
    kv_heads: int
    head_dim: int
    flops: float  #: 4 x heads x head_dim x query-key pairs
    kv_bytes: float  #: K and V bytes the call reads
    seconds: float
    samples: tuple[float, ...] = ()  #: seconds of each timed repeat (interleaved runs)


@dataclass(frozen=True)
class ElementwisePoint:
    """The unfused element-wise ops of one layer (2 RMSNorms, rotary on Q and K, 2 residual
    adds, SiLU gate) at M tokens."""

    dtype: str
    hidden: int
    ffn: int
    tokens: int
    min_bytes: float  #: bytes each activation read and written once (roofline minimum)
    seconds: float
    samples: tuple[float, ...] = ()  #: seconds of each timed repeat (interleaved runs)


@dataclass(frozen=True)
class OverheadPoint:
    """One decode step of a tiny-width model with ``layers`` layers: dispatch cost only."""

    layers: int
    seconds: float
    samples: tuple[float, ...] = ()  #: seconds of each timed repeat (interleaved runs)


@dataclass(frozen=True)
class TrainingPoint:
    """One forward + backward + AdamW step of a stack of transformer blocks."""

    dtype: str
    hidden: int
    layers: int
    batch: int
    seq: int
    flops: float  #: 6 x block weights x tokens + causal attention (the roofline's count)
    seconds: float
    samples: tuple[float, ...] = ()  #: seconds of each timed repeat (interleaved runs)


@dataclass(frozen=True)
class MemoryPoint:
    """A large copy (bytes read + written) or read-reduction."""

    kind: str  #: "copy" or "read"
    bytes: float
    seconds: float
    samples: tuple[float, ...] = ()  #: seconds of each timed repeat (interleaved runs)

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds


@dataclass(frozen=True)
class AllreducePoint:
    """One all-reduce of ``bytes`` over ``gpus`` GPUs (NCCL)."""

    gpus: int
    bytes: float
    seconds: float
    samples: tuple[float, ...] = ()  #: seconds of each timed repeat (interleaved runs)

    @property
    def bus_bytes_per_s(self) -> float:
        """Ring bus bandwidth: 2 (n-1)/n x bytes / time (the nccl-tests convention)."""
        return 2 * (self.gpus - 1) / self.gpus * self.bytes / self.seconds


R = TypeVar("R")


def _rows(kind: type[R], rows: list[dict[str, Any]] | None) -> list[R]:
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    out = []
    for row in rows or []:
        values = {k: v for k, v in row.items() if k in names}
        if "samples" in values:
            values["samples"] = tuple(values["samples"])
        out.append(kind(**values))
    return out


@dataclass
class Measurements:
    """Everything one calibration run measured, plus how (settings) and what it skipped."""

    gemm: list[GemmPoint] = field(default_factory=list)
    attention: list[AttentionPoint] = field(default_factory=list)
    elementwise: list[ElementwisePoint] = field(default_factory=list)
    overhead: list[OverheadPoint] = field(default_factory=list)
    training: list[TrainingPoint] = field(default_factory=list)
    memory: list[MemoryPoint] = field(default_factory=list)
    allreduce: list[AllreducePoint] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    _GROUPS: ClassVar[dict[str, type]] = {
        "gemm": GemmPoint, "attention": AttentionPoint, "elementwise": ElementwisePoint,
        "overhead": OverheadPoint, "training": TrainingPoint, "memory": MemoryPoint,
        "allreduce": AllreducePoint,
    }  # fmt: skip

    def to_data(self) -> dict[str, Any]:
        """Plain data (lists of dicts) for YAML."""
        data: dict[str, Any] = {"settings": dict(self.settings), "skipped": list(self.skipped)}
        for name in self._GROUPS:
            data[name] = [_rounded(asdict(r)) for r in getattr(self, name)]
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Measurements:
        """The inverse of :meth:`to_data` (unknown keys are ignored)."""
        groups = {name: _rows(kind, data.get(name)) for name, kind in cls._GROUPS.items()}
        return cls(**groups, settings=dict(data.get("settings") or {}),
                   skipped=list(data.get("skipped") or []))  # fmt: skip


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    """Floats to 5 significant digits: measurements are not that precise, files stay legible."""
    return {k: _round(v) for k, v in row.items()}
