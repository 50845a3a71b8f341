"""Roofline cost model of one serving iteration and of training.

An iteration of a continuously-batched server runs the prefill chunks it admitted and one decode
token for every running request. Its time on a tensor-parallel replica is

    max(GEMM FLOPs / achieved GEMM FLOP/s + element-wise time, weight bytes / achieved BW)
                                                                                   linear layers
  + max(attention FLOPs / achieved attention FLOP/s, KV bytes / achieved KV bandwidth) attention
  + 2 all-reduces per layer over the interconnect (TP > 1)
  + a fixed per-iteration overhead + a fixed overhead per layer,

with every "achieved" rate = datasheet peak x an efficiency from the calibration profile. GEMM
efficiency rises with the token count M of the batch: eff(M) = max * M / (M + half). The
element-wise time is the minimum activation traffic of the unfused ops between the GEMMs
(norms, rotary, residual adds, gated activation) x ``elementwise_traffic_factor`` at the achieved
bandwidth: zero in the published GPU profiles (their engines fuse these ops; what is left is in
the GEMM efficiency), measured on CPUs, where eager PyTorch runs each op as its own pass.

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


def gemm_efficiency(tokens: ArrayLike, eff: EfficiencyParameters) -> np.ndarray:
    """Fraction of peak a GEMM with ``tokens`` rows reaches (saturating curve)."""
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


def fixed_overhead_s(layers: int, eff: EfficiencyParameters) -> float:
    """Fixed seconds of one serving iteration: per step plus per layer."""
    return eff.iteration_overhead_s + layers * eff.layer_overhead_s


def kv_bandwidth_efficiency(eff: EfficiencyParameters) -> float:
    """Share of peak bandwidth attention reaches on the KV cache (default: the weights')."""
    if eff.kv_bandwidth_efficiency is None:
        return eff.memory_bandwidth_efficiency
    return eff.kv_bandwidth_efficiency


@dataclass(frozen=True)
class ServingCostModel:
    """Iteration time of one replica of a deployment: model x GPU x dtype x TP x profile."""

    model: ModelSpec
    gpu: GpuSpec
    dtype: Dtype
    kv_dtype: Dtype
    tensor_parallel: int
    efficiency: EfficiencyParameters

    # ---- derived constants (per replica) ------------------------------------------------
    @property
    def embedding_parameters(self) -> float:
        return float(self.model.vocab_size * self.model.hidden_size)

    @property
    def body_active_parameters(self) -> float:
        """Active parameters in the layers (excluding input embedding and LM head)."""
        return max(self.model.active - 2 * self.embedding_parameters, 0.0)

    @property
    def kv_bytes_per_token(self) -> float:
        return kv_bytes_per_token(self.model, self.kv_dtype)

    @property
    def attention_width(self) -> int:
        """heads x head_dim: the width of Q and of the attention output."""
        return self.model.heads * self.model.attention_head_dim

    @property
    def elementwise_s_per_token(self) -> float:
        """Seconds of the unfused element-wise ops per token (all layers; 0 by default).

        Split over TP ranks like the GEMMs (norms and residual adds, replicated in practice, are
        a minor share).
        """
        eff = self.efficiency
        if eff.elementwise_traffic_factor == 0:
            return 0.0
        m = self.model
        per_layer = elementwise_bytes_per_token_layer(
            m.hidden_size, self.attention_width, m.kv_heads * m.attention_head_dim,
            m.ffn_hidden_size, activation_bytes(self.dtype),
        )  # fmt: skip
        bandwidth = self.gpu.hbm_tb_per_s * 1e12 * eff.memory_bandwidth_efficiency
        per_token = eff.elementwise_traffic_factor * m.layers * per_layer
        return per_token / self.tensor_parallel / bandwidth

    def _weight_bytes_read(self, tokens: np.ndarray) -> np.ndarray:
        """Weight bytes one iteration reads: all dense weights; for MoE, the experts touched.

        With E experts, k per token, a batch of T tokens touches each expert with probability
        1 - (1 - k/E)^T (uniform routing), so small decode batches read few experts.
        """
        width = BYTES_PER_ELEMENT[self.dtype]
        lm_head = self.embedding_parameters * width
        m = self.model
        if not m.is_moe:
            return np.full_like(tokens, (m.parameters - self.embedding_parameters) * width)
        share = m.experts_per_token / m.experts  # type: ignore[operator]
        expert_total = (m.parameters - m.active) / (1 - share) if share < 1 else m.parameters
        dense = m.parameters - expert_total - 2 * self.embedding_parameters
        touched = 1 - (1 - share) ** tokens
        return (dense + expert_total * touched) * width + lm_head

    # ---- iteration time -----------------------------------------------------------------
    def iteration_time_s(
        self,
        prefill_tokens: ArrayLike = 0,
        prefill_attention_pairs: ArrayLike = 0,
        prefill_sequences: ArrayLike = 0,
        decode_requests: ArrayLike = 0,
        decode_context_tokens: ArrayLike = 0,
    ) -> np.ndarray:
        """Seconds one iteration takes.

        prefill_tokens: prompt tokens computed this iteration (sum of chunk lengths).
        prefill_attention_pairs: query-key pairs of those chunks, sum of c*(p + (c+1)/2) for a
            chunk of c tokens after p tokens already in the cache.
        prefill_sequences: prompts whose last chunk runs now (they produce a logit row).
        decode_requests: running requests producing one token each.
        decode_context_tokens: sum of their context lengths (prompt + tokens so far).
        """
        p = np.asarray(prefill_tokens, dtype=float)
        pairs = np.asarray(prefill_attention_pairs, dtype=float)
        seqs = np.asarray(prefill_sequences, dtype=float)
        b = np.asarray(decode_requests, dtype=float)
        ctx = np.asarray(decode_context_tokens, dtype=float)
        eff = self.efficiency
        tp = self.tensor_parallel
        layers = self.model.layers
        tokens = p + b

        gemm_peak = self.gpu.peak_flops_per_s(self.gpu.compute_dtype_for(self.dtype))
        attn_peak = self.gpu.peak_flops_per_s("fp32" if self.dtype == "fp32" else "bf16")
        bandwidth = self.gpu.hbm_tb_per_s * 1e12 * eff.memory_bandwidth_efficiency
        kv_bandwidth = self.gpu.hbm_tb_per_s * 1e12 * kv_bandwidth_efficiency(eff)

        gemm_flops = 2 * self.body_active_parameters * tokens + 2 * self.embedding_parameters * (
            b + seqs
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            gemm_rate = gemm_peak * gemm_efficiency(tokens, eff)
            gemm_compute_s = np.where(
                tokens > 0, gemm_flops / tp / gemm_rate + self.elementwise_s_per_token * tokens, 0.0
            )
        weight_s = np.where(tokens > 0, self._weight_bytes_read(tokens) / tp / bandwidth, 0.0)

        attn_flops = 4 * layers * self.attention_width * (pairs + ctx)
        attn_compute_s = attn_flops / tp / (attn_peak * eff.attention_efficiency)
        kv_bytes = self.kv_bytes_per_token * (ctx + tokens)
        kv_s = kv_bytes / tp / kv_bandwidth

        comm_s = np.zeros_like(tokens)
        if tp > 1:
            ring_bytes = 2 * (tp - 1) / tp * tokens * self.model.hidden_size * ACTIVATION_BYTES
            link = self.gpu.interconnect_gb_per_s * 1e9 * eff.interconnect_efficiency
            comm_s = np.where(tokens > 0, 2 * layers * (eff.allreduce_latency_s + ring_bytes / link), 0)

        busy = np.maximum(gemm_compute_s, weight_s) + np.maximum(attn_compute_s, kv_s) + comm_s
        return np.where(tokens > 0, busy + fixed_overhead_s(layers, eff), 0.0)

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
        eff = self.efficiency
        tp = self.tensor_parallel
        layers = self.model.layers
        gemm_peak = self.gpu.peak_flops_per_s(self.gpu.compute_dtype_for(self.dtype))
        attn_peak = self.gpu.peak_flops_per_s("fp32" if self.dtype == "fp32" else "bf16")
        bandwidth = self.gpu.hbm_tb_per_s * 1e12 * eff.memory_bandwidth_efficiency
        kv_bandwidth = self.gpu.hbm_tb_per_s * 1e12 * kv_bandwidth_efficiency(eff)
        with np.errstate(divide="ignore", invalid="ignore"):
            gemm_rate = gemm_peak * gemm_efficiency(tokens, eff)
            body_flops = 2 * self.body_active_parameters * tokens
            gemm_s = np.where(
                tokens > 0, body_flops / tp / gemm_rate + self.elementwise_s_per_token * tokens, 0.0
            )
            logits_s = np.where(tokens > 0, 2 * self.embedding_parameters / tp / gemm_rate, 0.0)
        weights_s = np.where(tokens > 0, self._weight_bytes_read(tokens) / tp / bandwidth, 0.0)
        comm_s = np.zeros_like(tokens)
        if tp > 1:
            ring_bytes = 2 * (tp - 1) / tp * tokens * self.model.hidden_size * ACTIVATION_BYTES
            link = self.gpu.interconnect_gb_per_s * 1e9 * eff.interconnect_efficiency
            comm_s = np.where(tokens > 0, 2 * layers * (eff.allreduce_latency_s + ring_bytes / link), 0)
        return IterationTerms(
            gemm_s=gemm_s,
            logits_s_per_row=logits_s,
            weights_s=weights_s,
            comm_s=comm_s,
            attention_s_per_pair=4 * layers * self.attention_width / tp
            / (attn_peak * eff.attention_efficiency),
            kv_s_per_token=self.kv_bytes_per_token / tp / kv_bandwidth,
            overhead_s=fixed_overhead_s(layers, eff),
        )


@dataclass(frozen=True)
class IterationTerms:
    """:meth:`ServingCostModel.iteration_time_s` as tables over the token count plus coefficients.

    For an iteration of T = prefill_tokens + decode_requests > 0 tokens (0 s when T = 0)::

        time_s = max(gemm_s[T] + logits_s_per_row[T] * (decode_requests + prefill_sequences),
                     weights_s[T])
               + max(attention_s_per_pair * (prefill_attention_pairs + decode_context_tokens),
                     kv_s_per_token * (decode_context_tokens + T))
               + comm_s[T] + overhead_s

    Same arithmetic as ``iteration_time_s`` (equal to rounding); an event-driven engine uses it
    to price one iteration with a table look-up instead of a vectorised call.
    """

    gemm_s: np.ndarray  #: body GEMM (+ element-wise) seconds at T tokens, shape (max_tokens + 1,)
    logits_s_per_row: np.ndarray  #: LM-head GEMM seconds per logit row at T tokens
    weights_s: np.ndarray  #: seconds to read the weights an iteration of T tokens touches
    comm_s: np.ndarray  #: tensor-parallel all-reduce seconds at T tokens
    attention_s_per_pair: float  #: attention compute seconds per query-key pair
    kv_s_per_token: float  #: seconds to read/write one token's KV cache
    overhead_s: float  #: fixed seconds per iteration


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
