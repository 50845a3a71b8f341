"""Serving-engine presets: the scheduler and memory defaults that differ between engines.

A deployment's ``engine:`` (vllm, sglang, tensorrt-llm) picks one; its own fields
(``max_batch_size``, ``max_batched_tokens``, ``gpu_memory_utilization``, ``kv_block_tokens``)
override the preset. What differs, and where each default comes from:

- **Admission.** vLLM pre-empts (recompute; V1 has no swap) the newest running request when
  decoding runs out of KV blocks (docs.vllm.ai v0.9-v0.10 "Preemption"); SGLang admits against
  a decaying ``new_token_ratio`` reservation and retracts when the pool overflows (modelled as
  pre-emption; its reservation is a simplification left out). TensorRT-LLM's capacity
  scheduler defaults to ``GUARANTEED_NO_EVICT``: a request is admitted only when the blocks for
  its prompt *and* its whole output are free, so nothing is evicted (performance-tuning guide
  "useful runtime flags"; hard-coded in ``trtllm-serve``; the ``trtllm-bench --scheduler_policy``
  default). Simplification: the simulator reserves for the request's own output length, which
  is what benchmarks with a fixed OSL do; a server reserving for a larger ``max_tokens`` admits
  fewer.
- **Memory fraction.** vLLM's ``gpu_memory_utilization`` (0.9) is a share of the whole GPU for
  weights + activations + KV; SGLang's ``mem_fraction_static`` (0.88 at TP1, down to 0.81 at TP8
  in 0.4's server_args) likewise covers weights + KV; TensorRT-LLM's
  ``kv_cache_free_gpu_mem_fraction`` (0.9) is a share of the memory *left after* the weights and
  buffers ("Free GPU memory fraction reserved for KV Cache, after allocating model weights and
  buffers", trtllm-serve --help).
- **Token budget / batch cap.** vLLM: ``max_num_batched_tokens`` 8192 and ``max_num_seqs`` 256
  (the V0 defaults and V1's on GPUs under 70 GiB or A100; V1 0.8.3+ uses 1024 sequences on
  larger GPUs, PR #16158, which the preset does not follow so that scenarios keep their
  meaning). SGLang: ``chunked_prefill_size`` 8192 (GPUs of 25-160 GB), ``max_running_requests``
  from the KV pool, in practice 2048-4096. TensorRT-LLM: ``max_num_tokens`` 8192 and
  ``max_batch_size`` 2048 (BuildConfig defaults used by trtllm-serve).
- **KV block size.** vLLM 16 tokens (``DEFAULT_BLOCK_SIZE``), SGLang 1 (``page_size``),
  TensorRT-LLM ``tokens_per_block`` 32 (LLM API ``KvCacheConfig``).
- **Host overhead per iteration** (``iteration_overhead_scale``): TensorRT-LLM's C++ executor
  with CUDA graphs and its overlap scheduler, and SGLang's overlap ("zero-overhead") scheduler
  (SGLang v0.4 blog, Dec 2024), hide more host time than vLLM; the profile's overheads are
  vLLM's and the scale multiplies them (an estimate: 0.5).
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
    "sglang": EnginePreset("sglang", "preempt", 2048, 8192, 0.88, False, 1, 0.5),
    "tensorrt-llm": EnginePreset("tensorrt-llm", "reserve", 2048, 8192, 0.9, True, 32, 0.5),
}


def engine_preset_named(name: str) -> EnginePreset:
    """The preset of engine ``name``; KeyError listing the known ones."""
    try:
        return ENGINE_PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r} (known: {', '.join(ENGINE_PRESETS)})") from None
