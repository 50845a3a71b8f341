"""What the reference transformer run measures, and what it returns (no torch here).

:mod:`calibration.reference_model` runs a :class:`ReferenceSetup` and returns :class:`Timing`
points; :mod:`calibration.accuracy` compares them with the cost model's predictions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from calibration.stats import DEFAULT_STATISTIC, Statistic
from simulator.catalog import Dtype, ModelSpec


@dataclass(frozen=True)
class ReferenceSetup:
    """What the reference run measures."""

    model: ModelSpec
    dtype: Dtype
    batches: tuple[int, ...] = (1, 8, 32)
    prompts: tuple[int, ...] = (128, 512)
    #: Tokens generated per request (the first comes from the prefill).
    new_tokens: int = 16
    train_batch: int = 4
    train_seq: int = 256
    #: Timed repeats per point, interleaved across points (see :mod:`calibration.stats`).
    repeats: int = 3
    statistic: Statistic = DEFAULT_STATISTIC
    threads: int | None = None

    def describe(self) -> dict[str, object]:
        data = asdict(self)
        data["model"] = self.model.name
        return data


@dataclass(frozen=True)
class Timing:
    """Measured seconds of one reference point."""

    kind: str  #: "prefill", "decode" or "training"
    batch: int
    tokens: int  #: prompt length (prefill, decode) or sequence length (training)
    seconds: float  #: the statistic of the samples (decode: per step, then the mean over steps)
    samples: tuple[float, ...] = ()  #: one per repeat (decode: the repeat's mean step time)
