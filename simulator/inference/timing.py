"""Iteration times for the event-driven engine, in O(1) per iteration or per run of iterations.

:class:`IterationTimer` prices one iteration from its aggregates with a table look-up
(:meth:`simulator.perf.roofline.ServingCostModel.iteration_terms`), the same arithmetic as
``ServingCostModel.iteration_time_s`` without a numpy call per iteration.

:class:`DecodeRun` is the key to speed: between two changes of a batch's membership, decode
iterations differ only in context length (the batch's context sum grows by ``b`` per iteration),
so the iteration time is ``fixed(b) + max(alpha * C_i, kappa * (C_i + b))`` with
``C_i = C_0 + b * i``: piecewise linear in ``i``. Its cumulative time is a piecewise quadratic,
summed and inverted in closed form, so a run of thousands of iterations costs one event.

LoRA adapters (:mod:`simulator.perf.lora`) add ``adapter_s(T, D)`` to an iteration of T tokens
whose requests use D distinct adapters; D only changes with the batch's membership, so within a
decode run it is a constant added to ``fixed``.

Speculative decoding (:mod:`simulator.perf.speculative`): a decode iteration of ``b`` requests
drafts ``k`` tokens each and verifies ``b (k + 1)`` tokens, emitting E[X] tokens per request on
average. The replica keeps counting in *token steps* (one token per request), and a speculative
decode run prices each step at the iteration's time / E[X] (same shape, four coefficients):
the mean-field rate of the batch. Each request's own luck enters through its length in token
steps (:func:`simulator.inference.engine.speculative_steps`), so a request needing I
verifications spends about I iterations' time decoding.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.perf.lora import AdapterTerms
from simulator.perf.roofline import IterationTerms, ServingCostModel
from simulator.perf.speculative import SpeculationTerms


def table_tokens(max_tokens: int, speculation: SpeculationTerms | None) -> int:
    """Tokens an iteration may hold: the scheduler's budget, or with speculation the
    verification of a full batch, b x (k + 1), if that is more."""
    if speculation is None:
        return max_tokens
    return max(max_tokens, (len(speculation.draft_fixed_s) - 1) * (speculation.draft_tokens + 1))


class IterationTimer:
    """Seconds of one serving iteration of a replica, from its aggregates (all O(1))."""

    def __init__(
        self, terms: IterationTerms, adapters: AdapterTerms | None = None,
        speculation: SpeculationTerms | None = None,
    ) -> None:  # fmt: skip
        self.max_tokens = len(terms.gemm_s) - 1
        #: speculative decoding terms (None: one token per decode iteration)
        self.speculation = speculation
        #: adapter overhead terms (None: the deployment serves no adapters)
        self.adapters = adapters
        if adapters is not None:
            self._lora_fixed = adapters.fixed_s
            self._lora_flops: list[float] = adapters.flops_s.tolist()
            self._lora_bytes = adapters.bytes_s_per_adapter
        self.gemm = terms.gemm_s.tolist()
        self.logits = terms.logits_s.tolist()
        self.weights = terms.weights_s.tolist()
        self.comm = terms.comm_s.tolist()
        self.alpha = float(terms.attention_s_per_pair)
        self.alpha_prefill = float(terms.prefill_attention_s_per_pair)
        self.kappa = float(terms.kv_s_per_token)
        self.overhead = float(terms.overhead_s)
        self.per_row = float(terms.sequence_overhead_s)
        self.per_chunk = float(terms.prefill_chunk_overhead_s)
        self.overlap = float(terms.compute_memory_overlap)
        b = np.arange(self.max_tokens + 1, dtype=float)
        compute = terms.gemm_s + terms.logits_s
        fixed = (
            np.maximum(compute, terms.weights_s)
            + (1 - self.overlap) * np.minimum(compute, terms.weights_s)
            + terms.comm_s
            + terms.overhead_s
            + terms.sequence_overhead_s * b
        )
        fixed[0] = 0.0
        #: decode-only iteration of b requests, the context-independent part, seconds
        self.decode_fixed: list[float] = fixed.tolist()

    @classmethod
    def from_cost_model(
        cls, cost_model: ServingCostModel, max_tokens: int, adapters: AdapterTerms | None = None,
        speculation: SpeculationTerms | None = None,
    ) -> IterationTimer:  # fmt: skip
        """Timer for iterations of up to ``max_tokens`` tokens (prefill + decode); with
        speculation, tables reach the verification of a full batch as well (``adapters``
        must be sized to :func:`table_tokens`)."""
        return cls(cost_model.iteration_terms(table_tokens(max_tokens, speculation)), adapters, speculation)

    @property
    def fastest_token_s(self) -> float:
        """A lower bound of one request's seconds per output token (batch 1, empty context;
        with speculation, every draft accepted)."""
        if self.speculation is None:
            return self.decode_fixed[1]
        spec = self.speculation
        return self._speculative_branches(1, 0.0)[0] / (spec.draft_tokens + 1) * spec.tokens_per_iteration

    def adapter_s(self, tokens: int, distinct: int) -> float:
        """Adapter seconds of an iteration of ``tokens`` tokens using ``distinct`` adapters."""
        if distinct <= 0 or tokens <= 0 or self.adapters is None:
            return 0.0
        flops = self._lora_flops[tokens]
        bytes_s = distinct * self._lora_bytes
        return self._lora_fixed + (max(bytes_s, flops))

    def iteration_s(
        self,
        prefill_tokens: int,
        prefill_attention_pairs: float,
        prefill_sequences: int,
        decode_requests: int,
        decode_context_tokens: float,
        distinct_adapters: int = 0,
        prefill_chunks: int | None = None,
    ) -> float:
        """Seconds of one iteration (arguments as in ``ServingCostModel.iteration_time_s``,
        plus the distinct LoRA adapters its requests use)."""
        t = prefill_tokens + decode_requests
        if t <= 0:
            return 0.0
        rows = decode_requests + prefill_sequences
        g = self.gemm[t] + self.logits[rows]
        w = self.weights[t]
        linear = max(w, g) + (1 - self.overlap) * min(w, g) if self.overlap < 1 else max(w, g)
        a = self.alpha_prefill * prefill_attention_pairs + self.alpha * decode_context_tokens
        k = self.kappa * (decode_context_tokens + t)
        chunks = prefill_sequences if prefill_chunks is None else prefill_chunks
        base = linear + (max(k, a)) + self.comm[t] + self.overhead + self.per_row * rows + self.per_chunk * chunks
        if distinct_adapters > 0:
            return base + self.adapter_s(t, distinct_adapters)
        return base

    def decode_run(self, batch: int, context_tokens: float, distinct_adapters: int = 0) -> DecodeRun:
        """Decode-only iterations of ``batch`` requests whose context sum starts at
        ``context_tokens`` (the first iteration's ``decode_context_tokens``), using
        ``distinct_adapters`` LoRA adapters."""
        if self.speculation is not None and batch > 0:
            p, q, r, s = self._speculative_branches(batch, context_tokens, distinct_adapters)
            return DecodeRun.from_branches(p, q, r, s)
        fixed = self.decode_fixed[batch]
        if distinct_adapters > 0:
            fixed = fixed + self.adapter_s(batch, distinct_adapters)
        return DecodeRun(fixed, self.alpha, self.kappa, batch, context_tokens)

    def speculative_iteration_s(self, batch: int, context_tokens: float) -> float:
        """Seconds of one speculative iteration (k draft steps + verification) of ``batch``
        decoders whose context sum is ``context_tokens``."""
        spec = self.speculation
        if spec is None or batch <= 0:
            raise ValueError("speculative_iteration_s needs speculation and a batch >= 1")
        p, _, r, _ = self._speculative_branches(batch, context_tokens)
        return max(p, r) * spec.tokens_per_iteration

    def _speculative_branches(
        self, batch: int, context_tokens: float, distinct_adapters: int = 0
    ) -> tuple[float, float, float, float]:
        """(p, q, r, s) of a speculative decode run in token steps (see the module docstring):
        one iteration verifies T = b (k + 1) tokens (T logit rows) after k draft steps, reads
        the batch's KV once and attends (k + 1) queries per context token; a token step is that
        iteration / E[X]."""
        spec = self.speculation
        assert spec is not None
        b, k = batch, spec.draft_tokens
        t = b * (k + 1)
        g = self.gemm[t] + self.logits[t]
        w = self.weights[t]
        linear = max(w, g) + (1 - self.overlap) * min(w, g)
        base = linear + self.comm[t] + self.overhead + self.per_row * b + float(spec.draft_fixed_s[b])
        if distinct_adapters > 0:
            base += self.adapter_s(t, distinct_adapters)
        d = spec.draft_s_per_context_token
        kv_slope = self.kappa + d
        attention_slope = self.alpha * (k + 1) + d
        scale = 1.0 / spec.tokens_per_iteration
        c0 = context_tokens
        return ((base + self.kappa * (c0 + t) + d * c0) * scale, kv_slope * b * scale,
                (base + attention_slope * c0) * scale, attention_slope * b * scale)  # fmt: skip


class DecodeRun:
    """Closed-form times of decode iterations i = 0, 1, ... of a fixed batch of ``b`` requests.

    t_i = fixed + max(alpha * (C0 + b i), kappa * (C0 + b i + b)): the KV-read branch
    ``p + q i`` up to iteration ``split``, the attention-compute branch ``r + s i`` from there.
    """

    __slots__ = ("_head", "p", "q", "r", "s", "split")

    @classmethod
    def from_branches(cls, p: float, q: float, r: float, s: float) -> DecodeRun:
        """t_i = max(p + q i, r + s i) given directly (speculative runs, where the two branches
        have their own intercepts). The KV branch (p, q) must hold first: p >= r when s <= q."""
        run = cls.__new__(cls)
        run.p, run.q, run.r, run.s = p, q, r, s
        if s <= q:
            if p < r:
                raise ValueError("the attention branch leads and falls behind: not a decode run")
            run.split = math.inf
        else:
            run.split = max(0, math.ceil((p - r) / (s - q)))
        run._head = 0.0 if run.split == math.inf else run._kv_elapsed(run.split)
        return run

    def __init__(self, fixed: float, alpha: float, kappa: float, b: int, c0: float) -> None:
        self.p = fixed + kappa * (c0 + b)
        self.q = kappa * b
        self.r = fixed + alpha * c0
        self.s = alpha * b
        if alpha <= kappa or b == 0:
            self.split = math.inf
        else:
            crossing = kappa * b / (alpha - kappa)  # context sum where the branches meet
            self.split = max(0, math.ceil((crossing - c0) / b))
        self._head = 0.0 if self.split == math.inf else self._kv_elapsed(self.split)

    def _kv_elapsed(self, n: float) -> float:
        return n * self.p + self.q * n * (n - 1) / 2

    def iteration_s(self, i: int) -> float:
        """Seconds of iteration ``i`` (0-based)."""
        if i < self.split:
            return self.p + self.q * i
        return self.r + self.s * i

    def elapsed_s(self, n: int) -> float:
        """Seconds of the first ``n`` iterations (0 for n = 0)."""
        if n <= self.split:
            return self._kv_elapsed(n)
        m = self.split
        return self._head + (n - m) * self.r + self.s * (n * (n - 1) - m * (m - 1)) / 2

    def iterations_until(self, dt: float) -> int:
        """Smallest n >= 0 with ``elapsed_s(n) >= dt``: the iteration boundary at or after
        ``dt`` seconds into the run."""
        if dt <= 0:
            return 0
        if dt <= self._head or self.split == math.inf:
            n = _quadratic_root(self.q / 2, self.p - self.q / 2, dt)
        else:
            m = self.split
            a = self.s / 2
            b = self.r + self.s * (2 * m - 1) / 2
            n = m + _quadratic_root(a, b, dt - self._head)
        n = max(0, math.ceil(n))
        while self.elapsed_s(n) < dt:
            n += 1
        while n > 0 and self.elapsed_s(n - 1) >= dt:
            n -= 1
        return n


def _quadratic_root(a: float, b: float, c: float) -> float:
    """Positive root of a x^2 + b x = c (a >= 0, b > 0, c >= 0), in the cancellation-free form."""
    if a <= 0:
        return c / b
    return 2 * c / (b + math.sqrt(b * b + 4 * a * c))
