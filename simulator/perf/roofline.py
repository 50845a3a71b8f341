"""Roofline cost model of one serving iteration and of training.

An iteration of a continuously-batched server runs the prefill chunks it admitted and one decode
token for every running request. Its time on a tensor-parallel replica of TP GPUs is

    linear(T)                                                  the weight GEMMs of T tokens
  + max(attention FLOPs / achieved attention FLOP/s, KV bytes / achieved KV bandwidth)
  + 2 all-reduces per layer over the TP group's slowest link (TP > 1); with expert parallelism
    the MLP's becomes an all-to-all dispatch + combine and the busiest GPU's experts set the pace
  + host overhead: fixed per iteration + per sampled sequence + per prefill chunk,
    and a fixed cost per layer,

with every "achieved" rate = datasheet peak x an efficiency from the calibration profile, and

    linear(T) = max(c, m) + (1 - overlap) x min(c, m)
    c = dense GEMM FLOPs / (peak(dtype) x eff(T)) + routed-expert FLOPs / (peak x eff(M_e))
        + element-wise traffic (norms, rotary, residual adds, gated activation) / bandwidth
    m = weight bytes touched / achieved bandwidth

GEMM efficiency rises with the GEMM's row count M: eff(M) = max(dtype) x M / (M + half), where
max(dtype) is the profile's bf16, fp8 or fp4 maximum (FP8 GEMMs reach a smaller share of their
doubled peak). ``overlap`` (``compute_memory_overlap``) is 1 for the ideal roofline; kernels near
the ridge point reach neither bound, which a lower overlap expresses (the step time then keeps
growing with the batch where the ideal roofline is flat).

Mixture of experts: a batch of T tokens routed top-k over E experts touches each expert with
probability 1 - (1 - k/E)^T (uniform routing); only touched experts' weights are read, and each
touched expert's GEMM has M_e = T k / (E x touched share) rows, far fewer than T (a decode batch
of 64 on Mixtral: 16 rows per expert), so it runs at a lower efficiency than a dense GEMM.

Attention: standard heads read 2 x kv_heads x head_dim per token and layer per replica
(replicated when TP > kv_heads, :func:`simulator.perf.memory.kv_heads_per_rank`). Multi-head
latent attention (DeepSeek-V3) keeps the whole latent on every rank and, decoding in the
weight-absorbed form, does 2 x heads x (2 x latent - rope) FLOPs per query-key pair, 4.25x a
128-dim head's 4 x heads x head_dim; its prefill runs as ordinary attention over decompressed
heads (qk = head_dim + rope, v = head_dim).

All functions take numpy arrays (or scalars) and broadcast, so a DES can price many iterations in
one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from simulator.catalog import BYTES_PER_ELEMENT, Dtype, GpuSpec, ModelSpec
from simulator.perf.memory import kv_bytes_per_token
from simulator.perf.profile import EfficiencyParameters

#: Activations crossing the TP all-reduce are bf16.
ACTIVATION_BYTES = 2.0
#: With expert parallelism the busiest GPU's expert work over the mean: SGLang's large-scale EP
#: study (LMSYS blog, May 2025: DeepSeek-V3 prefill at EP32) measured 50,302 tok/s per node with
#: the default expert placement against 59,337 with perfectly balanced experts (x1.18); EPLB
#: recovers part of it. A fixed factor is a simplification (imbalance grows with batch and EP).
EXPERT_PARALLEL_IMBALANCE = 1.15


def gemm_efficiency(tokens: ArrayLike, eff: EfficiencyParameters) -> np.ndarray:
    """Fraction of peak a bf16 GEMM with ``tokens`` rows reaches (saturating curve)."""
    m = np.asarray(tokens, dtype=float)
    return eff.gemm_efficiency_max * m / (m + eff.gemm_half_saturation_tokens)


def activation_bytes(dtype: Dtype) -> float:
    """Bytes of one activation element: fp32 models compute in fp32, all others in bf16."""
    return 4.0 if dtype == "fp32" else 2.0


def elementwise_bytes_per_token_layer(
    hidden: int, q_width: int, kv_width: int, ffn_hidden: int, element_bytes: float
) -> float:
    """Minimum memory traffic of one layer's element-wise ops per token, bytes.

    Each activation read and written once: 2 RMSNorms (read h, write h), rotary on Q and K
    (read and write q_width + kv_width), 2 residual adds (read 2h, write h), the SwiGLU gate
    (read 2 x ffn, write ffn): 10 h + 2 (q_width + kv_width) + 3 ffn elements.
    """
    elements = 10 * hidden + 2 * (q_width + kv_width) + 3 * ffn_hidden
    return elements * element_bytes


def fixed_overhead_s(layers: int, eff: EfficiencyParameters, host_scale: float = 1.0) -> float:
    """Fixed seconds of one serving iteration: host time per step plus a cost per layer."""
    return eff.iteration_overhead_s * host_scale + layers * eff.layer_overhead_s


def kv_bandwidth_efficiency(eff: EfficiencyParameters) -> float:
    """Share of peak bandwidth attention reaches on the KV cache (default: the weights')."""
    if eff.kv_bandwidth_efficiency is None:
        return eff.memory_bandwidth_efficiency
    return eff.kv_bandwidth_efficiency


def overlapped(compute_s: np.ndarray, memory_s: np.ndarray, overlap: float) -> np.ndarray:
    """max(c, m) + (1 - overlap) x min(c, m): the roofline with partial overlap."""
    return np.maximum(compute_s, memory_s) + (1 - overlap) * np.minimum(compute_s, memory_s)


def expert_parameters(model: ModelSpec) -> float:
    """Parameters in routed experts, from the published totals alone.

    With T total and A active parameters, E experts of p parameters each and k of them per
    token: T = D + E p and A = D + k p, so p = (T - A) / (E - k) and the experts hold E p.
    """
    if not model.is_moe or model.experts == model.experts_per_token:
        return 0.0
    experts, k = model.experts or 1, model.experts_per_token or 1
    per_expert = (model.parameters - model.active) / (experts - k)
    return experts * per_expert


def ring_allreduce_share(group: int) -> float:
    """Bytes a ring all-reduce moves per GPU, per byte of the buffer: 2 (g - 1) / g."""
    return 2 * (group - 1) / group


def link_bytes_per_s(gpu: GpuSpec, group: int, eff: EfficiencyParameters) -> float:
    """Achieved per-GPU bandwidth of a collective over ``group`` consecutive GPUs: the fast
    interconnect inside the server, the scale-out network once the group spans servers (a ring
    is as fast as its slowest hop)."""
    per_direction = gpu.interconnect_gb_per_s
    if group > gpu.scale_up_domain:
        per_direction = min(per_direction, gpu.internode_gb_per_s)
    return per_direction * 1e9 * eff.interconnect_efficiency


def experts_touched_share(tokens: ArrayLike, experts: int, per_token: int) -> np.ndarray:
    """Expected share of E experts that T tokens routed top-k touch: 1 - (1 - k/E)^T."""
    t = np.asarray(tokens, dtype=float)
    return 1 - (1 - per_token / experts) ** t


@dataclass(frozen=True)
class ServingCostModel:
    """Iteration time of one replica of a deployment: model x GPU x dtype x TP x profile.

    ``host_overhead_scale`` multiplies the profile's host overheads (the engine preset's:
    :mod:`simulator.perf.engines`).
    """

    model: ModelSpec
    gpu: GpuSpec
    dtype: Dtype
    kv_dtype: Dtype
    tensor_parallel: int
    efficiency: EfficiencyParameters
    host_overhead_scale: float = 1.0
    expert_parallel: int = 1

    # ---- derived constants (per replica) ------------------------------------------------
    @property
    def embedding_parameters(self) -> float:
        return float(self.model.vocab_size * self.model.hidden_size)

    @property
    def body_active_parameters(self) -> float:
        """Active parameters in the layers (excluding input embedding and LM head)."""
        return max(self.model.active - 2 * self.embedding_parameters, 0.0)

    @property
    def per_expert_parameters(self) -> float:
        """Parameters of one routed expert over all layers (0 for a dense model)."""
        return expert_parameters(self.model) / (self.model.experts or 1)

    @property
    def routed_active_parameters(self) -> float:
        """Active parameters in routed experts per token (k experts)."""
        return self.per_expert_parameters * (self.model.experts_per_token or 0)

    @property
    def kv_bytes_per_token(self) -> float:
        """KV bytes per token held by the whole replica (all ranks, replicas of heads included)."""
        return kv_bytes_per_token(self.model, self.kv_dtype, self.tensor_parallel)

    @property
    def attention_width(self) -> int:
        """heads x head_dim: the width of Q and of the attention output."""
        return self.model.heads * self.model.attention_head_dim

    @property
    def decode_flops_per_pair(self) -> float:
        """Attention FLOPs per query-key pair of a decode token, all layers.

        Standard: QK^T and AV, 2 x 2 x heads x head_dim per layer. MLA (absorbed): QK over the
        latent + rope dims and AV over the latent: 2 x heads x (2 latent - rope) per layer.
        """
        m = self.model
        if m.kv_latent_dim:
            rope = m.qk_rope_head_dim or 0
            return 2 * m.layers * m.heads * (2 * m.kv_latent_dim - rope)
        return 4 * m.layers * self.attention_width

    @property
    def prefill_flops_per_pair(self) -> float:
        """Attention FLOPs per query-key pair of a prompt token (MLA: decompressed heads)."""
        m = self.model
        if m.kv_latent_dim:
            rope = m.qk_rope_head_dim or 0
            return 2 * m.layers * m.heads * (2 * m.attention_head_dim + rope)
        return 4 * m.layers * self.attention_width

    @property
    def elementwise_s_per_token(self) -> float:
        """Seconds of the element-wise ops per token (all layers), split over TP ranks."""
        eff = self.efficiency
        if eff.elementwise_traffic_factor == 0:
            return 0.0
        m = self.model
        ffn = m.ffn_hidden_size * (m.experts_per_token or 1)
        per_layer = elementwise_bytes_per_token_layer(
            m.hidden_size, self.attention_width, m.kv_heads * m.attention_head_dim,
            ffn, activation_bytes(self.dtype),
        )  # fmt: skip
        bandwidth = self.gpu.hbm_tb_per_s * 1e12 * eff.memory_bandwidth_efficiency
        per_token = eff.elementwise_traffic_factor * m.layers * per_layer
        return per_token / self.tensor_parallel / bandwidth

    @property
    def gemm_peak_flops_per_s(self) -> float:
        """Peak x the dtype's efficiency scale (eff(M) then supplies the bf16 curve)."""
        compute = self.gpu.compute_dtype_for(self.dtype)
        return self.gpu.peak_flops_per_s(compute) * self.efficiency.gemm_scale(compute)

    def _weight_bytes_read(self, tokens: np.ndarray) -> np.ndarray:
        """Weight bytes one iteration reads: all dense weights; for MoE, the experts touched."""
        width = BYTES_PER_ELEMENT[self.dtype]
        lm_head = self.embedding_parameters * width
        m = self.model
        expert_total = expert_parameters(m)
        if expert_total == 0:
            return np.full_like(tokens, (m.parameters - self.embedding_parameters) * width)
        dense = m.parameters - expert_total - 2 * self.embedding_parameters
        touched = experts_touched_share(tokens, m.experts, m.experts_per_token)  # type: ignore[arg-type]
        return (dense + expert_total * touched) * width + lm_head

    def _gemm_compute_s(self, tokens: np.ndarray) -> np.ndarray:
        """Body GEMM seconds (+ element-wise) of T tokens: dense at M = T, experts at M_e."""
        tp = self.tensor_parallel
        peak = self.gemm_peak_flops_per_s
        eff = self.efficiency
        t = np.maximum(tokens, 1e-9)
        routed = self.routed_active_parameters
        dense = self.body_active_parameters - routed
        seconds = 2 * dense * t / tp / (peak * gemm_efficiency(t, eff))
        if routed > 0:
            m = self.model
            touched = experts_touched_share(t, m.experts, m.experts_per_token)  # type: ignore[arg-type]
            rows = np.maximum(t * m.experts_per_token / (m.experts * touched), 1.0)  # type: ignore[operator]
            imbalance = EXPERT_PARALLEL_IMBALANCE if self.expert_parallel > 1 else 1.0
            seconds = seconds + imbalance * 2 * routed * t / tp / (peak * gemm_efficiency(rows, eff))
        return np.where(tokens > 0, seconds + self.elementwise_s_per_token * tokens, 0.0)

    def _linear_s(self, tokens: np.ndarray, logit_rows: np.ndarray) -> np.ndarray:
        """linear(T): body + LM-head GEMMs against the weight reads, partially overlapped."""
        compute = self._gemm_compute_s(tokens) + self._logits_s(logit_rows)
        memory = self._weights_s(tokens)
        return np.where(tokens > 0, overlapped(compute, memory, self.efficiency.compute_memory_overlap), 0.0)

    def _logits_s(self, rows: np.ndarray) -> np.ndarray:
        """LM-head GEMM seconds of ``rows`` logit rows: a GEMM of M = rows (only the rows that
        sample a token go through it), so its efficiency follows the rows, not the batch's tokens."""
        r = np.asarray(rows, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = self.gemm_peak_flops_per_s * gemm_efficiency(r, self.efficiency)
            return np.where(r > 0, 2 * self.embedding_parameters * r / self.tensor_parallel / rate, 0.0)

    def _weights_s(self, tokens: np.ndarray) -> np.ndarray:
        bandwidth = self.gpu.hbm_tb_per_s * 1e12 * self.efficiency.memory_bandwidth_efficiency
        return np.where(tokens > 0, self._weight_bytes_read(tokens) / self.tensor_parallel / bandwidth, 0.0)

    @property
    def tp_link_bytes_per_s(self) -> float:
        """Achieved all-reduce bandwidth of the TP group (:func:`link_bytes_per_s`)."""
        return link_bytes_per_s(self.gpu, self.tensor_parallel, self.efficiency)

    def _comm_s(self, tokens: np.ndarray) -> np.ndarray:
        """TP all-reduces (after attention and after the MLP) per layer; with expert
        parallelism the MLP's all-reduce becomes an all-to-all dispatch and combine."""
        tp = self.tensor_parallel
        if tp <= 1:
            return np.zeros_like(tokens)
        eff = self.efficiency
        hidden_bytes = tokens * self.model.hidden_size * ACTIVATION_BYTES
        allreduce = eff.allreduce_latency_s + ring_allreduce_share(tp) * hidden_bytes / self.tp_link_bytes_per_s
        ep = self.expert_parallel
        if ep > 1 and self.model.is_moe:
            # each rank sends its T/ep tokens to k experts, (ep-1)/ep of them remote, and gets
            # the results back (DeepEP-style dispatch + combine; bf16 activations)
            k = self.model.experts_per_token or 1
            per_rank = hidden_bytes / ep * k * (ep - 1) / ep
            mlp = 2 * (eff.allreduce_latency_s + per_rank / link_bytes_per_s(self.gpu, ep, eff))
        else:
            mlp = allreduce
        return np.where(tokens > 0, self.model.layers * (allreduce + mlp), 0.0)

    @property
    def _attention_rate(self) -> float:
        peak = self.gpu.peak_flops_per_s("fp32" if self.dtype == "fp32" else "bf16")
        return peak * self.efficiency.attention_efficiency * self.tensor_parallel

    @property
    def kv_s_per_token(self) -> float:
        """Seconds to read (or write) one token's KV on each rank, in parallel over the ranks."""
        bandwidth = self.gpu.hbm_tb_per_s * 1e12 * kv_bandwidth_efficiency(self.efficiency)
        return self.kv_bytes_per_token / self.tensor_parallel / bandwidth

    @property
    def sequence_overhead_s(self) -> float:
        return self.efficiency.sequence_overhead_s * self.host_overhead_scale

    @property
    def prefill_chunk_overhead_s(self) -> float:
        return self.efficiency.prefill_chunk_overhead_s * self.host_overhead_scale

    @property
    def overhead_s(self) -> float:
        return fixed_overhead_s(self.model.layers, self.efficiency, self.host_overhead_scale)

    # ---- iteration time -----------------------------------------------------------------
    def iteration_time_s(
        self,
        prefill_tokens: ArrayLike = 0,
        prefill_attention_pairs: ArrayLike = 0,
        prefill_sequences: ArrayLike = 0,
        decode_requests: ArrayLike = 0,
        decode_context_tokens: ArrayLike = 0,
        prefill_chunks: ArrayLike | None = None,
    ) -> np.ndarray:
        """Seconds one iteration takes.

        prefill_tokens: prompt tokens computed this iteration (sum of chunk lengths).
        prefill_attention_pairs: query-key pairs of those chunks, sum of c*(p + (c+1)/2) for a
            chunk of c tokens after p tokens already in the cache.
        prefill_sequences: prompts whose last chunk runs now (they produce a logit row).
        decode_requests: running requests producing one token each.
        decode_context_tokens: sum of their context lengths (prompt + tokens so far).
        prefill_chunks: prompt chunks run now (default: ``prefill_sequences``).
        """
        p = np.asarray(prefill_tokens, dtype=float)
        pairs = np.asarray(prefill_attention_pairs, dtype=float)
        seqs = np.asarray(prefill_sequences, dtype=float)
        b = np.asarray(decode_requests, dtype=float)
        ctx = np.asarray(decode_context_tokens, dtype=float)
        chunks = seqs if prefill_chunks is None else np.asarray(prefill_chunks, dtype=float)
        tokens = p + b
        rows = b + seqs
        linear = self._linear_s(tokens, rows)
        rate = self._attention_rate
        attn_compute_s = (self.prefill_flops_per_pair * pairs + self.decode_flops_per_pair * ctx) / rate
        kv_s = self.kv_s_per_token * (ctx + tokens)
        host = self.overhead_s + self.sequence_overhead_s * rows + self.prefill_chunk_overhead_s * chunks
        busy = linear + np.maximum(attn_compute_s, kv_s) + self._comm_s(tokens) + host
        return np.where(tokens > 0, busy, 0.0)

    # ---- convenience views ----------------------------------------------------------------
    def decode_step_s(self, batch: ArrayLike, context_tokens: ArrayLike) -> np.ndarray:
        """One decode iteration of ``batch`` requests each with ``context_tokens`` of context."""
        b = np.asarray(batch, dtype=float)
        return self.iteration_time_s(decode_requests=b, decode_context_tokens=b * context_tokens)

    def prefill_s(self, prompt_tokens: ArrayLike, sequences: ArrayLike = 1) -> np.ndarray:
        """Prefill of ``sequences`` prompts of ``prompt_tokens`` each in one iteration."""
        c = np.asarray(prompt_tokens, dtype=float)
        n = np.asarray(sequences, dtype=float)
        return self.iteration_time_s(
            prefill_tokens=n * c, prefill_attention_pairs=n * c * (c + 1) / 2, prefill_sequences=n
        )

    def iteration_terms(self, max_tokens: int) -> IterationTerms:
        """``iteration_time_s`` split into token-count tables and per-unit coefficients.

        For engines that price many iterations one at a time (see :class:`IterationTerms`);
        tables are indexed by the iteration's token count T = 0..``max_tokens``.
        """
        tokens = np.arange(max_tokens + 1, dtype=float)
        rate = self._attention_rate
        return IterationTerms(
            gemm_s=self._gemm_compute_s(tokens),
            logits_s=self._logits_s(tokens),
            weights_s=self._weights_s(tokens),
            comm_s=self._comm_s(tokens),
            attention_s_per_pair=self.decode_flops_per_pair / rate,
            prefill_attention_s_per_pair=self.prefill_flops_per_pair / rate,
            kv_s_per_token=self.kv_s_per_token,
            overhead_s=self.overhead_s,
            sequence_overhead_s=self.sequence_overhead_s,
            prefill_chunk_overhead_s=self.prefill_chunk_overhead_s,
            compute_memory_overlap=self.efficiency.compute_memory_overlap,
        )


@dataclass(frozen=True)
class IterationTerms:
    """:meth:`ServingCostModel.iteration_time_s` as tables over the token count plus coefficients.

    For an iteration of T = prefill_tokens + decode_requests > 0 tokens (0 s when T = 0), with
    R = decode_requests + prefill_sequences sampled rows::

        time_s = overlapped(gemm_s[T] + logits_s[R], weights_s[T], overlap)
               + max(prefill_attention_s_per_pair * prefill_attention_pairs
                     + attention_s_per_pair * decode_context_tokens,
                     kv_s_per_token * (decode_context_tokens + T))
               + comm_s[T] + overhead_s + sequence_overhead_s * R
               + prefill_chunk_overhead_s * chunks

    Same arithmetic as ``iteration_time_s`` (equal to rounding); an event-driven engine uses it
    to price one iteration with a table look-up instead of a vectorised call.
    """

    gemm_s: np.ndarray  #: body GEMM (+ element-wise) seconds at T tokens, shape (max_tokens + 1,)
    logits_s: np.ndarray  #: LM-head GEMM seconds of R logit rows, indexed by R (<= T)
    weights_s: np.ndarray  #: seconds to read the weights an iteration of T tokens touches
    comm_s: np.ndarray  #: tensor-parallel all-reduce seconds at T tokens
    attention_s_per_pair: float  #: decode attention compute seconds per query-key pair
    kv_s_per_token: float  #: seconds to read/write one token's KV cache
    overhead_s: float  #: fixed seconds per iteration
    prefill_attention_s_per_pair: float  #: prompt attention seconds per query-key pair
    sequence_overhead_s: float  #: host seconds per sampled row
    prefill_chunk_overhead_s: float  #: seconds per prefill chunk
    compute_memory_overlap: float  #: see :func:`overlapped`


# ---- training -----------------------------------------------------------------------------


def matmul_parameters(model: ModelSpec) -> float:
    """Active parameters that take part in matrix multiplies: all but the input embedding.

    The input embedding is a table lookup (no FLOPs); the LM head is a real GEMM. Models in the
    catalog have untied embeddings. The difference matters for small models (17% of tiny-cpu),
    hardly for large ones (0.5% of Llama-3-405B).
    """
    return model.active - model.vocab_size * model.hidden_size


def training_flops(model: ModelSpec, tokens: float, sequence_length_tokens: int) -> float:
    """FLOPs of training on ``tokens`` tokens: 6 N D plus causal attention.

    N counts the parameters in matrix multiplies (:func:`matmul_parameters`; active ones for
    MoE). Attention: forward 2 x 2 x layers x width x (seq/2) per token (QK^T and AV over on
    average half the sequence, causal), backward twice that: 6 x layers x width x seq per token.
    """
    width = model.heads * model.attention_head_dim
    per_token = 6 * matmul_parameters(model) + 6 * model.layers * width * sequence_length_tokens
    return per_token * tokens


def training_time_s(
    model: ModelSpec,
    tokens: float,
    gpus: int,
    gpu: GpuSpec,
    dtype: Dtype,
    sequence_length_tokens: int,
    mfu: float,
) -> float:
    """Failure-free wall time: FLOPs / (GPUs x peak for the dtype x MFU)."""
    peak = gpu.peak_flops_per_s(gpu.compute_dtype_for(dtype))
    return training_flops(model, tokens, sequence_length_tokens) / (gpus * peak * mfu)
