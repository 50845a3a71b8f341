"""Fit the roofline's efficiency parameters to micro-benchmark measurements (numpy, no torch).

Each group of measurements is predicted with the same formulas the cost model uses
(:mod:`simulator.perf.roofline`); its parameters minimise the mean squared log error of the
predictions (:func:`log_error`), and the fit is scored by the mean absolute percentage error
(MAPE, as Vidur scores its runtime predictors):

- GEMMs (a layer's four, and LM heads): ``max(FLOPs / (peak x eff(M)), weight bytes / (peak BW
  x bw_eff))`` with ``eff(M) = max x M / (M + half)`` -> ``gemm_efficiency_max``,
  ``gemm_half_saturation_tokens``, ``memory_bandwidth_efficiency`` (per dtype; the profile keeps
  the primary dtype's). No separate per-call constant: fitted beside the bandwidth it traded off
  against it (the points' bytes per call vary too little to tell them apart) and the decode
  predictions suffered; a GEMV's fixed cost is a few percent of its time at these sizes;
- attention: ``max(FLOPs / (peak x attn_eff), KV bytes / (peak BW x kv_eff))`` ->
  ``attention_efficiency``, ``kv_bandwidth_efficiency``;
- element-wise ops: ``factor x minimum bytes / (peak BW x bw_eff)`` ->
  ``elementwise_traffic_factor``;
- decode step of a tiny-width model: ``fixed + layers x per_layer`` -> ``iteration_overhead_s``,
  ``layer_overhead_s``;
- training step: ``FLOPs / (peak x MFU)`` -> ``training_mfu``;
- all-reduce (when measured): ``latency + bus bytes / (link x eff)`` -> ``allreduce_latency_s``,
  ``interconnect_efficiency``.

Parameters are efficiencies against the catalog GPU's datasheet peaks, so the same profile
prices any model on that GPU. The fit never sees a whole model's timings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from calibration.records import Measurements
from simulator.catalog import Dtype, GpuSpec
from simulator.perf.profile import EfficiencyParameters

#: Parameters are kept inside the ranges the profile schema allows.
_EFF_MAX = 1.0  # an efficiency is a share of the datasheet peak: never above it
#: What the fit minimises: "log" (mean squared log error) or "mape".
OBJECTIVE = "log"


def mape(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray) -> float:
    """Mean absolute percentage error of ``predicted`` against ``measured``, in percent."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if m.size == 0:
        return float("nan")
    return float(np.mean(np.abs(p - m) / m) * 100)


def nelder_mead(
    f: Callable[[np.ndarray], float], x0: Sequence[float], step: float = 0.5,
    iterations: int = 400, tolerance: float = 1e-7,
) -> np.ndarray:  # fmt: skip
    """Minimise ``f`` from ``x0`` with the Nelder-Mead simplex (standard coefficients)."""
    x0 = np.asarray(x0, dtype=float)
    n = x0.size
    simplex = np.vstack([x0] + [x0 + step * np.eye(n)[i] for i in range(n)])
    values = np.array([f(x) for x in simplex])
    for _ in range(iterations):
        order = np.argsort(values)
        simplex, values = simplex[order], values[order]
        if abs(values[-1] - values[0]) <= tolerance * (abs(values[0]) + tolerance):
            break
        centroid = simplex[:-1].mean(axis=0)
        reflected = centroid + (centroid - simplex[-1])
        fr = f(reflected)
        if fr < values[0]:
            expanded = centroid + 2 * (centroid - simplex[-1])
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            inside = fr >= values[-1]
            contracted = centroid + (0.5 * (simplex[-1] - centroid) if inside
                                     else 0.5 * (reflected - centroid))  # fmt: skip
            fc = f(contracted)
            if fc < min(fr, values[-1]):
                simplex[-1], values[-1] = contracted, fc
            else:
                simplex[1:] = simplex[0] + 0.5 * (simplex[1:] - simplex[0])
                values[1:] = [f(x) for x in simplex[1:]]
    return simplex[int(np.argmin(values))]


def _best_of(f: Callable[[np.ndarray], float], starts: Sequence[Sequence[float]]) -> np.ndarray:
    """Nelder-Mead from each start, then once more from the best: the lowest ``f`` found."""
    results = [nelder_mead(f, s) for s in starts]
    best = min(results, key=f)
    return nelder_mead(f, best, step=0.1)


def log_error(
    predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray
) -> float:
    """Mean squared log ratio of ``predicted`` to ``measured``: the objective the fit minimises.

    Over- and under-prediction by the same factor weigh the same, and the smooth objective
    settles between groups of points that disagree (say, GEMVs of two hidden sizes reaching
    different bandwidths) instead of fitting one group exactly, as an L1 objective like MAPE
    tends to. The fit's quality is still reported as MAPE.
    """
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    return float(np.mean(np.log(p / m) ** 2))


def objective(
    predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray
) -> float:
    """The fit's objective (see :func:`log_error`; :data:`OBJECTIVE` = "mape" to use MAPE)."""
    return mape(predicted, measured) if OBJECTIVE == "mape" else log_error(predicted, measured)


def best_scale(predicted_at_one: np.ndarray, measured: np.ndarray) -> float:
    """The c minimising the objective for ``c x predicted_at_one`` (exact)."""
    if OBJECTIVE == "mape":
        return scale_for_mape(predicted_at_one, measured)
    return float(np.exp(np.mean(np.log(measured / predicted_at_one))))


def scale_for_mape(predicted_at_one: np.ndarray, measured: np.ndarray) -> float:
    """The c minimising MAPE of ``c x predicted_at_one`` (a weighted median, exact)."""
    ratio = measured / predicted_at_one
    weight = predicted_at_one / measured
    order = np.argsort(ratio)
    cumulative = np.cumsum(weight[order])
    return float(ratio[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


# ---------------------------------------------------------------------- groups


@dataclass(frozen=True)
class GemmFit:
    """The GEMM curve and weight bandwidth of one dtype."""

    dtype: str
    gemm_efficiency_max: float
    gemm_half_saturation_tokens: float
    memory_bandwidth_efficiency: float
    mape: float
    points: int


def gemm_time_s(
    flops: np.ndarray, weight_bytes: np.ndarray, tokens: np.ndarray, peak_flops: float,
    peak_bytes_per_s: float, eff_max: float, half: float, bw_eff: float,
) -> np.ndarray:  # fmt: skip
    """The roofline's linear-layer time (see ``ServingCostModel.iteration_time_s``)."""
    compute = flops / (peak_flops * eff_max * tokens / (tokens + half))
    return np.maximum(compute, weight_bytes / (peak_bytes_per_s * bw_eff))


def fit_gemm(m: Measurements, gpu: GpuSpec, dtype: str) -> GemmFit | None:
    """Fit the GEMM curve and weight bandwidth of ``dtype`` (None if it was not measured)."""
    rows = [g for g in m.gemm if g.dtype == dtype]
    if not rows:
        return None
    flops = np.array([g.flops for g in rows])
    weights = np.array([g.weight_bytes for g in rows])
    tokens = np.array([g.tokens for g in rows], dtype=float)
    seconds = np.array([g.seconds for g in rows])
    peak = gpu.peak_flops_per_s(gpu.compute_dtype_for(_dtype(dtype)))
    bw = gpu.hbm_tb_per_s * 1e12

    def unpack(x: np.ndarray) -> tuple[float, float, float]:
        return (min(float(np.exp(x[0])), _EFF_MAX), float(np.exp(x[1])),
                min(float(np.exp(x[2])), _EFF_MAX))  # fmt: skip

    def loss(x: np.ndarray) -> float:
        return objective(gemm_time_s(flops, weights, tokens, peak, bw, *unpack(x)), seconds)

    large = tokens >= np.max(tokens) / 4
    eff0 = float(np.median(flops[large] / seconds[large] / peak))
    bw0 = float(np.max(weights / seconds / bw))
    starts = [np.log([eff0, h, bw0]) for h in (4.0, 32.0, 256.0)]
    best = _best_of(loss, starts)
    eff_max, half, bw_eff = unpack(best)
    error = mape(gemm_time_s(flops, weights, tokens, peak, bw, eff_max, half, bw_eff), seconds)
    return GemmFit(dtype, eff_max, half, bw_eff, error, len(rows))


def attention_time_s(
    flops: np.ndarray, kv_bytes: np.ndarray, peak_flops: float, peak_bytes_per_s: float,
    attn_eff: float, kv_eff: float,
) -> np.ndarray:  # fmt: skip
    """The roofline's attention time."""
    return np.maximum(flops / (peak_flops * attn_eff), kv_bytes / (peak_bytes_per_s * kv_eff))


def _dtype(name: str) -> Dtype:
    known = ("fp32", "bf16", "fp8", "fp4", "int8", "int4")
    return name if name in known else "bf16"  # type: ignore[return-value]


# ---------------------------------------------------------------------- whole fit


@dataclass
class FitResult:
    """Fitted parameters, with the fit's error per group of measurements (MAPE, percent)."""

    parameters: EfficiencyParameters
    mape_by_group: dict[str, float]
    points_by_group: dict[str, int]
    gemm_by_dtype: dict[str, GemmFit] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def mape(self) -> float:
        """MAPE over every measured point of every fitted group."""
        total = sum(self.points_by_group.values())
        if not total:
            return float("nan")
        return sum(self.mape_by_group[g] * n for g, n in self.points_by_group.items()) / total

    def summary(self) -> dict[str, object]:
        """Plain data for the profile's measurements section."""
        return {
            "mape_percent": round(self.mape, 2),
            "mape_percent_by_group": {g: round(v, 2) for g, v in self.mape_by_group.items()},
            "points_by_group": dict(self.points_by_group),
            "gemm_by_dtype": {
                d: {"gemm_efficiency_max": round(f.gemm_efficiency_max, 4),
                    "gemm_half_saturation_tokens": round(f.gemm_half_saturation_tokens, 2),
                    "memory_bandwidth_efficiency": round(f.memory_bandwidth_efficiency, 4),
                    "mape_percent": round(f.mape, 2), "points": f.points}
                for d, f in self.gemm_by_dtype.items()
            },
            "notes": list(self.notes),
        }  # fmt: skip


def fit(m: Measurements, gpu: GpuSpec, primary: str, base: EfficiencyParameters) -> FitResult:
    """Fit every parameter the measurements cover; the others are taken from ``base``.

    ``primary``: the dtype whose GEMM curve the profile keeps (the serving dtype).
    """
    values: dict[str, float | None] = {}
    errors: dict[str, float] = {}
    counts: dict[str, int] = {}
    notes: list[str] = []
    gemm_by_dtype = {d: f for d in dict.fromkeys(g.dtype for g in m.gemm)
                     if (f := fit_gemm(m, gpu, d)) is not None}  # fmt: skip
    main = gemm_by_dtype.get(primary)
    if main is None:
        raise ValueError(f"no GEMM measurements in the primary dtype {primary!r}")
    values.update(gemm_efficiency_max=main.gemm_efficiency_max,
                  gemm_half_saturation_tokens=main.gemm_half_saturation_tokens,
                  memory_bandwidth_efficiency=main.memory_bandwidth_efficiency)  # fmt: skip
    errors["gemm"], counts["gemm"] = main.mape, main.points
    bandwidth = gpu.hbm_tb_per_s * 1e12

    rows = [a for a in m.attention if a.dtype == primary]
    if rows:
        flops = np.array([a.flops for a in rows])
        kv = np.array([a.kv_bytes for a in rows])
        seconds = np.array([a.seconds for a in rows])
        peak = gpu.peak_flops_per_s("fp32" if primary == "fp32" else "bf16")

        def attention_loss(x: np.ndarray) -> float:
            ae, ke = (min(float(np.exp(v)), _EFF_MAX) for v in x)
            return objective(attention_time_s(flops, kv, peak, bandwidth, ae, ke), seconds)

        starts = [np.log([0.3, 0.5]), np.log([0.05, 0.1]), np.log([0.8, 0.9])]
        ae, ke = (min(float(np.exp(v)), _EFF_MAX) for v in _best_of(attention_loss, starts))
        values.update(attention_efficiency=ae, kv_bandwidth_efficiency=ke)
        errors["attention"] = mape(attention_time_s(flops, kv, peak, bandwidth, ae, ke), seconds)
        counts["attention"] = len(rows)

    rows_e = [e for e in m.elementwise if e.dtype == primary]
    if rows_e:
        at_one = np.array([e.min_bytes for e in rows_e]) / (
            bandwidth * main.memory_bandwidth_efficiency
        )
        seconds = np.array([e.seconds for e in rows_e])
        factor = best_scale(at_one, seconds)
        values["elementwise_traffic_factor"] = factor
        errors["elementwise"], counts["elementwise"] = mape(factor * at_one, seconds), len(rows_e)

    if m.overhead:
        layers = np.array([o.layers for o in m.overhead], dtype=float)
        seconds = np.array([o.seconds for o in m.overhead])
        if np.unique(layers).size >= 2:
            slope, intercept = np.polyfit(layers, seconds, 1)
        else:
            slope, intercept = 0.0, float(np.median(seconds))
        slope, intercept = max(float(slope), 0.0), max(float(intercept), 0.0)
        values.update(iteration_overhead_s=intercept, layer_overhead_s=slope)
        errors["overhead"] = mape(intercept + slope * layers, seconds)
        counts["overhead"] = len(m.overhead)

    rows_t = [t for t in m.training if t.dtype == primary]
    if rows_t:
        peak = gpu.peak_flops_per_s(gpu.compute_dtype_for(_dtype(primary)))
        at_one = np.array([t.flops for t in rows_t]) / peak
        seconds = np.array([t.seconds for t in rows_t])
        mfu = min(1.0 / best_scale(at_one, seconds), 1.0)
        values["training_mfu"] = mfu
        errors["training"], counts["training"] = mape(at_one / mfu, seconds), len(rows_t)

    if m.allreduce:
        sizes = np.array([a.bytes for a in m.allreduce])
        seconds = np.array([a.seconds for a in m.allreduce])
        gpus = m.allreduce[0].gpus
        bus = 2 * (gpus - 1) / gpus * sizes
        link = gpu.interconnect_gb_per_s * 1e9

        def allreduce_loss(x: np.ndarray) -> float:
            predicted = np.exp(x[0]) + bus / (link * min(float(np.exp(x[1])), _EFF_MAX))
            return objective(predicted, seconds)

        lat, ie = _best_of(allreduce_loss, [np.log([float(seconds.min()), 0.5])])
        values.update(allreduce_latency_s=float(np.exp(lat)),
                      interconnect_efficiency=min(float(np.exp(ie)), _EFF_MAX))  # fmt: skip
        errors["allreduce"] = mape(np.exp(lat) + bus / (link * min(float(np.exp(ie)), _EFF_MAX)),
                                   seconds)  # fmt: skip
        counts["allreduce"] = len(m.allreduce)
    else:
        notes.append("interconnect_efficiency and allreduce_latency_s not measured "
                     "(fewer than 2 GPUs): kept from the bundled profile")  # fmt: skip

    parameters = base.model_copy(update=values)
    return FitResult(EfficiencyParameters.model_validate(parameters.model_dump()), errors, counts,
                     gemm_by_dtype, notes)  # fmt: skip
