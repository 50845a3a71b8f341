"""Serving-engine presets: the scheduler and memory defaults that differ between engines.

A deployment's ``engine:`` (vllm, sglang, tensorrt-llm) picks one; its own fields
(``max_batch_size``, ``max_batched_tokens``, ``gpu_memory_utilization``, ``kv_block_tokens``)
override the preset. What differs, and where each default comes from:

- **Admission.** vLLM and SGLang admit a request when its prompt fits and pre-empt (recompute)
  the newest request when decoding runs out of KV blocks (vLLM docs "Preemption"; SGLang
  "retraction"). TensorRT-LLM's default capacity scheduler is ``GUARANTEED_NO_EVICT``: a
  request is admitted only when the blocks for its prompt *and* its whole output are free, so
  nothing is ever evicted (TensorRT-LLM docs, "Capacity scheduler policy";
  ``CapacitySchedulerPolicy`` default in ``executorConfig``). Simplification: the simulator
  reserves for the request's own output length, which is what benchmarks with a fixed OSL do;
  a server reserving for a larger ``max_tokens`` admits fewer.
- **Memory fraction.** vLLM's ``gpu_memory_utilization`` (0.9) is a share of the whole GPU for
  weights + activations + KV; SGLang's ``mem_fraction_static`` (~0.88 on 80 GB GPUs) likewise
  covers weights + KV; TensorRT-LLM's ``kv_cache_free_gpu_mem_fraction`` (0.9) is a share of the
  memory *left after* the weights and activations are loaded.
- **Token budget / batch cap.** vLLM V1 ``max_num_batched_tokens`` 8192 and ``max_num_seqs``
  256 on the OpenAI server (vLLM engine args, V1 defaults by usage context); SGLang
  ``chunked_prefill_size`` 8192 and ``max_running_requests`` from memory; TensorRT-LLM
  ``max_num_tokens`` 8192, ``max_batch_size`` 2048 (trtllm-serve / build defaults).
- **KV block size.** vLLM 16 tokens, SGLang 1 (token-level radix cache, page size 1),
  TensorRT-LLM ``tokens_per_block`` 32.
- **Host overhead per iteration** (``iteration_overhead_scale``): TensorRT-LLM's C++ executor
  with CUDA graphs and overlap scheduling spends less host time per step than vLLM's Python
  scheduler; SGLang's overlap scheduler hides most of it (SGLang v0.4 blog: "zero-overhead batch
  scheduler"). The profile's ``iteration_overhead_s`` is vLLM's; the scale multiplies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Admission = Literal["preempt", "reserve"]
EngineName = Literal["vllm", "sglang", "tensorrt-llm"]


@dataclass(frozen=True)
class EnginePreset:
    """Defaults one serving engine applies to a replica."""

    name: str
    admission: Admission
    max_batch_size: int
    max_batched_tokens: int
    gpu_memory_fraction: float
    #: True: the fraction is of memory left after weights (TensorRT-LLM); False: of the whole GPU
    memory_fraction_of_free: bool
    kv_block_tokens: int
    #: multiplies the profile's per-iteration and per-sequence host overheads
    iteration_overhead_scale: float


ENGINE_PRESETS: dict[str, EnginePreset] = {
    "vllm": EnginePreset("vllm", "preempt", 256, 8192, 0.9, False, 16, 1.0),
    "sglang": EnginePreset("sglang", "preempt", 1024, 8192, 0.88, False, 1, 0.5),
    "tensorrt-llm": EnginePreset("tensorrt-llm", "reserve", 2048, 8192, 0.9, True, 32, 0.5),
}


def engine_preset_named(name: str) -> EnginePreset:
    """The preset of engine ``name``; KeyError listing the known ones."""
    try:
        return ENGINE_PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r} (known: {', '.join(ENGINE_PRESETS)})") from None
