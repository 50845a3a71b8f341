"""A real decoder-only transformer in PyTorch, the yardstick of the calibration's accuracy.

Llama-style: token embedding, ``layers`` blocks of (RMSNorm, attention with rotary position
embedding and grouped-query KV heads, RMSNorm, SwiGLU MLP) with residual connections, a final
RMSNorm and an untied LM head; no biases. Weights are random (timing does not depend on their
values). Generation runs as a serving engine does: one prefill of the prompts into a
pre-allocated KV cache, logits for the last prompt position only, then one decode step per
output token (greedy).

The shapes come from a catalog :class:`~simulator.catalog.ModelSpec`, so the cost model prices
exactly the model that runs here. This module imports torch: import it only where torch is
installed (``fleetsim calibrate`` and the calibration tests).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from calibration.benchmark_runtime import DTYPES, Runtime, configured
from calibration.reference_setup import ReferenceSetup, Timing
from calibration.stats import summarize
from simulator.catalog import ModelSpec

ProgressFn = Callable[[str, int, int], None]

#: RMSNorm epsilon (Llama 2/3 use 1e-5 or 1e-6; the value does not affect timing).
NORM_EPS = 1e-5
#: Rotary base frequency (Llama 2).
ROPE_THETA = 10_000.0


def parameter_count(spec: ModelSpec) -> int:
    """Parameters of the model this module builds for ``spec`` (embeddings untied, no biases)."""
    h, hd = spec.hidden_size, spec.attention_head_dim
    attention = h * spec.heads * hd * 2 + h * spec.kv_heads * hd * 2
    mlp = 3 * h * spec.ffn_hidden_size
    per_layer = attention + mlp + 2 * h
    return 2 * spec.vocab_size * h + spec.layers * per_layer + h


def rope_tables(head_dim: int, positions: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """cos and sin tables, shape [positions, head_dim] (half-rotation layout)."""
    inv_freq = 1.0 / ROPE_THETA ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(positions, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` [batch, heads, tokens, head_dim] by the tables [tokens, head_dim]."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, NORM_EPS)


class Block(nn.Module):
    """One decoder layer: pre-norm attention (RoPE, GQA) and pre-norm SwiGLU MLP."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        h, hd = spec.hidden_size, spec.attention_head_dim
        self.heads, self.kv_heads, self.head_dim = spec.heads, spec.kv_heads, hd
        self.ffn = spec.ffn_hidden_size
        self.attn_norm = RMSNorm(h)
        self.qkv = nn.Linear(h, (spec.heads + 2 * spec.kv_heads) * hd, bias=False)
        self.out = nn.Linear(spec.heads * hd, h, bias=False)
        self.mlp_norm = RMSNorm(h)
        self.gate_up = nn.Linear(h, 2 * spec.ffn_hidden_size, bias=False)
        self.down = nn.Linear(spec.ffn_hidden_size, h, bias=False)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        cache: tuple[Tensor, Tensor] | None = None,
        start: int = 0,
    ) -> Tensor:
        """``x`` [batch, tokens, hidden] at positions ``start``..; ``cache`` (K, V) is written.

        Without a cache (training) attention is causal over ``x`` alone.
        """
        b, t, _ = x.shape
        qkv = self.qkv(self.attn_norm(x))
        q_width, kv_width = self.heads * self.head_dim, self.kv_heads * self.head_dim
        q, k, v = qkv.split([q_width, kv_width, kv_width], dim=-1)
        q = q.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        gqa = self.kv_heads != self.heads
        if cache is None:
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            k_cache, v_cache = cache
            k_cache[:b, :, start : start + t] = k
            v_cache[:b, :, start : start + t] = v
            if start == 0:  # prefill of fresh prompts: causal over the prompt itself
                attn = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
            else:  # decode (t == 1): the new token attends to the whole cache
                keys, values = k_cache[:b, :, : start + t], v_cache[:b, :, : start + t]
                attn = F.scaled_dot_product_attention(q, keys, values, enable_gqa=gqa)
        x = x + self.out(attn.transpose(1, 2).reshape(b, t, q_width))
        gate, up = self.gate_up(self.mlp_norm(x)).split(self.ffn, dim=-1)
        return x + self.down(F.silu(gate) * up)


class DecoderLM(nn.Module):
    """The whole model: embedding, blocks, final norm, LM head."""

    def __init__(self, spec: ModelSpec, max_positions: int) -> None:
        super().__init__()
        self.spec = spec
        self.embed = nn.Embedding(spec.vocab_size, spec.hidden_size)
        self.blocks = nn.ModuleList(Block(spec) for _ in range(spec.layers))
        self.norm = RMSNorm(spec.hidden_size)
        self.lm_head = nn.Linear(spec.hidden_size, spec.vocab_size, bias=False)
        cos, sin = rope_tables(spec.attention_head_dim, max_positions, torch.float32)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(
        self,
        tokens: Tensor,
        caches: list[tuple[Tensor, Tensor]] | None = None,
        start: int = 0,
        last_only: bool = False,
    ) -> Tensor:
        """Logits for ``tokens`` [batch, t] at positions ``start``..start+t.

        ``last_only``: the LM head runs on the last position only (prefill in serving).
        """
        t = tokens.shape[1]
        cos, sin = self.cos[start : start + t], self.sin[start : start + t]
        x = self.embed(tokens)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, None if caches is None else caches[i], start)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.norm(x))


@dataclass(frozen=True)
class GenerationTiming:
    """Times of one generate call, seconds (on the runtime's clock)."""

    prefill_s: float
    decode_step_s: tuple[float, ...]


class Generator:
    """Greedy generation with a pre-allocated KV cache, timed step by step."""

    def __init__(self, model: DecoderLM, max_batch: int, max_tokens: int) -> None:
        spec = model.spec
        weight = next(model.parameters())
        shape = (max_batch, spec.kv_heads, max_tokens, spec.attention_head_dim)
        self.model = model
        self.caches = [
            (torch.zeros(shape, dtype=weight.dtype, device=weight.device),
             torch.zeros(shape, dtype=weight.dtype, device=weight.device))
            for _ in range(spec.layers)
        ]  # fmt: skip

    @torch.inference_mode()
    def generate(
        self, prompts: Tensor, new_tokens: int, clock: Callable[[], float]
    ) -> GenerationTiming:
        """Prefill ``prompts`` [batch, prompt] then decode ``new_tokens`` - 1 more tokens.

        ``clock()`` returns seconds (:meth:`calibration.benchmark_runtime.Runtime.clock`: thread
        CPU time on one CPU thread, a synchronising wall clock on GPUs).
        """
        tick = clock
        t0 = tick()
        logits = self.model(prompts, self.caches, 0, last_only=True)
        token = logits[:, -1].argmax(dim=-1, keepdim=True)
        t1 = tick()
        prefill = t1 - t0
        steps = []
        position = prompts.shape[1]
        for _ in range(new_tokens - 1):
            t0 = tick()
            logits = self.model(token, self.caches, position)
            token = logits[:, -1].argmax(dim=-1, keepdim=True)
            t1 = tick()
            steps.append(t1 - t0)
            position += 1
        return GenerationTiming(prefill, tuple(steps))


def build_model(
    spec: ModelSpec, dtype: torch.dtype, max_positions: int, seed: int = 0
) -> DecoderLM:
    """The model with random weights, in ``dtype``, in eval mode.

    PyTorch's default initialisation (linear weights uniform in +-1/sqrt(fan_in), embeddings
    standard normal) keeps activations of order one, as in a trained model; tiny activations
    would run into denormal arithmetic, which is slow on CPUs and not what real models do.
    """
    torch.manual_seed(seed)
    return DecoderLM(spec, max_positions).to(dtype).eval()


def training_step_s(model: DecoderLM, batch: int, seq: int, clock: Callable[[], float]) -> float:
    """Seconds of one training step: forward, cross-entropy, backward, AdamW, zero_grad.

    The model is put in training mode; an AdamW optimizer is created on first use (its state is
    allocated by the first step, which callers treat as a warm-up).
    """
    model.train()
    optimizer = getattr(model, "_optimizer", None)
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model._optimizer = optimizer  # type: ignore[assignment]
    device = next(model.parameters()).device
    vocab = model.spec.vocab_size
    tokens = torch.randint(0, vocab, (batch, seq + 1), device=device)
    t0 = clock()
    logits = model(tokens[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, vocab).float(), tokens[:, 1:].reshape(-1))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return clock() - t0


class ReferenceSession:
    """The reference measurement in phases, interleavable with the micro-benchmark's rounds:
    :meth:`prepare` (build, warm up), ``setup.repeats`` x :meth:`round`, :meth:`finish`.

    Each round generates once at every batch x prompt and runs one training step. Each point's
    time is ``setup.statistic`` (:mod:`calibration.stats`) of its repeats; for decode, of each
    step j across repeats, then the mean over the steps.
    """

    def __init__(self, setup: ReferenceSetup, runtime: Runtime,
                 progress: ProgressFn | None = None) -> None:  # fmt: skip
        self.setup, self.runtime, self.progress = setup, runtime, progress
        self.configs = [(b, p) for b in setup.batches for p in setup.prompts]
        self.total = setup.repeats * (len(self.configs) + 1) + 1
        self.done = 0
        self.prefill: dict[tuple[int, int], list[float]] = {c: [] for c in self.configs}
        self.decode: dict[tuple[int, int], list[tuple[float, ...]]] = {c: [] for c in self.configs}
        self.training: list[float] = []

    @property
    def rounds(self) -> int:
        return self.setup.repeats

    def _advance(self, label: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(label, self.done, self.total)

    def prepare(self) -> None:
        """Build the model and KV cache; warm up at the largest shape and one training step."""
        setup, device = self.setup, self.runtime.device
        spec = setup.model
        torch.manual_seed(0)
        max_tokens = max(setup.prompts) + setup.new_tokens
        self.model = build_model(spec, DTYPES[setup.dtype], max_tokens + 1).to(device)
        self.generator = Generator(self.model, max(setup.batches), max_tokens)
        self.prompts = {(b, p): torch.randint(0, spec.vocab_size, (b, p), device=device)
                        for b, p in self.configs}  # fmt: skip
        self.generator.generate(self.prompts[max(self.configs)], 2, self.runtime.clock)
        training_step_s(self.model, setup.train_batch, setup.train_seq, self.runtime.clock)
        self._advance("reference warm-up")

    def round(self, index: int) -> None:
        """Generate once at every batch x prompt, then one training step."""
        setup, clock = self.setup, self.runtime.clock
        self.model.eval()
        for config in self.configs:
            run = self.generator.generate(self.prompts[config], setup.new_tokens, clock)
            self.prefill[config].append(run.prefill_s)
            self.decode[config].append(run.decode_step_s)
            self._advance(f"reference {index + 1}/{setup.repeats}: batch {config[0]}, "
                          f"prompt {config[1]}")  # fmt: skip
        self.training.append(training_step_s(self.model, setup.train_batch, setup.train_seq, clock))
        self._advance(f"reference {index + 1}/{setup.repeats}: training step")

    def finish(self) -> list[Timing]:
        """The timings; frees the model."""
        setup, stat = self.setup, self.setup.statistic
        timings: list[Timing] = []
        for b, p in self.configs:
            runs = self.prefill[b, p]
            timings.append(Timing("prefill", b, p, summarize(runs, stat), tuple(runs)))
            steps = self.decode[b, p]  # one row per repeat, one column per step
            per_step = [summarize(column, stat) for column in zip(*steps, strict=True)]
            timings.append(Timing("decode", b, p, statistics.fmean(per_step),
                                  tuple(statistics.fmean(row) for row in steps)))  # fmt: skip
        timings.append(Timing("training", setup.train_batch, setup.train_seq,
                              summarize(self.training, stat), tuple(self.training)))  # fmt: skip
        del self.model, self.generator, self.prompts
        return timings


def measure(
    setup: ReferenceSetup, device: str = "cpu", progress: ProgressFn | None = None
) -> list[Timing]:
    """Time the reference at every point of ``setup`` (a :class:`ReferenceSession` on its own)."""
    with configured(device, setup.threads) as runtime:
        session = ReferenceSession(setup, runtime, progress)
        session.prepare()
        for r in range(session.rounds):
            session.round(r)
        return session.finish()
