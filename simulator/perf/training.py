"""Training step time from the job's layout: the MFU model.

A data-, tensor-, pipeline-, context- and expert-parallel job (Megatron-LM's 5-D layout;
Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using
Megatron-LM"; Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models") runs one optimizer step of ``global_batch_tokens`` tokens. Every GPU does the same share
of the work, so the step time of one GPU is the job's. It is the sum of

- **compute**: the step's matmul FLOPs / (GPUs x dtype peak x GEMM efficiency at the micro-batch's
  rows), attention FLOPs / (GPUs x bf16 peak x attention efficiency), the minimum memory traffic
  of the element-wise ops (norms, rotary, residual adds, gated activation, the fp32 logits) at the
  achieved bandwidth, and the Adam update of the GPU's optimizer shard; all of it divided by the
  profile's ``training_kernel_efficiency`` (what real training kernels lose against this
  roofline: fp32 gradient accumulation, launch gaps, stragglers; calibrated on published runs);
- **recompute**: full activation recompute runs every forward pass twice (+1/3 of the layer
  math); selective recompute (the default) recomputes only the attention core, which
  FlashAttention's backward does anyway, so it adds nothing here;
- **tensor-parallel collectives**: 4 all-reduces (or the equivalent reduce-scatter + all-gather
  of sequence parallelism) per layer and micro-batch, 6 with full recompute, of the micro-batch's
  activations, over NVLink when the TP group is inside a node, else the inter-node network;
  exposed (not overlapped: Megatron's default without ``--tp-comm-overlap``);
- **context-parallel** ring attention: K and V passed CP-1 times per layer, overlapped with the
  attention math (only what exceeds it shows);
- **expert-parallel** all-to-all: dispatch and combine of every token's ``experts_per_token``
  copies, forward and backward, for the share of experts on other GPUs; exposed, unless the job
  overlaps it with compute (DeepSeek-V3's DualPipe);
- **pipeline**: the 1F1B bubble, (PP - 1) / (v x m) of the step's work for m micro-batches
  and v virtual stages per GPU (Narayanan et al. 2021, eq. for the interleaved schedule; v = 1
  when m < PP, where interleaving cannot run), plus the point-to-point activation sends (exposed);
- **data-parallel** bf16 gradient reduce-scatter and weight all-gather of the GPU's
  parameters (ring: (DP-1)/DP of the bytes each) once per step with ZeRO-1; FSDP gathers the
  weights for every micro-batch's forward and backward pass and reduce-scatters every
  micro-batch's gradients (ZeRO-2: every micro-batch's gradients, the weights once); overlapped with the step's compute (Megatron's ``--overlap-grad-reduce
  --overlap-param-gather``): what exceeds the compute shows, and while it overlaps it takes
  :data:`OVERLAP_SM_SHARE` of the SMs from the math (NCCL kernels run on SMs).

MFU is then model FLOPs (:func:`simulator.perf.roofline.training_flops`) / (GPUs x peak x step
time), the same definition as the Llama 3 paper's Table 4 and Megatron-LM's tables.

Memory per GPU (mixed-precision Adam; Rajbhandari et al. 2020, "ZeRO"): with ``sharding:
optimizer`` (ZeRO-1, Megatron's distributed optimizer) 2 bytes of bf16 weights + 2 of bf16
gradients per parameter held, plus 12 bytes (fp32 master weight and two moments) per parameter
sharded over the data-parallel group; with ``sharding: gradients`` (ZeRO-2; Llama 3's FSDP
that keeps the weights after the forward pass) the gradients sharded too; with ``sharding:
full`` (FSDP / ZeRO-3) all 16 sharded;
activations per layer and micro-batch, split over the TP ranks by sequence parallelism, of
``2 (4 h + 2 q + 2 kv + 3 f)`` bytes per token for a Llama-style layer (bf16: the inputs and
outputs of both norms, Q of width q, K and V of width kv each and the attention output kept by
FlashAttention, the gate and up projections and their product; no dropout masks: Korthikanti et
al. 2022's per-layer count redone for SwiGLU and FlashAttention), 2 h with full recompute (the
layer input) plus one layer's worth, held for ``PP`` micro-batches on the first stage (1F1B) or one micro-batch plus
the fp32 logits on the last; :data:`MEMORY_RESERVE_BYTES` held back for the CUDA context and NCCL.

Everything is a pure function of numbers; the layout search (:func:`best_layout`) evaluates a
small grid of layouts and keeps the fastest that fits.

Calibration (``training_kernel_efficiency`` and ``training_layer_overhead_s`` in the bundled
profiles) and its error against published runs: ``calibration/profiles/h100-sxm.yaml`` and
``tests/validation/test_training_published.py``. Simplifications, stated: every GPU does the
same work (no stragglers, no load imbalance of MoE routing: experts are assumed balanced);
tensor-parallel collectives are not overlapped; interleaving's extra activation memory is left
out; the expert all-to-all is costed on the inter-node link whenever the EP group spans nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import Literal

from simulator.catalog import Dtype, GpuSpec, ModelSpec
from simulator.perf.profile import EfficiencyParameters
from simulator.perf.roofline import (
    expert_parameters,
    gemm_efficiency,
    link_bytes_per_s,
    matmul_parameters,
    ring_allreduce_share,
)

Recompute = Literal["selective", "full"]
Sharding = Literal["optimizer", "gradients", "full"]

#: Bytes per parameter held on the GPU besides the optimizer shard: bf16 weights + bf16 gradients
#: (ZeRO's 2 + 2 + 12 accounting; Megatron-LM accumulates and reduces gradients in the weights'
#: dtype unless --accumulate-allreduce-grads-in-fp32 is set. Llama 3 used fp32 (Dubey et al.
#: 2024, Sec. 3.3.2): 2 more bytes per parameter held and twice the reduce-scatter traffic.)
WEIGHT_BYTES = 2.0
GRADIENT_BYTES = 2.0
WEIGHT_AND_GRADIENT_BYTES = WEIGHT_BYTES + GRADIENT_BYTES
#: Adam in mixed precision: fp32 master weights + first and second moments (ZeRO paper, K = 12).
OPTIMIZER_BYTES = 12.0
#: Bytes of a checkpoint per parameter: bf16 weights + the fp32 optimizer state (ZeRO's 2 + 12).
CHECKPOINT_BYTES_PER_PARAMETER = 14.0
#: Adam's update reads and writes the fp32 master weight and moments, reads the gradient and
#: writes the bf16 weight: about 30 bytes of memory traffic per parameter of the shard.
OPTIMIZER_TRAFFIC_BYTES = 30.0
#: HBM held back for the CUDA context, NCCL buffers and the caching allocator's slack (the same
#: few GiB the serving model keeps back; engineering estimate).
MEMORY_RESERVE_BYTES = 2 * 2**30
#: With full recompute only the layer input (bf16) is kept per layer.
FULL_RECOMPUTE_BYTES_PER_HIDDEN = 2.0

#: Share of the SMs an overlapped all-to-all takes from the math: DeepSeek-V3 report Sec. 3.2.2
#: dedicates 20 of the H800's 132 SMs to communication.
OVERLAP_SM_SHARE = 20 / 132

#: Default global batch: DeepSeek LLM's compute-optimal batch size (Bi et al. 2024, "DeepSeek
#: LLM: Scaling Open-Source Language Models with Longtermism", Sec. 3.1, fitted on their runs):
#: B_opt = 0.2920 x C^0.3271 tokens for a training budget of C FLOPs.
BATCH_SCALING_COEFFICIENT = 0.2920
BATCH_SCALING_EXPONENT = 0.3271


@dataclass(frozen=True)
class Layout:
    """How a job splits over its GPUs. ``data_parallel`` = GPUs / (TP x PP x CP)."""

    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    context_parallel: int = 1
    expert_parallel: int = 1
    data_parallel: int = 1
    micro_batch_sequences: int = 1
    virtual_stages: int = 1
    recompute: Recompute = "selective"
    sharding: Sharding = "optimizer"

    @property
    def model_parallel(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.context_parallel

    @property
    def gpus(self) -> int:
        return self.model_parallel * self.data_parallel

    def describe(self) -> str:
        parts = [f"TP{self.tensor_parallel}", f"PP{self.pipeline_parallel}"]
        if self.virtual_stages > 1:
            parts.append(f"VP{self.virtual_stages}")
        if self.context_parallel > 1:
            parts.append(f"CP{self.context_parallel}")
        if self.expert_parallel > 1:
            parts.append(f"EP{self.expert_parallel}")
        parts.append(f"DP{self.data_parallel}")
        sharded = {"optimizer": "ZeRO-1", "gradients": "ZeRO-2", "full": "FSDP"}[self.sharding]
        return (" ".join(parts) + f" {sharded}, micro-batch {self.micro_batch_sequences}, "
                f"{self.recompute} recompute")  # fmt: skip


@dataclass(frozen=True)
class TrainingJobShape:
    """What the step model needs of a job besides its layout."""

    model: ModelSpec
    gpu: GpuSpec
    dtype: Dtype
    gpus: int
    sequence_length_tokens: int
    global_batch_tokens: float  # wanted; the step runs whole micro-batches (see StepTime)
    method: Literal["full", "lora"] = "full"
    lora_parameters: float = 0.0  # trainable adapter parameters (method lora)
    overlap_expert_communication: bool = False


@dataclass(frozen=True)
class StepTime:
    """One optimizer step of a job, seconds per GPU, and what it is made of."""

    layout: Layout
    tokens_per_step: float  # whole micro-batches: m x micro-batch x sequence x DP
    micro_batches: int  # per data-parallel rank and step
    compute_s: float
    recompute_s: float
    tensor_parallel_s: float
    context_parallel_s: float
    expert_parallel_s: float
    pipeline_bubble_s: float
    pipeline_send_s: float
    data_parallel_s: float
    memory_bytes_per_gpu: float
    memory_limit_bytes: float
    model_flops_per_step: float
    peak_flops_per_s: float

    @property
    def step_s(self) -> float:
        return (
            self.compute_s + self.recompute_s + self.tensor_parallel_s + self.context_parallel_s
            + self.expert_parallel_s + self.pipeline_bubble_s + self.pipeline_send_s
            + self.data_parallel_s
        )  # fmt: skip

    @property
    def fits(self) -> bool:
        return self.memory_bytes_per_gpu <= self.memory_limit_bytes

    @property
    def mfu(self) -> float:
        """Model FLOPs per second achieved / (GPUs x peak)."""
        return self.model_flops_per_step / (self.layout.gpus * self.peak_flops_per_s * self.step_s)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_s

    def shares(self) -> dict[str, float]:
        """Each term's share of the step time (they sum to 1)."""
        terms = {
            "compute": self.compute_s, "recompute": self.recompute_s,
            "tensor_parallel": self.tensor_parallel_s, "context_parallel": self.context_parallel_s,
            "expert_parallel": self.expert_parallel_s, "pipeline_bubble": self.pipeline_bubble_s,
            "pipeline_send": self.pipeline_send_s, "data_parallel": self.data_parallel_s,
        }  # fmt: skip
        return {name: value / self.step_s for name, value in terms.items()}


def default_global_batch_tokens(model_flops: float) -> float:
    """DeepSeek LLM's compute-optimal batch size for a budget of ``model_flops`` FLOPs."""
    return BATCH_SCALING_COEFFICIENT * model_flops**BATCH_SCALING_EXPONENT


def _micro_batches(shape: TrainingJobShape, layout: Layout) -> int:
    sequences = shape.global_batch_tokens / shape.sequence_length_tokens
    per_rank = sequences / (layout.data_parallel * layout.micro_batch_sequences)
    return max(int(per_rank + 1e-9), 1)


def activation_bytes_per_token_layer(model: ModelSpec) -> float:
    """Bytes one token's activations of one layer keep for the backward pass (see module doc)."""
    q_width = model.heads * model.attention_head_dim
    kv_width = model.kv_heads * model.attention_head_dim
    ffn = model.ffn_hidden_size * (model.experts_per_token or 1)
    return 2.0 * (4 * model.hidden_size + 2 * q_width + 2 * kv_width + 3 * ffn)


def _all_to_all_s_per_token_layer(
    shape: TrainingJobShape, layout: Layout, eff: EfficiencyParameters
) -> float:
    """Seconds of expert-parallel dispatch + combine per token and MoE layer, fwd and bwd.

    A token goes to ``k`` experts spread over the EP group. Over the inter-node network it is
    sent once per remote node that holds one of its experts and forwarded inside the node over
    NVLink (DeepEP; DeepSeek-V3 report Sec. 3.2.2): for experts placed uniformly on n nodes a
    token reaches (n - 1) (1 - (1 - 1/n)^k) remote nodes on average. Dispatch carries the
    activation (1 byte in fp8 jobs, DeepSeek-V3 Sec. 3.3.2; else 2), combine the bf16 output,
    and the backward pass sends both gradients in bf16; full recompute repeats the forward.
    """
    model, gpu = shape.model, shape.gpu
    k = model.experts_per_token or 1
    ep, span = layout.expert_parallel, layout.tensor_parallel * layout.context_parallel
    dispatch = 1.0 if shape.dtype == "fp8" else 2.0
    forward, backward = dispatch + 2.0, 4.0
    per_copy = model.hidden_size * (forward * (2 if layout.recompute == "full" else 1) + backward)
    gpus_per_node_in_group = max(min(ep, gpu.scale_up_domain // span), 1)
    nodes = max(ep // gpus_per_node_in_group, 1)
    remote_nodes = (nodes - 1) * (1 - (1 - 1 / nodes) ** k) if nodes > 1 else 0.0
    local_copies = k * (gpus_per_node_in_group - 1) / ep
    internode = remote_nodes * per_copy / link_bytes_per_s(gpu, gpu.scale_up_domain + 1, eff)
    intranode = local_copies * per_copy / link_bytes_per_s(gpu, 1, eff)
    return internode + intranode


def parameters_per_gpu(model: ModelSpec, layout: Layout) -> tuple[float, float]:
    """(held, shard): the model's parameters one GPU holds, and its data-parallel shard of them.

    Dense parameters split over TP x PP, experts over EP x PP; shards span the data-parallel
    group: DP x CP ranks for dense parameters, the expert-data-parallel group (DP x CP / EP
    ranks) for expert ones.
    """
    tp, pp, cp, dp, ep = (layout.tensor_parallel, layout.pipeline_parallel, layout.context_parallel,
                          layout.data_parallel, layout.expert_parallel)  # fmt: skip
    experts = expert_parameters(model)
    dense_held, experts_held = (model.parameters - experts) / (tp * pp), experts / (ep * pp)
    return dense_held + experts_held, dense_held / (dp * cp) + experts_held / max(dp * cp / ep, 1)


def memory_bytes_per_gpu(shape: TrainingJobShape, layout: Layout) -> float:
    """Weights, gradients, optimizer shard, activations and logits on the busiest GPU."""
    model = shape.model
    tp, pp, cp = layout.tensor_parallel, layout.pipeline_parallel, layout.context_parallel
    held, shard = parameters_per_gpu(model, layout)
    if shape.method == "lora":
        trainable = shape.lora_parameters / (tp * pp)
        frozen = shard if layout.sharding == "full" else held
        state = frozen * 2.0 + trainable * (WEIGHT_AND_GRADIENT_BYTES + OPTIMIZER_BYTES)
    elif layout.sharding == "full":  # FSDP / ZeRO-3: weights and gradients sharded too
        state = shard * (WEIGHT_AND_GRADIENT_BYTES + OPTIMIZER_BYTES)
    elif layout.sharding == "gradients":  # ZeRO-2: weights held, gradients sharded
        state = held * WEIGHT_BYTES + shard * (GRADIENT_BYTES + OPTIMIZER_BYTES)
    else:
        state = held * WEIGHT_AND_GRADIENT_BYTES + shard * OPTIMIZER_BYTES
    tokens = layout.micro_batch_sequences * shape.sequence_length_tokens / cp
    per_layer_token = activation_bytes_per_token_layer(model)
    layers_per_stage = math.ceil(model.layers / pp)
    working = 0.0  # full recompute: one layer's activations, rebuilt during its backward pass
    if layout.recompute == "full":
        kept = FULL_RECOMPUTE_BYTES_PER_HIDDEN * model.hidden_size * layers_per_stage
        working = per_layer_token * tokens / tp
    else:
        kept = per_layer_token * layers_per_stage
    # 1F1B: the first stage holds the activations of PP micro-batches, the last stage one
    # micro-batch plus its fp32 logits (Narayanan et al. 2021; interleaving's extra in-flight
    # share is left out: published layouts such as Llama 3 405B's TP8 PP16 at 8K would not fit).
    in_flight = min(pp, _micro_batches(shape, layout))
    first_stage = kept * tokens / tp * in_flight
    logits = tokens * model.vocab_size * 4.0 / tp
    last_stage = kept * tokens / tp + logits
    return state + max(first_stage, last_stage) + working


def step_time(shape: TrainingJobShape, layout: Layout, eff: EfficiencyParameters) -> StepTime:
    """Time of one optimizer step with ``layout`` (see the module docstring)."""
    model, gpu = shape.model, shape.gpu
    tp, pp, cp, ep, dp = (layout.tensor_parallel, layout.pipeline_parallel,
                          layout.context_parallel, layout.expert_parallel, layout.data_parallel)  # fmt: skip
    m = _micro_batches(shape, layout)
    seq = shape.sequence_length_tokens
    tokens = m * layout.micro_batch_sequences * seq * dp
    tokens_per_gpu = tokens / layout.gpus

    compute_dtype = gpu.compute_dtype_for(shape.dtype)
    peak = gpu.peak_flops_per_s(compute_dtype)
    bf16_peak = gpu.peak_flops_per_s("bf16")
    width = model.heads * model.attention_head_dim
    matmul_params = matmul_parameters(model)
    if shape.method == "lora":
        matmul_flops_per_token = 4 * matmul_params + 6 * shape.lora_parameters
    else:
        matmul_flops_per_token = 6 * matmul_params
    attention_flops_per_token = 6 * model.layers * width * seq
    model_flops = (matmul_flops_per_token + attention_flops_per_token) * tokens

    rows = layout.micro_batch_sequences * seq / cp
    if model.is_moe:  # tokens each expert's GEMM sees: from every EP rank, k of E experts
        rows = rows * ep * (model.experts_per_token or 1) / (model.experts or 1)
    gemm_eff = float(gemm_efficiency(rows, eff)) * eff.gemm_scale(compute_dtype)
    matmul_s = matmul_flops_per_token / (peak * gemm_eff)
    attention_s = attention_flops_per_token / (bf16_peak * eff.attention_efficiency)
    ffn = model.ffn_hidden_size * (model.experts_per_token or 1)
    # bf16 activations of every layer's element-wise ops (forward, backward ~2x), and the fp32
    # logits (written, softmax-read, gradient-written) of the LM head
    elementwise_bytes = model.layers * 3 * (12 * model.hidden_size + 3 * ffn) * 2.0 + 3 * model.vocab_size * 4.0
    bandwidth = gpu.hbm_tb_per_s * 1e12 * eff.memory_bandwidth_efficiency
    elementwise_s = elementwise_bytes / bandwidth
    per_token_s = (matmul_s + attention_s + elementwise_s) / eff.training_kernel_efficiency
    held, shard = parameters_per_gpu(model, layout)
    if shape.method == "lora":  # Adam updates the adapters only
        shard = shape.lora_parameters / (tp * pp) / (dp * cp)
    optimizer_s = shard * OPTIMIZER_TRAFFIC_BYTES / bandwidth
    launch_s = m * (model.layers / pp) * eff.training_layer_overhead_s
    compute_s = per_token_s * tokens_per_gpu + optimizer_s + launch_s
    recompute_s = 0.0
    if layout.recompute == "full":
        recompute_s = per_token_s * tokens_per_gpu / 3  # one more forward: 2N of 6N per token

    micro_tokens = layout.micro_batch_sequences * seq / cp
    layers_per_gpu = model.layers / pp
    collectives = 6 if layout.recompute == "full" else 4
    tp_s = 0.0
    if tp > 1:
        buffer = micro_tokens * model.hidden_size * 2.0
        per_collective = buffer * ring_allreduce_share(tp) / link_bytes_per_s(gpu, tp, eff) + eff.allreduce_latency_s
        tp_s = m * layers_per_gpu * collectives * per_collective
    cp_s = 0.0
    if cp > 1:
        kv_width = model.kv_latent_dim or 2 * model.kv_heads * model.attention_head_dim
        kv_bytes = micro_tokens * kv_width * 2.0 / tp
        passes = 3 * (cp - 1)  # forward K, V; backward K, V and their gradients
        ring = m * layers_per_gpu * passes * kv_bytes / link_bytes_per_s(gpu, tp * cp, eff)
        attention_time = attention_s * tokens_per_gpu / eff.training_kernel_efficiency
        cp_s = max(ring - attention_time, 0.0)
    ep_s = 0.0
    if ep > 1 and model.is_moe:
        ep_s = m * layers_per_gpu * micro_tokens / tp * _all_to_all_s_per_token_layer(shape, layout, eff)
        if shape.overlap_expert_communication:
            # DualPipe-style overlap: the all-to-all runs beside the math on SMs taken from it
            # (DeepSeek-V3 Sec. 3.2.2: 20 of the H800's 132 SMs), so the math slows by that
            # share and only the all-to-all beyond it shows.
            slowed = compute_s / (1 - OVERLAP_SM_SHARE)
            ep_s = max(ep_s - slowed, 0.0) + slowed - compute_s
    bubble_s = send_s = 0.0
    if pp > 1:
        # Interleaving needs at least PP micro-batches in flight (Megatron requires m % PP == 0);
        # with fewer, the schedule is plain 1F1B/GPipe: m + PP - 1 micro-batch slots.
        v = layout.virtual_stages if m >= pp else 1
        per_micro_batch = (compute_s + recompute_s + tp_s + ep_s) / m
        bubble_s = (pp - 1) / v * per_micro_batch
        activation = micro_tokens * model.hidden_size * 2.0 / tp
        sends = m * v * 2  # activations forward, their gradients backward
        send_s = sends * activation / link_bytes_per_s(gpu, layout.gpus + 1, eff)
    dp_s = 0.0
    group = dp * cp
    if group > 1:
        ring = (group - 1) / group
        trainable = shape.lora_parameters / (tp * pp) if shape.method == "lora" else held
        if layout.sharding == "full":
            # FSDP / ZeRO-3 gathers the weights for every micro-batch's forward and
            # backward pass and reduce-scatters its gradients; a LoRA job gathers its
            # frozen base too.
            gathered = held if shape.method == "lora" else trainable
            volume = m * (gathered * 2 * WEIGHT_BYTES + trainable * GRADIENT_BYTES) * ring
        elif layout.sharding == "gradients":
            # ZeRO-2 (Llama 3's FSDP without resharding the weights after the forward pass):
            # every micro-batch's gradients reduce-scattered, the weights gathered once
            volume = (m * trainable * GRADIENT_BYTES + trainable * WEIGHT_BYTES) * ring
        else:
            # ZeRO-1: one gradient reduce-scatter and one weight all-gather per step
            volume = trainable * (GRADIENT_BYTES + WEIGHT_BYTES) * ring
        dp_time = volume / link_bytes_per_s(gpu, layout.gpus, eff)
        # Overlapped with the step's math, on SMs it takes from it while it runs.
        dp_s = max(dp_time - compute_s, 0.0) + min(dp_time, compute_s) * OVERLAP_SM_SHARE
    return StepTime(
        layout=layout,
        tokens_per_step=tokens,
        micro_batches=m,
        compute_s=compute_s,
        recompute_s=recompute_s,
        tensor_parallel_s=tp_s,
        context_parallel_s=cp_s,
        expert_parallel_s=ep_s,
        pipeline_bubble_s=bubble_s,
        pipeline_send_s=send_s,
        data_parallel_s=dp_s,
        memory_bytes_per_gpu=memory_bytes_per_gpu(shape, layout),
        memory_limit_bytes=gpu.hbm_bytes - MEMORY_RESERVE_BYTES,
        model_flops_per_step=model_flops,
        peak_flops_per_s=peak,
    )


@dataclass(frozen=True)
class LayoutRequest:
    """The parts of a layout a job fixes (None: the search chooses)."""

    tensor_parallel: int | None = None
    pipeline_parallel: int | None = None
    context_parallel: int | None = None
    expert_parallel: int | None = None
    virtual_stages: int | None = None
    micro_batch_sequences: int = 1
    recompute: Recompute | None = None
    sharding: Sharding | None = None


#: The layout rule splits sequences over context-parallel ranks only into shards of at least
#: this many tokens (Llama 3 trained 8K sequences with CP1 and 128K ones with CP16: Dubey et al.
#: 2024, Table 4).
CONTEXT_SHARD_MIN_TOKENS = 8192


def _powers_of_two(limit: int) -> list[int]:
    return [2**i for i in range(int(math.log2(max(limit, 1))) + 1)]


def default_virtual_stages(layers: int, pipeline_parallel: int) -> int:
    """Interleaved 1F1B with one layer per virtual stage (1 without pipelining).

    NVIDIA's recommended H100 layouts interleave to 1-2 layers per virtual stage (NeMo
    ``scripts/performance/recommended_model_configs/model_configs_h100.csv``: Llama 2 70B PP4
    VP20, Nemotron-4 340B PP8 VP12, GPT-3 175B PP8 VP6).
    """
    if pipeline_parallel == 1:
        return 1
    return max(layers // pipeline_parallel, 1)


def request_problem(model: ModelSpec, request: LayoutRequest) -> str | None:
    """Why a requested degree cannot run this model (None when it can)."""
    tp, pp, ep, v = request.tensor_parallel, request.pipeline_parallel, request.expert_parallel, request.virtual_stages
    if tp and (model.heads % tp or model.kv_heads % tp):
        return f"tensor_parallel {tp} must divide the {model.heads} attention heads and {model.kv_heads} KV heads"
    if pp and pp > model.layers:
        return f"pipeline_parallel {pp} exceeds the model's {model.layers} layers"
    if v and v > model.layers // (pp or 1):
        return f"virtual_pipeline_stages {v} exceeds the {model.layers // (pp or 1)} layers of a pipeline stage"
    if ep and ep > 1 and not model.is_moe:
        return f"expert_parallel {ep} on a dense model (it has no experts)"
    if ep and model.is_moe and (model.experts or 1) % ep:
        return f"expert_parallel {ep} must divide the model's {model.experts} experts"
    return None


def candidate_layouts(shape: TrainingJobShape, request: LayoutRequest) -> list[Layout]:
    """Layouts the search considers: powers of two that divide the job, within its request."""
    model, gpus = shape.model, shape.gpus
    tps = [request.tensor_parallel] if request.tensor_parallel else [
        t for t in _powers_of_two(shape.gpu.scale_up_domain) if model.heads % t == 0 and model.kv_heads % t == 0
    ]
    pps = [request.pipeline_parallel] if request.pipeline_parallel else [
        p for p in _powers_of_two(min(model.layers, 64))
    ]
    cps = [request.context_parallel] if request.context_parallel else [
        c for c in _powers_of_two(32) if shape.sequence_length_tokens // c >= CONTEXT_SHARD_MIN_TOKENS or c == 1
    ]
    recomputes: list[Recompute] = [request.recompute] if request.recompute else ["selective", "full"]
    shardings: list[Sharding] = [request.sharding] if request.sharding else ["optimizer", "gradients", "full"]
    out = []
    for tp, pp, cp, recompute, sharding in product(tps, pps, cps, recomputes, shardings):
        if gpus % (tp * pp * cp):
            continue
        dp = gpus // (tp * pp * cp)
        eps = [1]
        if model.is_moe:
            eps = [request.expert_parallel] if request.expert_parallel else [
                e for e in _powers_of_two(model.experts or 1) if (dp * cp) % e == 0 and (model.experts or 1) % e == 0
            ]
        for ep in eps:
            if (dp * cp) % ep:
                continue
            v = request.virtual_stages or default_virtual_stages(model.layers, pp)
            out.append(Layout(tp, pp, cp, ep, dp, request.micro_batch_sequences, v, recompute, sharding))
    return out


class LayoutError(ValueError):
    """No layout of the job fits in GPU memory (or the requested one does not divide it)."""


def best_layout(shape: TrainingJobShape, request: LayoutRequest, eff: EfficiencyParameters) -> StepTime:
    """The fastest layout that fits (the rule when a job does not fix its layout).

    Raises :class:`LayoutError` saying by how much the least-over layout misses when none fits.
    """
    problem = request_problem(shape.model, request)
    if problem:
        raise LayoutError(problem)
    candidates = candidate_layouts(shape, request)
    if not candidates:
        raise LayoutError(
            f"no layout with the requested degrees divides {shape.gpus} GPUs "
            "(tensor x pipeline x context parallel must divide the GPUs, expert parallel the rest)"
        )
    steps = [step_time(shape, layout, eff) for layout in candidates]
    fitting = [s for s in steps if s.fits]
    if fitting:
        # Fastest per token (steps of different layouts run whole micro-batches, so their sizes
        # differ); ties to the least model parallelism.
        return min(fitting, key=lambda s: (s.step_s / s.tokens_per_step, s.layout.model_parallel))
    closest = min(steps, key=lambda s: s.memory_bytes_per_gpu)
    gib = 2**30
    remedies = ["more GPUs"]
    if closest.layout.recompute != "full":
        remedies.append("activation_recompute: full")
    if closest.layout.sharding != "full" and closest.layout.data_parallel > 1:
        remedies.append("data_parallel_sharding: full")
    if request.tensor_parallel or request.pipeline_parallel:
        remedies.append("more tensor or pipeline parallelism")
    raise LayoutError(
        f"does not fit in GPU memory: the leanest layout tried ({closest.layout.describe()}) needs "
        f"{closest.memory_bytes_per_gpu / gib:,.1f} GiB per GPU, {shape.gpu.name} offers "
        f"{closest.memory_limit_bytes / gib:,.1f} GiB ({shape.gpu.hbm_gib:g} GiB less "
        f"{MEMORY_RESERVE_BYTES / gib:g} GiB reserved): "
        f"{(closest.memory_bytes_per_gpu - closest.memory_limit_bytes) / gib:,.1f} GiB over; "
        f"try {', '.join(remedies[:-1]) + ' or ' + remedies[-1] if len(remedies) > 1 else remedies[0]}"
    )

