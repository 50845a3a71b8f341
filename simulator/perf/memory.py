"""Memory arithmetic of a serving replica: weights, KV cache per token, KV capacity.

Pure functions of catalog numbers; no simulation.
"""

from __future__ import annotations

from simulator.catalog import BYTES_PER_ELEMENT, GpuSpec, ModelSpec

#: Memory per GPU the runtime holds outside weights, KV cache and activations: CUDA context and
#: cuBLAS/NCCL workspaces (~0.5 GiB) plus captured CUDA graphs (~0.5 GiB). vLLM logs both at
#: start-up ("non_torch_memory" ~0.2-0.6 GiB; "Graph capturing finished ... took 0.4-1 GiB"); the
#: activation peak of a forward pass is added by :func:`activation_reserve_bytes_per_gpu`.
RUNTIME_RESERVE_BYTES_PER_GPU = 1 * 2**30
#: Sampling holds fp32 logits for every row of a batch.
LOGIT_BYTES = 4.0


def default_kv_dtype(weight_dtype: str) -> str:
    """The KV-cache dtype engines pick for weights of ``weight_dtype`` ("auto"): fp8 with fp8
    or fp4 weights, fp32 with fp32, else bf16."""
    if weight_dtype == "fp32":
        return "fp32"
    return "fp8" if weight_dtype in ("fp8", "fp4") else "bf16"


def weight_bytes(model: ModelSpec, dtype: str) -> float:
    """Bytes of all weights (every expert of an MoE) at the given quantization."""
    return model.parameters * BYTES_PER_ELEMENT[dtype]


def kv_heads_per_rank(model: ModelSpec, tensor_parallel: int) -> int:
    """KV heads each TP rank holds: kv_heads / TP, but at least one (with TP > kv_heads each
    rank keeps a replica of the head its query heads use, as vLLM and TensorRT-LLM do)."""
    return -(-model.kv_heads // tensor_parallel)


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str, tensor_parallel: int = 1) -> float:
    """KV-cache bytes one token occupies across all layers and all TP ranks of a replica.

    Standard attention caches K and V: 2 x kv_heads x head_dim elements per layer, split over the
    TP ranks, replicated when TP > kv_heads (:func:`kv_heads_per_rank`). Multi-head latent
    attention caches ``kv_latent_dim`` elements per layer, and every TP rank keeps the whole
    latent (it is not split by head; vLLM and SGLang MLA backends, DeepSeek-V3 inference code),
    so a replica of TP ranks holds TP copies.
    """
    element = BYTES_PER_ELEMENT[kv_dtype]
    if model.kv_latent_dim:
        return model.layers * model.kv_latent_dim * element * tensor_parallel
    per_rank = 2 * kv_heads_per_rank(model, tensor_parallel) * model.attention_head_dim
    return model.layers * per_rank * element * tensor_parallel


def activation_reserve_bytes_per_gpu(
    model: ModelSpec, tensor_parallel: int, max_batched_tokens: int, max_batch_size: int,
    activation_element_bytes: float = 2.0,
) -> float:  # fmt: skip
    """Peak activation memory of one forward pass per GPU, plus the runtime's reserve.

    What vLLM's start-up profile run measures: the largest live tensors of an iteration of
    ``max_batched_tokens`` tokens are the MLP's gate+up output (2 x ffn / TP per token) and the
    residual stream with its norm output and attention output (4 x hidden per token), plus fp32
    logits of every batch row (vocab / TP each). For an MoE the MLP term is one expert's width
    times the experts each token uses.
    """
    ffn = model.ffn_hidden_size * (model.experts_per_token or 1)
    per_token = (2 * ffn / tensor_parallel + 4 * model.hidden_size) * activation_element_bytes
    logits = min(max_batch_size, max_batched_tokens) * model.vocab_size / tensor_parallel * LOGIT_BYTES
    return RUNTIME_RESERVE_BYTES_PER_GPU + max_batched_tokens * per_token + logits


def usable_bytes(gpu: GpuSpec, tensor_parallel: int, gpu_memory_utilization: float) -> float:
    """Memory of a replica that the server may use for weights, activations and KV cache."""
    return tensor_parallel * max(gpu.hbm_bytes * gpu_memory_utilization - RUNTIME_RESERVE_BYTES_PER_GPU, 0.0)


def kv_cache_bytes(
    model: ModelSpec,
    gpu: GpuSpec,
    dtype: str,
    tensor_parallel: int,
    gpu_memory_utilization: float,
    *,
    max_batched_tokens: int = 8192,
    max_batch_size: int = 256,
    fraction_of_free: bool = False,
) -> float:
    """Bytes left for the KV cache after weights and activations (negative: they do not fit).

    ``fraction_of_free`` False (vLLM, SGLang): the engine may use ``gpu_memory_utilization`` of
    the GPU for everything; True (TensorRT-LLM's ``kv_cache_free_gpu_mem_fraction``): the KV
    cache gets that share of what is free after weights and activations.
    """
    act = activation_reserve_bytes_per_gpu(model, tensor_parallel, max_batched_tokens, max_batch_size,
                                           4.0 if dtype == "fp32" else 2.0)  # fmt: skip
    weights_per_gpu = weight_bytes(model, dtype) / tensor_parallel
    if fraction_of_free:
        free = gpu.hbm_bytes - weights_per_gpu - act
        per_gpu = free * gpu_memory_utilization if free > 0 else free
    else:
        per_gpu = gpu.hbm_bytes * gpu_memory_utilization - weights_per_gpu - act
    return tensor_parallel * per_gpu


def kv_cache_blocks(
    model: ModelSpec,
    gpu: GpuSpec,
    dtype: str,
    kv_dtype: str,
    tensor_parallel: int,
    gpu_memory_utilization: float,
    block_tokens: int,
    *,
    max_batched_tokens: int = 8192,
    max_batch_size: int = 256,
    fraction_of_free: bool = False,
) -> int:
    """Whole KV blocks of ``block_tokens`` tokens a replica holds (0 if weights do not fit)."""
    free = kv_cache_bytes(model, gpu, dtype, tensor_parallel, gpu_memory_utilization,
                          max_batched_tokens=max_batched_tokens, max_batch_size=max_batch_size,
                          fraction_of_free=fraction_of_free)  # fmt: skip
    per_block = kv_bytes_per_token(model, kv_dtype, tensor_parallel) * block_tokens
    return max(int(free // per_block), 0)
