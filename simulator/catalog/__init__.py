"""The catalog: GPUs and model presets with published specs.

Bundled entries live in ``gpus.yaml`` and ``models.yaml`` beside this module (package data, every
number with its public source in a comment). Scenario files may add their own entries under
``catalog:``; those are merged over the bundled ones by name.

Layer 2 of design.md. May import ``common`` only.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Dtype = Literal["fp32", "bf16", "fp8", "fp4", "int8", "int4"]

#: Bytes per weight element for each quantization.
#: fp4 is NVFP4/MXFP4: 4-bit elements plus one 8-bit scale per 16 (NVFP4) or 32 (MXFP4) elements,
#: 0.5 + 1/16 bytes for NVFP4 (NVIDIA "Introducing NVFP4", 2025); the scale is counted.
BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0, "bf16": 2.0, "fp8": 1.0, "fp4": 0.5625, "int8": 1.0, "int4": 0.5,
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GpuSpec(_Frozen):
    """One accelerator (or the local CPU) as its datasheet describes it."""

    name: str = Field(description="Catalog key, lower-case, e.g. 'h100-sxm'.")
    vendor: str = Field(description="Maker of the accelerator, e.g. 'NVIDIA'.")
    description: str = Field(default="", description="Free-text description of the GPU.")
    bf16_tflops: float = Field(gt=0, description="Dense BF16 tensor throughput, TFLOP/s.")
    fp8_tflops: float | None = Field(default=None, gt=0, description="Dense FP8, TFLOP/s.")
    fp4_tflops: float | None = Field(
        default=None, gt=0, description="Dense FP4 (NVFP4/MXFP4) tensor throughput, TFLOP/s (Blackwell, MI355X)."
    )
    int8_tops: float | None = Field(default=None, gt=0, description="Dense INT8, TOP/s.")
    fp32_tflops: float = Field(gt=0, description="FP32 (non-tensor) throughput, TFLOP/s.")
    hbm_gib: float = Field(gt=0, description="Device memory, GiB.")
    hbm_tb_per_s: float = Field(gt=0, description="Peak memory bandwidth, TB/s (1e12 B/s).")
    interconnect_gb_per_s: float = Field(
        gt=0, description="GPU-to-GPU bandwidth per GPU per direction, GB/s (1e9 B/s)."
    )
    tdp_w: float = Field(gt=0, description="Board power at full load, W.")
    idle_power_fraction: float = Field(
        default=0.3, ge=0, le=1, description="Power drawn when idle, as a fraction of TDP."
    )
    decode_power_fraction: float = Field(
        default=0.55, gt=0, le=1,
        description="Board power while serving memory-bound decode iterations, as a fraction "
        "of TDP; compute-bound prefill iterations and training draw TDP. Default 0.55: the "
        "Splitwise simulator's H100 constants (token phase 380 W, prompt phase 700 W of 700; "
        "Patel et al., ISCA 2024, github.com/Mutinifni/splitwise-sim configs/power_model). "
        "A simplification: decode power rises with batch size (ML.ENERGY: ~43% of TDP at "
        "batch 1, ~86% at batch 128 on H100).",
    )  # fmt: skip
    usd_per_gpu_hour_on_demand: float | None = Field(
        default=None, ge=0, description="Typical on-demand cloud price, $ per GPU-hour (default overflow price)."
    )
    usd_per_gpu_hour_reserved: float | None = Field(
        default=None, ge=0, description="Typical reserved (committed) cloud price, $ per GPU-hour."
    )
    capex_usd: float | None = Field(default=None, ge=0, description="Typical purchase price, $ per GPU.")
    gpus_per_node: int = Field(
        default=1, gt=0, description="GPUs per node: the unit capacity is rented and bought in."
    )
    scale_up_gpus: int | None = Field(
        default=None,
        gt=0,
        description="GPUs of one server that reach each other at interconnect_gb_per_s (the "
        "NVLink domain, or a PCIe server's cards); default gpus_per_node. Larger TP/EP groups "
        "pay internode_gb_per_s.",
    )
    internode_gb_per_s: float = Field(
        default=50.0,
        gt=0,
        description="Scale-out network bandwidth per GPU per direction between nodes, GB/s "
        "(default 50: one 400 Gb/s NIC per GPU, as in HGX H100 clusters).",
    )
    host_power_w_per_gpu: float = Field(
        default=0.0, ge=0, description="Server power beyond the GPU (CPUs, memory, NICs, fans), W per GPU."
    )

    def peak_flops_per_s(self, compute_dtype: Dtype) -> float:
        """Peak dense throughput for arithmetic in ``compute_dtype`` (FLOP/s)."""
        tera = 1e12
        if compute_dtype == "fp8" and self.fp8_tflops:
            return self.fp8_tflops * tera
        if compute_dtype == "fp4" and self.fp4_tflops:
            return self.fp4_tflops * tera
        if compute_dtype == "int8" and self.int8_tops:
            return self.int8_tops * tera
        if compute_dtype == "fp32":
            return self.fp32_tflops * tera
        return self.bf16_tflops * tera

    def compute_dtype_for(self, weight_dtype: Dtype) -> Dtype:
        """The dtype the matmuls run in: fp8/int8 where the GPU has such units, else bf16.

        int4 is weight-only quantization (W4A16): the weights are dequantized to bf16; so is fp4
        on a GPU without FP4 tensor cores.
        """
        if weight_dtype == "fp8" and self.fp8_tflops:
            return "fp8"
        if weight_dtype == "fp4" and self.fp4_tflops:
            return "fp4"
        if weight_dtype == "int8" and self.int8_tops:
            return "int8"
        if weight_dtype == "fp32":
            return "fp32"
        return "bf16"

    @property
    def scale_up_domain(self) -> int:
        """GPUs that share the fast interconnect (see ``scale_up_gpus``)."""
        return self.scale_up_gpus or self.gpus_per_node

    @property
    def hbm_bytes(self) -> float:
        return self.hbm_gib * 2**30


class ModelSpec(_Frozen):
    """A transformer's shapes, as its model card / config.json gives them."""

    name: str = Field(description="Catalog key of the model, as deployments and training jobs name it.")
    description: str = Field(default="", description="Free-text description of the model.")
    parameters: float = Field(gt=0, description="Total parameters (all experts for MoE).")
    active_parameters: float | None = Field(
        default=None, gt=0, description="Parameters used per token (MoE); defaults to all."
    )
    layers: int = Field(gt=0, description="Decoder layers.")
    hidden_size: int = Field(gt=0, description="Model (residual stream) width, elements per token.")
    heads: int = Field(gt=0, description="Attention (query) heads per layer.")
    kv_heads: int = Field(
        gt=0, description="Key/value heads per layer (heads is a multiple of it; fewer than heads for GQA/MQA)."
    )
    head_dim: int | None = Field(default=None, gt=0, description="Defaults to hidden/heads.")
    ffn_hidden_size: int = Field(gt=0, description="Feed-forward inner width, elements (per expert for MoE).")
    vocab_size: int = Field(gt=0, description="Vocabulary size, tokens.")
    max_context_tokens: int = Field(default=8192, gt=0, description="Longest prompt + output the model serves, tokens.")
    experts: int | None = Field(default=None, gt=0, description="Routed experts (MoE).")
    experts_per_token: int | None = Field(default=None, gt=0, description="Routed experts active per token (MoE).")
    kv_latent_dim: int | None = Field(
        default=None,
        gt=0,
        description="Multi-head latent attention: cached elements per token per layer "
        "(replaces 2 x kv_heads x head_dim).",
    )
    qk_rope_head_dim: int | None = Field(
        default=None,
        gt=0,
        description="Multi-head latent attention: decoupled rotary dims per head, part of "
        "kv_latent_dim (DeepSeek-V3: 64 of 576).",
    )

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.active_parameters is not None and self.active_parameters > self.parameters:
            raise ValueError("active_parameters must be <= parameters")
        if (self.experts is None) != (self.experts_per_token is None):
            raise ValueError("experts and experts_per_token go together")
        if self.experts and self.experts_per_token and self.experts_per_token > self.experts:
            raise ValueError("experts_per_token must be <= experts")
        if self.heads % self.kv_heads:
            raise ValueError("heads must be a multiple of kv_heads")
        return self

    @property
    def active(self) -> float:
        return self.active_parameters or self.parameters

    @property
    def attention_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.heads

    @property
    def is_moe(self) -> bool:
        return self.experts is not None


class Catalog(_Frozen):
    """GPUs and models by name."""

    gpus: dict[str, GpuSpec]
    models: dict[str, ModelSpec]

    def merged(self, gpus: list[GpuSpec], models: list[ModelSpec]) -> Catalog:
        """This catalog with extra entries added (or replaced) by name."""
        return Catalog(
            gpus={**self.gpus, **{g.name: g for g in gpus}},
            models={**self.models, **{m.name: m for m in models}},
        )


class ApiPrice(_Frozen):
    """A hosted API's public list price per 1M tokens (``api_prices.yaml``), with its source."""

    name: str
    provider: str
    model: str
    usd_per_million_input_tokens: float = Field(ge=0)
    usd_per_million_output_tokens: float = Field(ge=0)
    date: str = Field(description="When the price was read (prices move: check the source).")
    source: str


def _read_bundled(filename: str) -> list[dict]:
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    return yaml.safe_load(text) or []


@lru_cache(maxsize=1)
def bundled_catalog() -> Catalog:
    """The catalog shipped with the package (validated once, cached)."""
    gpus = [GpuSpec.model_validate(g) for g in _read_bundled("gpus.yaml")]
    models = [ModelSpec.model_validate(m) for m in _read_bundled("models.yaml")]
    return Catalog(gpus={g.name: g for g in gpus}, models={m.name: m for m in models})


@lru_cache(maxsize=1)
def bundled_api_prices() -> dict[str, ApiPrice]:
    """Public API list prices by name (validated once, cached)."""
    entries = [ApiPrice.model_validate({**e, "date": str(e["date"])}) for e in _read_bundled("api_prices.yaml")]
    return {e.name: e for e in entries}
