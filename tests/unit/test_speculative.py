"""Speculative decoding: the acceptance model (Leviathan et al. 2023), its cost in the timer, and
what the engine does with it."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.common.errors import ScenarioError
from simulator.inference import serve
from simulator.inference.api import replica_setup
from simulator.inference.engine import EngineConfig, RequestArrays, simulate
from simulator.perf.speculative import (
    draft_head_model,
    expected_tokens_per_iteration,
    sample_decode_iterations,
    sample_tokens_per_iteration,
)
from simulator.scenario.resolve import model_of
from tests.inference_support import chat_scenario

DRAFT = {"draft_model": "llama-3.2-1b", "draft_tokens": 4, "acceptance_rate": 0.7}


def spec_chat(speculative=DRAFT, workload=None):
    return chat_scenario({"speculative": speculative}, workload)


def test_expected_tokens_formula_edges():
    assert expected_tokens_per_iteration(0.0, 5) == 1.0  # every draft rejected: the target's own token
    assert expected_tokens_per_iteration(0.5, 1) == pytest.approx(1.5)
    assert expected_tokens_per_iteration(0.8, 200) == pytest.approx(1 / (1 - 0.8))  # k -> infinity
    with pytest.raises(ValueError):
        expected_tokens_per_iteration(1.0, 3)


@pytest.mark.parametrize(("alpha", "k"), [(0.3, 1), (0.6, 3), (0.7, 4), (0.9, 7)])
def test_sampled_tokens_per_iteration_have_the_papers_mean(alpha, k):
    """(1 - a^(k+1)) / (1 - a) within 4 standard errors of 200,000 draws."""
    x = sample_tokens_per_iteration(alpha, k, np.random.default_rng(1), 200_000)
    assert x.min() >= 1 and x.max() <= k + 1
    se = x.std() / math.sqrt(len(x))
    assert abs(x.mean() - expected_tokens_per_iteration(alpha, k)) < 4 * se


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=1, max_size=30), st.floats(0.0, 0.95), st.integers(1, 8))
def test_decode_iterations_are_bounded_by_all_and_none_accepted(tokens, alpha, k):
    m = np.array(tokens)
    iterations = sample_decode_iterations(m, alpha, k, np.random.default_rng(0))
    assert np.all(iterations >= -(-m // (k + 1)))  # at most k + 1 tokens per iteration
    assert np.all(iterations <= m)  # at least one
    if alpha == 0:
        assert np.array_equal(iterations, m)


def test_batch_one_emits_the_expected_tokens_per_iteration():
    """The engine at batch 1: each request decodes for its own sampled iterations, and the
    tokens per iteration it achieves match (1 - a^(k+1)) / (1 - a) (statistically)."""
    scenario = spec_chat()
    dep = scenario.deployment("chat-8b")
    config, _, timer = replica_setup(scenario, dep)
    # long outputs: the last iteration's unused tokens bias tokens/iteration by about
    # E[overshoot] / tokens < 1 / 2048 (renewal theory), far inside the test's 4 standard errors
    n, prompt, output = 600, 16, 2049
    rng = np.random.default_rng(3)
    iterations = sample_decode_iterations(np.full(n, output - 1), 0.7, 4, rng)
    gap = 100.0  # far apart: always alone on the replica
    requests = RequestArrays(np.arange(n) * gap, np.full(n, prompt), np.full(n, output), np.zeros(n, int),
                             decode_iterations=iterations)  # fmt: skip
    record = simulate(EngineConfig(config), timer, requests, duration_s=n * gap, drain_s=gap)
    assert (record.status == "completed").all()
    assert np.array_equal(record.output_tokens, np.full(n, output))  # real tokens in the record
    steps = np.rint(iterations * timer.speculation.tokens_per_iteration).astype(int)
    mid_context = prompt + 1 + (steps - 1) / 2
    per_iteration = np.array([timer.speculative_iteration_s(1, c) for c in mid_context])
    achieved_iterations = (record.finish_s - record.first_token_s) / per_iteration
    # each request takes its own iterations (up to the rounding to token steps)
    assert np.abs(achieved_iterations - iterations).max() <= 0.5 / timer.speculation.tokens_per_iteration + 1e-6
    tokens_per_iteration = (output - 1) / achieved_iterations
    expected = expected_tokens_per_iteration(0.7, 4)
    assert abs(n * (output - 1) / achieved_iterations.sum() - expected) < 4 * tokens_per_iteration.std() / math.sqrt(n)


def test_gain_shrinks_as_the_batch_grows():
    """Verification multiplies the GEMM rows by k + 1: a large gain at batch 1, less at every
    larger batch, a loss when the batch is compute bound."""
    base = chat_scenario()
    spec = spec_chat()
    _, _, plain = replica_setup(base, base.deployment("chat-8b"))
    _, _, fast = replica_setup(spec, spec.deployment("chat-8b"))
    speedups = [plain.decode_run(b, b * 1500).iteration_s(0) / fast.decode_run(b, b * 1500).iteration_s(0)
                for b in (1, 8, 32, 128, 256)]  # fmt: skip
    assert speedups[0] > 1.2  # a 1B draft is a fifth of the 8B: its four steps cost much
    assert all(a > b for a, b in itertools.pairwise(speedups))
    assert speedups[-1] < 1.0


def test_nothing_accepted_is_pure_overhead():
    scenario = spec_chat({**DRAFT, "acceptance_rate": 0.0, "draft_tokens": 1})
    base = chat_scenario()
    _, _, plain = replica_setup(base, base.deployment("chat-8b"))
    _, _, spec = replica_setup(scenario, scenario.deployment("chat-8b"))
    for b in (1, 64):
        assert spec.decode_run(b, b * 1000).iteration_s(0) > plain.decode_run(b, b * 1000).iteration_s(0)


def test_draft_memory_comes_out_of_the_kv_cache():
    base = chat_scenario()
    plain = replica_setup(base, base.deployment("chat-8b"))[0].kv_blocks
    draft = replica_setup(spec_chat(), spec_chat().deployment("chat-8b"))[0].kv_blocks
    mtp = spec_chat({"method": "mtp", "draft_tokens": 2, "acceptance_rate": 0.8})
    head = replica_setup(mtp, mtp.deployment("chat-8b"))[0].kv_blocks
    assert draft < head < plain
    # the 1B draft's own KV (16 layers x 8 heads x 64) is 1/8 of the 8B's (32 x 8 x 128)
    assert plain / draft > 1.125


def test_draft_head_is_one_layer_sharing_the_tables():
    target = model_of(chat_scenario(), "llama-3-8b")
    head = draft_head_model(target)
    embedding = target.vocab_size * target.hidden_size
    assert head.layers == 1
    assert head.parameters == pytest.approx((target.parameters - 2 * embedding) / target.layers + 2 * embedding)


def test_serve_reports_speculation_and_workload_override():
    result = serve(spec_chat(), "chat-8b", rps=2, duration_s=60)
    spec = result.summary["speculative"]
    assert spec["tokens_per_iteration"] == pytest.approx(expected_tokens_per_iteration(0.7, 4))
    override = serve(spec_chat(workload={"speculative_acceptance_rate": 0.5}), "chat-8b", rps=2, duration_s=60)
    assert override.summary["speculative"]["acceptance_rate"] == 0.5
    assert override.summary["tpot_ms"]["p50"] > result.summary["tpot_ms"]["p50"]
    plain = serve(chat_scenario(), "chat-8b", rps=2, duration_s=60)
    assert "speculative" not in plain.summary
    assert result.summary["tpot_ms"]["p50"] < 0.9 * plain.summary["tpot_ms"]["p50"]


@pytest.mark.parametrize(
    ("speculative", "message"),
    [
        ({**DRAFT, "draft_model": "no-such-model"}, "unknown model"),
        ({**DRAFT, "draft_model": "mistral-7b"}, "tokenizer"),
        ({**DRAFT, "draft_model": "llama-3-70b"}, "not smaller"),
        ({"method": "mtp", "draft_model": "llama-3.2-1b", "draft_tokens": 2, "acceptance_rate": 0.8}, "mtp"),
        ({"draft_tokens": 2, "acceptance_rate": 0.8}, "needs draft_model"),
        ({**DRAFT, "acceptance_rate": 1.0}, "less than 1"),
    ],
)
def test_bad_speculation_is_a_clear_problem(speculative, message):
    with pytest.raises(ScenarioError) as err:
        spec_chat(speculative)
    assert message in str(err.value)


def test_cost_figures_price_speculation_and_the_drafts_memory():
    from simulator.inference.replica_cost import replica_cost_figures

    plain = replica_cost_figures(chat_scenario(), "chat-8b", 1, 1000, 1000)
    spec = replica_cost_figures(spec_chat(), "chat-8b", 1, 1000, 1000)
    assert spec["decode_tokens_per_iteration"] == pytest.approx(expected_tokens_per_iteration(0.7, 4))
    assert spec["decode_tokens_per_s"] > 1.2 * plain["decode_tokens_per_s"]
    assert spec["kv_cache_tokens"] < plain["kv_cache_tokens"]
    assert plain["decode_tokens_per_iteration"] == 1.0


def test_speculation_with_adapters_prices_a_full_batchs_verification():
    """b (k + 1) verification tokens pass the scheduler's token budget: the adapter tables
    reach them too (they once stopped at the budget and raised an IndexError)."""
    scenario = chat_scenario({"speculative": DRAFT, "adapters": 4, "max_batched_tokens": 256})
    dep = {d.name: d for d in scenario.deployments}["chat-8b"]
    _, _, timer = replica_setup(scenario, dep)
    full = dep.max_batch_size
    assert timer.speculative_iteration_s(full, 1000.0 * full) > 0
    assert timer.decode_run(full, 1000.0 * full, distinct_adapters=4).iteration_s(0) > \
        timer.decode_run(full, 1000.0 * full).iteration_s(0)


def test_cost_figures_under_speculation_are_per_iteration_and_take_any_batch():
    from simulator.inference.replica_cost import replica_cost_figures

    dep = {d.name: d for d in spec_chat().deployments}["chat-8b"]
    wide = 2 * dep.max_batch_size  # a what-if past the deployment's batch limit
    figures = replica_cost_figures(spec_chat(), "chat-8b", wide, 1000, 1000)
    tokens = expected_tokens_per_iteration(0.7, 4)
    # an iteration (k drafts + the verification) emits E[X] tokens per request
    assert figures["decode_tokens_per_s"] == pytest.approx(wide * tokens / (figures["decode_iteration_ms"] / 1e3))
    assert figures["max_requests_at_context"] <= dep.max_batch_size


def test_output_tokens_per_s_count_the_real_outputs_not_the_token_steps():
    """Short answers (8 tokens) end inside a verification: the accepted tokens past the end
    are not output (they once counted, x1.26 the real output here)."""
    short = {"output_tokens": {"distribution": "fixed", "value": 8}}
    spec = serve(spec_chat(workload=short), "chat-8b", rps=4, duration_s=300, seed=5).summary
    plain = serve(chat_scenario(workload=short), "chat-8b", rps=4, duration_s=300, seed=5).summary
    assert spec["output_tokens_per_s"] == pytest.approx(plain["output_tokens_per_s"], rel=0.03)
