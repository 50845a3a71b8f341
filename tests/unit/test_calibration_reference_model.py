"""The reference transformer and the micro-benchmark, on tiny shapes (fast; needs torch)."""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")

from calibration import benchmark
from calibration.benchmark_runtime import configured
from calibration.fit import fit
from calibration.pipeline import calibrate
from calibration.plan import BenchmarkPlan, TrainingShape
from calibration.reference_model import (
    Generator,
    build_model,
    parameter_count,
    training_step_s,
)
from simulator.catalog import ModelSpec, bundled_catalog
from simulator.perf.profile import bundled_profile

pytestmark = pytest.mark.torch

GQA = ModelSpec(name="gqa", parameters=1, layers=2, hidden_size=64, heads=4, kv_heads=2,
                ffn_hidden_size=160, vocab_size=97)  # fmt: skip

MICRO = BenchmarkPlan(
    name="micro", device="cpu", hidden_sizes=(64,), gemm_tokens=(1, 4, 32), gemm_max_flops=1e9,
    lm_head_vocab=256, head_dim=16, attention_heads=2, prefill_attention=((1, 16), (2, 32)),
    decode_attention=((1, 32), (4, 64)), elementwise_tokens=(16, 64), overhead_layers=(1, 2),
    training=(TrainingShape(64, 1, 1, 16),), memory_mib=(1,), repeats=2, min_repeat_s=0.001,
    rotate_bytes_min=2**20,
)  # fmt: skip


def test_parameter_count_matches_the_catalog_and_the_built_model():
    tiny = bundled_catalog().models["tiny-cpu"]
    assert parameter_count(tiny) == tiny.parameters
    for spec in (tiny, GQA):
        model = build_model(spec, torch.float32, 64)
        assert sum(p.numel() for p in model.parameters()) == parameter_count(spec)


def test_kv_cache_generation_matches_a_full_forward_pass():
    model = build_model(GQA, torch.float32, 64)
    generator = Generator(model, max_batch=3, max_tokens=40)
    prompts = torch.randint(0, GQA.vocab_size, (3, 11))
    with torch.inference_mode():
        first = model(prompts, generator.caches, 0, last_only=True)
        token = first[:, -1].argmax(-1, keepdim=True)
        second = model(token, generator.caches, 11)
        full = model(torch.cat([prompts, token], dim=1))
    torch.testing.assert_close(first[:, -1], full[:, 10], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(second[:, -1], full[:, 11], rtol=1e-4, atol=1e-4)


def test_generate_times_prefill_and_each_decode_step():
    model = build_model(GQA, torch.float32, 64)
    timing = Generator(model, 2, 40).generate(torch.randint(0, 97, (2, 8)), 5, time.perf_counter)
    assert timing.prefill_s > 0
    assert len(timing.decode_step_s) == 4 and all(t > 0 for t in timing.decode_step_s)


def test_training_step_updates_the_weights():
    model = build_model(GQA, torch.float32, 64)
    before = model.lm_head.weight.detach().clone()
    assert training_step_s(model, 2, 16, time.perf_counter) > 0
    assert not torch.equal(before, model.lm_head.weight)


def test_configured_runtime_restores_threads():
    threads = torch.get_num_threads()
    with configured("cpu", threads=1) as runtime:
        assert torch.get_num_threads() == 1 and runtime.uses_cpu_time
        assert runtime.describe()["clock"] == "thread CPU time"
    assert torch.get_num_threads() == threads


def test_micro_benchmark_fills_every_group_and_fits():
    labels = []
    with configured("cpu") as runtime:
        m = benchmark.run(
            MICRO, runtime, ["fp32"], "fp32", lambda label, i, n: labels.append((i, n))
        )
    assert labels[-1][0] == labels[-1][1] == len(labels)
    kinds = {g.kind for g in m.gemm}
    assert kinds == {"layer", "lm_head"} and len(m.gemm) == 6
    assert {a.phase for a in m.attention} == {"prefill", "decode"}
    assert len(m.elementwise) == 2 and len(m.overhead) == 2 and len(m.training) == 1
    assert {p.kind for p in m.memory} == {"copy", "read"}
    assert all(len(g.samples) == 2 and g.seconds > 0 for g in m.gemm)
    assert m.skipped and "all-reduce" in m.skipped[0]
    result = fit(
        m, bundled_catalog().gpus["cpu-local"], "fp32", bundled_profile("cpu-local").parameters
    )
    assert result.parameters.training_mfu > 0


def test_pipeline_interleaves_benchmark_and_reference(tmp_path):
    tiny = ModelSpec(name="tiny", parameters=1, layers=1, hidden_size=32, heads=2, kv_heads=2,
                     ffn_hidden_size=64, vocab_size=64)  # fmt: skip
    run = calibrate("cpu", plan=MICRO, dtype="fp32", reference_model=tiny, name="micro")
    assert run.accuracy is not None and len(run.accuracy.points) == 13
    assert run.profile.measurements["accuracy"]["setup"]["model"] == "tiny"
    assert run.profile.name == "micro" and run.profile.source == "measured"
    assert run.benchmark_s > 0 and run.check_s is not None and run.check_s > 0
