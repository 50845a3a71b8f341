"""Memory arithmetic of a serving replica: weights, KV cache per token, KV capacity.

Pure functions of catalog numbers; no simulation.
"""

from __future__ import annotations

from simulator.catalog import BYTES_PER_ELEMENT, GpuSpec, ModelSpec

#: Memory per GPU held back for activations, CUDA graphs and the runtime (vLLM profiles this at
#: start-up; a few GiB is what it typically finds for 8k-token batches).
ACTIVATION_RESERVE_BYTES_PER_GPU = 2 * 2**30


def weight_bytes(model: ModelSpec, dtype: str) -> float:
    """Bytes of all weights (every expert of an MoE) at the given quantization."""
    return model.parameters * BYTES_PER_ELEMENT[dtype]


def kv_bytes_per_token(model: ModelSpec, kv_dtype: str) -> float:
    """KV-cache bytes one token occupies across all layers.

    Standard attention caches K and V: 2 x kv_heads x head_dim elements per layer; multi-head
    latent attention caches ``kv_latent_dim`` elements per layer.
    """
    per_layer = model.kv_latent_dim or 2 * model.kv_heads * model.attention_head_dim
    return model.layers * per_layer * BYTES_PER_ELEMENT[kv_dtype]


def usable_bytes(gpu: GpuSpec, tensor_parallel: int, gpu_memory_utilization: float) -> float:
    """Memory of a replica that the server may use for weights + KV cache."""
    per_gpu = gpu.hbm_bytes * gpu_memory_utilization - ACTIVATION_RESERVE_BYTES_PER_GPU
    return tensor_parallel * max(per_gpu, 0.0)


def kv_cache_bytes(
    model: ModelSpec, gpu: GpuSpec, dtype: str, tensor_parallel: int, gpu_memory_utilization: float
) -> float:
    """Bytes left for the KV cache after weights (negative when the weights do not fit)."""
    usable = usable_bytes(gpu, tensor_parallel, gpu_memory_utilization)
    return usable - weight_bytes(model, dtype)


def kv_cache_blocks(
    model: ModelSpec,
    gpu: GpuSpec,
    dtype: str,
    kv_dtype: str,
    tensor_parallel: int,
    gpu_memory_utilization: float,
    block_tokens: int,
) -> int:
    """Whole KV blocks of ``block_tokens`` tokens a replica holds (0 if weights do not fit)."""
    free = kv_cache_bytes(model, gpu, dtype, tensor_parallel, gpu_memory_utilization)
    per_block = kv_bytes_per_token(model, kv_dtype) * block_tokens
    return max(int(free // per_block), 0)
