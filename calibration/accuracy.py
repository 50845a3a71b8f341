"""Accuracy of the calibrated cost model against a real PyTorch transformer (no torch here).

The reference (:mod:`calibration.reference_model`) is a Llama-style decoder whose shapes are a
catalog :class:`~simulator.catalog.ModelSpec` (``tiny-cpu`` on CPUs). It runs its real generation
loop at every batch size x prompt length of
:class:`~calibration.reference_setup.ReferenceSetup`, timing the prefill and each
decode step, and one training step (forward + backward + AdamW). The cost model predicts the same
from the spec, the catalog GPU and a calibration profile:

- prefill of b prompts of p tokens: ``ServingCostModel.prefill_s(p, b)``;
- a decode step: the mean of ``decode_step_s(b, p + j)`` over the measured steps j (context
  grows by one token a step); measured: the mean over steps j of step j's time;
- a training step of B x S tokens: ``training_time_s(spec, B*S, 1, gpu, dtype, S, mfu)``.

Errors are scored as in Vidur: absolute percentage error per point, MAPE over points. The
profile is fitted on micro-benchmarks only; the reference's timings never enter the fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from calibration.fit import mape
from calibration.reference_setup import ReferenceSetup, Timing
from simulator.catalog import GpuSpec
from simulator.perf.profile import CalibrationProfile
from simulator.perf.roofline import ServingCostModel, training_time_s

#: Acceptance: the aim, and the limit the validation test enforces (MAPE, percent).
TARGET_MAPE = 10.0
LIMIT_MAPE = 20.0


@dataclass(frozen=True)
class AccuracyPoint:
    """Measured and predicted seconds of one point, and the error."""

    kind: str
    batch: int
    tokens: int
    measured_s: float
    predicted_s: float

    @property
    def error_percent(self) -> float:
        """Signed error of the prediction, percent of the measurement."""
        return (self.predicted_s / self.measured_s - 1) * 100

    def as_row(self) -> dict[str, object]:
        return {**asdict(self), "error_percent": self.error_percent}


@dataclass(frozen=True)
class AccuracyReport:
    """Per-point errors and their MAPE."""

    points: tuple[AccuracyPoint, ...]
    setup: dict[str, object]
    profile: str

    @property
    def mape(self) -> float:
        return mape([p.predicted_s for p in self.points], [p.measured_s for p in self.points])

    def mape_of(self, kind: str) -> float:
        chosen = [p for p in self.points if p.kind == kind]
        return mape([p.predicted_s for p in chosen], [p.measured_s for p in chosen])

    def summary(self) -> dict[str, object]:
        """Plain data: per-point rows, MAPE overall and per kind."""
        kinds = dict.fromkeys(p.kind for p in self.points)
        return {
            "profile": self.profile,
            "setup": self.setup,
            "mape_percent": round(self.mape, 2),
            "mape_percent_by_kind": {k: round(self.mape_of(k), 2) for k in kinds},
            "points": [
                {
                    k: (float(f"{v:.5g}") if isinstance(v, float) else v)
                    for k, v in p.as_row().items()
                }
                for p in self.points
            ],
        }


def cost_model_for(
    setup: ReferenceSetup, gpu: GpuSpec, profile: CalibrationProfile
) -> ServingCostModel:
    """The cost model of the reference: its spec on ``gpu`` in its dtype, TP 1."""
    return ServingCostModel(setup.model, gpu, setup.dtype, setup.dtype, 1, profile.parameters)


def predict(
    setup: ReferenceSetup, timing: Timing, gpu: GpuSpec, profile: CalibrationProfile
) -> float:
    """Seconds the cost model predicts for the point ``timing`` measured."""
    cm = cost_model_for(setup, gpu, profile)
    if timing.kind == "prefill":
        return float(cm.prefill_s(timing.tokens, timing.batch))
    if timing.kind == "decode":
        context = timing.tokens + np.arange(setup.new_tokens - 1)  # cache before each step
        return float(np.mean(cm.decode_step_s(timing.batch, context)))
    if timing.kind == "training":
        eff = profile.parameters  # published profiles carry no single-device MFU: approximate
        mfu = eff.training_mfu or min(eff.gemm_efficiency_max * eff.training_kernel_efficiency, 1.0)
        return training_time_s(setup.model, timing.batch * timing.tokens, 1, gpu, setup.dtype,
                               timing.tokens, mfu)  # fmt: skip
    raise ValueError(f"unknown point kind {timing.kind!r}")


def compare(
    setup: ReferenceSetup, timings: list[Timing], gpu: GpuSpec, profile: CalibrationProfile
) -> AccuracyReport:
    """Per-point errors of the profile's predictions against measured ``timings``."""
    points = tuple(
        AccuracyPoint(t.kind, t.batch, t.tokens, t.seconds, predict(setup, t, gpu, profile))
        for t in timings
    )
    return AccuracyReport(points, setup.describe(), profile.name)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def table_rows(report: AccuracyReport) -> list[list[str]]:
    """Rows of the per-point table: kind, batch, tokens, measured, predicted, error."""
    return [
        [p.kind, str(p.batch), str(p.tokens), _ms(p.measured_s), _ms(p.predicted_s),
         f"{p.error_percent:+.1f}%"]
        for p in report.points
    ]  # fmt: skip


TABLE_COLUMNS = ["point", "batch", "prompt/seq", "measured", "predicted", "error"]


def table_lines(report: AccuracyReport) -> list[str]:
    """The per-point table and the MAPE as plain text lines (for comments and logs)."""
    rows = [TABLE_COLUMNS, *table_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]  # fmt: skip
    kinds = dict.fromkeys(p.kind for p in report.points)
    by_kind = ", ".join(f"{k} {report.mape_of(k):.1f}%" for k in kinds)
    lines.append(f"MAPE {report.mape:.1f}% ({by_kind}); aim <= {TARGET_MAPE:.0f}%, "
                 f"limit {LIMIT_MAPE:.0f}%")  # fmt: skip
    return lines
