"""LoRA adapters: their size, their serving overhead per iteration, and LoRA fine-tuning FLOPs.

A LoRA adapter (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") adds to a
frozen weight W (d_in x d_out) the product A B of A (d_in x r) and B (r x d_out). Per adapted
matrix and layer it holds r (d_in + d_out) parameters, and applying it to one token costs
2 r d_in (x A) + 2 r d_out ((x A) B) = 2 r (d_in + d_out) FLOPs (2 FLOPs per multiply-add; the
two GEMMs are both in the sum, so there is no further factor 2).

Adapted matrices, from the catalog's shapes (per layer): ``attention`` = q (h -> H d), k and v
(h -> K d), o (H d -> h), with h the hidden size, H heads, K KV heads, d the head dimension;
``all_linear`` adds the FFN's gate and up (h -> f) and down (f -> h) — the QLoRA convention
(Dettmers et al. 2023), and what multi-tenant servers such as Punica adapt. For MoE models the
FFN matrices exist once per expert (all are stored, ``experts_per_token`` run per token).

**Serving overhead.** Multi-adapter servers run the base model's GEMMs once for the whole batch
and the adapters' products in separate batched kernels: Punica's SGMV (Chen et al. 2023,
"Punica: Multi-Tenant LoRA Serving", MLSys 2024) and S-LoRA's MBGMM/MBGMV (Sheng et al. 2023,
"S-LoRA: Serving Thousands of Concurrent LoRA Adapters"): a shrink (x A) and an expand ((x A) B)
kernel per adapted matrix and layer, each segmenting the batch by adapter and reading every
*distinct* adapter's A and B once. Priced like the rest of the cost model, per iteration of T
tokens with D >= 1 distinct adapters in it::

    adapter_s(T, D) = 2 x matrices x layers x LORA_KERNEL_OVERHEAD_S             (fixed part)
                    + max(T x lora FLOPs per token / TP / achieved GEMM FLOP/s(T),
                          D x adapter bytes / TP / achieved bandwidth)       (per distinct adapter)

and 0 when no request of the batch uses an adapter (D = 0). The second term is the "base +
per-distinct-adapter" shape both papers measure: the kernels are memory-bound in decode, and the
bytes they read grow with the distinct adapters (Punica's "Distinct" vs "Identical" cases;
S-LoRA's throughput falling slowly with more adapters per batch). The fixed part is calibrated
on Punica's headline figure: about 2 ms added per token on a 7B model with all seven projections
adapted, i.e. 2 x 7 x 32 = 448 kernels of ~4.5 us; we use 4 us per kernel (small-batch decode,
where the fixed cost dominates). Loading adapters from host memory into GPU slots (S-LoRA,
vLLM's ``max_cpu_loras``) is not modelled: every adapter a deployment serves, or
``max_adapters_per_batch`` of them, is resident in GPU memory, and that memory is taken from the
KV cache.

**LoRA fine-tuning FLOPs.** Full training costs 6 N per token (Kaplan et al. 2020: forward 2N,
backward 4N = activation gradients 2N + weight gradients 2N). With the base frozen the weight
gradients of N are not computed but the activation gradients still flow through every layer to
reach the adapters, so LoRA costs 4 N per token, plus 6 N_lora for the adapters themselves, plus
the same causal attention term as full training (attention has no weights). The LoRA paper
(Sec. 4.2) reports a 25% training speed-up on GPT-3 175B from skipping these gradients; the FLOP
count gives at most 1.5x, and LoRA runs often reach a lower MFU (set ``mfu:`` on the job).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.catalog import GpuSpec, ModelSpec
from simulator.perf.memory import usable_bytes
from simulator.perf.profile import EfficiencyParameters
from simulator.perf.roofline import gemm_efficiency, matmul_parameters

#: Fixed seconds of one adapter kernel (shrink or expand) per adapted matrix and layer; see the
#: module docstring (Punica: ~2 ms per token for 448 kernels on a 7B model).
LORA_KERNEL_OVERHEAD_S = 4e-6
#: Kernels per adapted matrix and layer: shrink (x A) and expand ((x A) B).
LORA_KERNELS_PER_MATRIX = 2
#: Bytes per trainable LoRA parameter in mixed-precision Adam: bf16 weight and gradient (2 + 2)
#: plus fp32 master weight, first and second moments (4 + 4 + 4) (Rajbhandari et al. 2020,
#: "ZeRO", Sec. 3.1: 16 bytes per parameter).
ADAM_BYTES_PER_TRAINABLE_PARAMETER = 16.0

Modules = str  # "attention" or "all_linear"


@dataclass(frozen=True)
class AdaptedMatrix:
    """One adapted weight of a layer: its shape, and how many of it a layer stores / runs."""

    name: str
    d_in: int
    d_out: int
    stored: int = 1  # copies per layer (experts for an MoE FFN)
    active: int = 1  # copies one token runs through (experts per token)


def adapted_matrices(model: ModelSpec, modules: Modules = "all_linear") -> list[AdaptedMatrix]:
    """The matrices of one layer an adapter adapts (see the module docstring)."""
    if modules not in ("attention", "all_linear"):
        raise ValueError(f"modules (={modules!r}) must be 'attention' or 'all_linear'")
    h, d = model.hidden_size, model.attention_head_dim
    q, kv = model.heads * d, model.kv_heads * d
    out = [AdaptedMatrix("q", h, q), AdaptedMatrix("k", h, kv), AdaptedMatrix("v", h, kv),
           AdaptedMatrix("o", q, h)]  # fmt: skip
    if modules == "all_linear":
        f = model.ffn_hidden_size
        stored = model.experts or 1
        active = model.experts_per_token or 1
        out += [AdaptedMatrix("gate", h, f, stored, active), AdaptedMatrix("up", h, f, stored, active),
                AdaptedMatrix("down", f, h, stored, active)]  # fmt: skip
    return out


def adapter_parameters(model: ModelSpec, rank: int, modules: Modules = "all_linear") -> float:
    """Parameters of one adapter: r x (d_in + d_out) per adapted matrix, all layers."""
    per_layer = sum(m.stored * (m.d_in + m.d_out) for m in adapted_matrices(model, modules))
    return float(rank * per_layer * model.layers)


def adapter_active_parameters(
    model: ModelSpec, rank: int, modules: Modules = "all_linear"
) -> float:
    """Adapter parameters one token runs through (differs from the total only for MoE)."""
    per_layer = sum(m.active * (m.d_in + m.d_out) for m in adapted_matrices(model, modules))
    return float(rank * per_layer * model.layers)


def adapter_bytes(
    model: ModelSpec, rank: int, modules: Modules = "all_linear", element_bytes: float = 2.0
) -> float:
    """GPU memory of one adapter (bf16 by default: adapters are kept in the activation dtype)."""
    return adapter_parameters(model, rank, modules) * element_bytes


def lora_flops_per_token(model: ModelSpec, rank: int, modules: Modules = "all_linear") -> float:
    """Forward FLOPs of one token through its adapter: 2 r (d_in + d_out) per adapted matrix."""
    return 2.0 * adapter_active_parameters(model, rank, modules)


def adapter_kernel_count(model: ModelSpec, modules: Modules = "all_linear") -> int:
    """Adapter kernels per iteration: shrink + expand per adapted matrix and layer."""
    return LORA_KERNELS_PER_MATRIX * len(adapted_matrices(model, modules)) * model.layers


@dataclass(frozen=True)
class AdapterTerms:
    """The adapter overhead of one replica's iterations, as a table over the token count T.

    ``time_s(T, D) = fixed_s + max(flops_s[T], D x bytes_s_per_adapter)`` for D >= 1, else 0.
    """

    fixed_s: float  #: kernel overheads per iteration
    flops_s: np.ndarray  #: adapter FLOPs of T tokens at the achieved GEMM rate, shape (T_max + 1,)
    bytes_s_per_adapter: float  #: seconds to read one distinct adapter's weights

    def time_s(self, tokens: int, distinct: int) -> float:
        if distinct <= 0 or tokens <= 0:
            return 0.0
        return self.fixed_s + max(float(self.flops_s[tokens]), distinct * self.bytes_s_per_adapter)


def adapter_terms(
    model: ModelSpec,
    gpu: GpuSpec,
    efficiency: EfficiencyParameters,
    tensor_parallel: int,
    rank: int,
    modules: Modules,
    max_tokens: int,
    element_bytes: float = 2.0,
) -> AdapterTerms:
    """Adapter overhead tables for iterations of up to ``max_tokens`` tokens.

    The adapters' GEMMs run in the activation dtype (bf16, fp32 for fp32 models) at the GEMM
    efficiency of a T-token batch; their weights are read at the weights' achieved bandwidth;
    both are split over the tensor-parallel ranks (S-LoRA shards the adapters like the base).
    """
    tokens = np.arange(max_tokens + 1, dtype=float)
    peak = gpu.peak_flops_per_s("fp32" if element_bytes >= 4 else "bf16")
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = peak * gemm_efficiency(tokens, efficiency)
        flops_s = np.where(
            tokens > 0,
            tokens * lora_flops_per_token(model, rank, modules) / tensor_parallel / rate,
            0.0,
        )
    bandwidth = gpu.hbm_tb_per_s * 1e12 * efficiency.memory_bandwidth_efficiency
    return AdapterTerms(
        fixed_s=adapter_kernel_count(model, modules) * LORA_KERNEL_OVERHEAD_S,
        flops_s=flops_s,
        bytes_s_per_adapter=adapter_bytes(model, rank, modules, element_bytes)
        / tensor_parallel
        / bandwidth,
    )


# ---- training ------------------------------------------------------------------------------


def lora_training_flops(
    model: ModelSpec, tokens: float, sequence_length_tokens: int, rank: int
) -> float:
    """FLOPs of LoRA fine-tuning on ``tokens`` tokens (adapters on every linear layer).

    Per token: 4 N (forward + activation gradients through the frozen base, no weight
    gradients) + 6 N_lora (the adapters train fully) + 6 x layers x width x seq (causal
    attention, as in :func:`simulator.perf.roofline.training_flops`).
    """
    width = model.heads * model.attention_head_dim
    lora = adapter_active_parameters(model, rank, "all_linear")
    per_token = 4 * matmul_parameters(model) + 6 * lora + 6 * model.layers * width * sequence_length_tokens
    return per_token * tokens


def lora_training_state_bytes(
    model: ModelSpec, rank: int, weight_bytes_per_element: float
) -> float:
    """Weights and optimizer state of a LoRA fine-tune, whole job (activations excluded).

    The frozen base at its dtype, plus 16 bytes per trainable adapter parameter (mixed-precision
    Adam). A full fine-tune would need 16 bytes for every parameter.
    """
    lora = adapter_parameters(model, rank, "all_linear")
    return model.parameters * weight_bytes_per_element + lora * ADAM_BYTES_PER_TRAINABLE_PARAMETER


def lora_training_fits(
    model: ModelSpec, rank: int, weight_bytes_per_element: float, gpu: GpuSpec, gpus: int
) -> tuple[bool, float, float]:
    """(fits, bytes needed, bytes usable): weights + optimizer state sharded over the job's GPUs
    (FSDP / ZeRO-3), against their usable memory at 90% utilisation minus the runtime reserve."""
    need = lora_training_state_bytes(model, rank, weight_bytes_per_element)
    have = usable_bytes(gpu, gpus, 0.9)
    return need < have, need, have
