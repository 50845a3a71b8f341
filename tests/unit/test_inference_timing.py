"""Iteration pricing: the O(1) timer and the closed-form decode runs equal the cost model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.inference.timing import DecodeRun, IterationTimer
from simulator.scenario.resolve import serving_cost_model
from tests.inference_support import chat_dict


def _cost_models():
    """Dense bf16 TP1, fp8 TP4 (all-reduce), MoE, fp32 on CPU: every branch of the roofline."""
    data = chat_dict()
    data["deployments"] += [
        {"name": "moe", "pool": "serving", "model": "mixtral-8x7b", "tensor_parallel": 2},
        {"name": "big", "pool": "serving", "model": "deepseek-v3", "dtype": "fp8",
         "tensor_parallel": 16},
        {"name": "cpu", "pool": "cpu", "model": "tiny-cpu", "dtype": "fp32"},
    ]  # fmt: skip
    data["pools"].append({"name": "cpu", "gpu": "cpu-local", "max_gpus": 1,
                          "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 0}})  # fmt: skip
    from simulator.scenario.checks import validate_scenario_data

    scenario = validate_scenario_data(data)
    return {d.name: serving_cost_model(scenario, d) for d in scenario.deployments}


COST_MODELS = _cost_models()


@pytest.mark.parametrize("name", sorted(COST_MODELS))
def test_iteration_terms_reproduce_iteration_time(name):
    cm = COST_MODELS[name]
    rng = np.random.default_rng(0)
    prefill = rng.integers(0, 4000, 500)
    decode = rng.integers(0, 300, 500)
    seqs = rng.integers(0, 4, 500)
    pairs = prefill * rng.uniform(1, 3000, 500)
    ctx = decode * rng.uniform(1, 4000, 500)
    timer = IterationTimer.from_cost_model(cm, 4300)
    expected = cm.iteration_time_s(prefill, pairs, seqs, decode, ctx)
    got = [timer.iteration_s(int(p), float(q), int(s), int(b), float(c))
           for p, q, s, b, c in zip(prefill, pairs, seqs, decode, ctx)]  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(COST_MODELS)),
    batch=st.integers(1, 256),
    context=st.integers(1, 8000),
    n=st.integers(1, 3000),
)
def test_decode_run_sums_the_iterations(name, batch, context, n):
    cm = COST_MODELS[name]
    timer = IterationTimer.from_cost_model(cm, 256)
    c0 = batch * context
    run = timer.decode_run(batch, c0)
    i = np.arange(n)
    each = cm.iteration_time_s(decode_requests=batch, decode_context_tokens=c0 + batch * i)
    np.testing.assert_allclose([run.iteration_s(int(k)) for k in (0, n // 2, n - 1)],
                               each[[0, n // 2, n - 1]], rtol=1e-11)  # fmt: skip
    cumulative = np.concatenate([[0.0], np.cumsum(each)])
    for k in (0, 1, n // 3, n):
        assert run.elapsed_s(k) == pytest.approx(cumulative[k], rel=1e-10, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(
    fixed=st.floats(1e-4, 1e-1),
    alpha=st.floats(1e-10, 1e-6),
    kappa=st.floats(1e-10, 1e-6),
    batch=st.integers(1, 512),
    context=st.integers(1, 10_000),
    dt=st.floats(0, 500),
)
def test_iterations_until_inverts_elapsed(fixed, alpha, kappa, batch, context, dt):
    """The first boundary at or after dt: elapsed(n) >= dt > elapsed(n - 1)."""
    run = DecodeRun(fixed, alpha, kappa, batch, batch * context)
    n = run.iterations_until(dt)
    assert run.elapsed_s(n) >= dt
    if n > 0:
        assert run.elapsed_s(n - 1) < dt


def test_decode_run_switches_to_the_attention_branch():
    """When attention compute per token exceeds KV traffic the run's times follow that branch."""
    run = DecodeRun(fixed=0.01, alpha=2e-9, kappa=1e-9, b=10, c0=0)
    times = [0.01 + max(2e-9 * 10 * i, 1e-9 * (10 * i + 10)) for i in range(50)]
    assert [run.iteration_s(i) for i in range(50)] == pytest.approx(times, rel=1e-12)
    assert run.elapsed_s(50) == pytest.approx(sum(times), rel=1e-12)
    assert 0 < run.split < 50

