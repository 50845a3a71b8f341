"""Calibration profiles: the efficiency parameters that scale the roofline.

A profile is a YAML file (bundled ones under ``calibration/profiles/``, one per catalog GPU, with
each number's public source in a comment; measured ones written by ``fleetsim calibrate``).
Loading a profile validates it like a scenario file.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class EfficiencyParameters(BaseModel):
    """Fractions of datasheet peaks that real kernels reach, plus fixed costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gemm_efficiency_max: float = Field(gt=0, le=1, description="GEMM share of peak at large M, fraction 0-1.")
    gemm_half_saturation_tokens: float = Field(
        ge=0, description="Token count M where GEMM efficiency is half its maximum."
    )
    attention_efficiency: float = Field(gt=0, le=1, description="Attention share of peak, fraction 0-1.")
    memory_bandwidth_efficiency: float = Field(gt=0, le=1, description="Share of peak HBM bandwidth, fraction 0-1.")
    interconnect_efficiency: float = Field(
        gt=0, le=1, description="All-reduce bus bandwidth share of peak, fraction 0-1."
    )
    allreduce_latency_s: float = Field(ge=0, description="Fixed latency of one all-reduce, s.")
    iteration_overhead_s: float = Field(ge=0, description="Fixed cost of one serving step, s.")
    training_kernel_efficiency: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Training step time on one GPU against its roofline, fraction 0-1 (GEMMs at gemm "
        "efficiency, attention at attention efficiency, element-wise traffic at the achieved "
        "bandwidth): what fp32 gradient accumulation, launch gaps and stragglers cost. "
        "Calibrated on published runs (see simulator.perf.training).",
    )
    training_layer_overhead_s: float = Field(
        default=0.0,
        ge=0,
        description="Fixed seconds per layer and micro-batch of a training step (forward + "
        "backward kernel launches and small ops), on top of the roofline.",
    )
    fp8_gemm_efficiency_max: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of the FP8 peak FP8 GEMMs reach at large M, fraction 0-1; default: "
        "gemm_efficiency_max.",
    )
    fp4_gemm_efficiency_max: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of the FP4 peak FP4 GEMMs reach at large M, fraction 0-1; default: the FP8 one.",
    )
    sequence_overhead_s: float = Field(
        default=0.0,
        ge=0,
        description="Host seconds per sampled sequence of a serving step (sampling, "
        "detokenisation, scheduler bookkeeping), on top of iteration_overhead_s.",
    )
    prefill_chunk_overhead_s: float = Field(
        default=0.0,
        ge=0,
        description="Extra seconds per prefill chunk in a step (input preparation, attention "
        "metadata per prompt).",
    )
    compute_memory_overlap: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="How far (0-1) the linear layers' compute and weight reads overlap: time = "
        "max(compute, memory) + (1 - overlap) x min(compute, memory); 1: the ideal roofline.",
    )
    training_mfu: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="A fixed model FLOPs utilisation (fraction of peak 0-1) for every training job on this GPU, "
        "overriding the layout model (profiles written before it; a job's mfu: wins).",
    )
    # Optional refinements, measured by `fleetsim calibrate`; the defaults leave the roofline as
    # it was (published profiles fold these costs into the figures above).
    kv_bandwidth_efficiency: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Share of peak memory bandwidth (0-1) attention reaches reading the KV cache; "
        "default: memory_bandwidth_efficiency.",
    )
    elementwise_traffic_factor: float = Field(
        default=0.0,
        ge=0,
        description="Time of the unfused element-wise ops between the GEMMs (RMSNorms, rotary, "
        "residual adds, gated activation) as a multiple of their minimum memory traffic at the "
        "achieved bandwidth; 0: fused into the GEMMs or counted in the GEMM efficiency.",
    )
    layer_overhead_s: float = Field(
        default=0.0,
        ge=0,
        description="Fixed cost per layer of one serving step (kernel launches / op dispatch), s.",
    )

    def gemm_scale(self, compute_dtype: str) -> float:
        """GEMM efficiency of ``compute_dtype`` relative to the bf16 one (1 for bf16, fp32,
        int8): FP8 GEMMs reach a smaller share of their doubled peak (cuBLASLt FP8 on H100 runs
        ~1,300-1,500 of 1,979 TFLOPS where BF16 reaches ~750 of 989), FP4 a smaller one still."""
        fp8 = self.fp8_gemm_efficiency_max or self.gemm_efficiency_max
        if compute_dtype == "fp8":
            return fp8 / self.gemm_efficiency_max
        if compute_dtype == "fp4":
            return (self.fp4_gemm_efficiency_max or fp8) / self.gemm_efficiency_max
        return 1.0


class CalibrationProfile(BaseModel):
    """A named set of efficiency parameters for one GPU kind, with its provenance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Profile name (a bundled profile is named after its catalog GPU).")
    gpu: str = Field(description="Catalog GPU name this profile describes.")
    device: str = Field(description="Device as reported by the benchmark or datasheet.")
    source: Literal["published", "measured"] = Field(
        description="'published' (from, or fitted to, public figures) or 'measured' (benchmarked by fleetsim "
        "calibrate)."
    )
    torch_version: str | None = Field(
        default=None, description="PyTorch version a measured profile was benchmarked with (none: published)."
    )
    # The default None shadows the ``date`` type in the class body, so this evaluates to ``str | None``.
    date: Annotated[
        date | str | None, Field(description="When the profile was written, a date string YYYY-MM-DD.")
    ] = None
    parameters: EfficiencyParameters = Field(
        description="Efficiency parameters that scale the roofline (fractions of peak and fixed costs)."
    )
    fit_mape: float | None = Field(
        default=None, ge=0, description="Fit error, mean absolute percentage error, % (none: not fitted)."
    )
    measurements: dict[str, Any] = Field(
        default_factory=dict,
        description="Record of the measurements or fit behind the profile (settings, fit, accuracy check).",
    )


def _profiles_dir() -> Any:
    return resources.files("calibration").joinpath("profiles")


def bundled_profile_names() -> list[str]:
    """Names (file stems) of the profiles shipped with the package."""
    return sorted(
        p.name.removesuffix(".yaml") for p in _profiles_dir().iterdir() if p.name.endswith(".yaml")
    )


@lru_cache(maxsize=64)
def bundled_profile(name: str) -> CalibrationProfile:
    """A bundled profile by name; raises KeyError listing the known names."""
    path = _profiles_dir().joinpath(f"{name}.yaml")
    if not path.is_file():
        raise KeyError(f"no bundled calibration profile {name!r} (known: {bundled_profile_names()})")
    return CalibrationProfile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def default_profile_for_gpu(gpu_name: str) -> CalibrationProfile:
    """The bundled profile for a catalog GPU (named after it)."""
    return bundled_profile(gpu_name)
