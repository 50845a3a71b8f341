"""LoRA arithmetic by hand: adapter size, serving overhead per iteration, KV memory, LoRA
fine-tuning FLOPs, and the scenario checks around them."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from simulator.catalog import bundled_catalog
from simulator.common.errors import ScenarioError
from simulator.inference.api import replica_kv_blocks, replica_setup
from simulator.inference.timing import IterationTimer
from simulator.perf.lora import (
    LORA_KERNEL_OVERHEAD_S,
    adapter_bytes,
    adapter_parameters,
    adapter_terms,
    lora_flops_per_token,
    lora_training_fits,
    lora_training_flops,
)
from simulator.perf.memory import kv_bytes_per_token
from simulator.perf.roofline import training_flops
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.resolve import serving_cost_model
from simulator.training.plan import plan_job
from tests.conftest import minimal_scenario_dict

CATALOG = bundled_catalog()
LLAMA_8B = CATALOG.models[
    "llama-3-8b"
]  # h 4096, 32 q heads / 8 kv heads x 128, ffn 14336, 32 layers
H100 = CATALOG.gpus["h100-sxm"]

# per layer, d_in + d_out: q 4096+4096, k 4096+1024, v 4096+1024, o 4096+4096 = 26,624;
# gate 4096+14336, up 4096+14336, down 14336+4096 = 55,296; all seven = 81,920
ATTENTION_PER_LAYER = 8192 + 5120 + 5120 + 8192
ALL_PER_LAYER = ATTENTION_PER_LAYER + 3 * 18432


def scenario(mutate=None):
    data = minimal_scenario_dict()
    if mutate:
        mutate(data)
    return validate_scenario_data(data)


# ---------------------------------------------------------------------- adapter size and FLOPs


def test_adapter_parameters_and_bytes_by_hand():
    assert ALL_PER_LAYER == 81_920
    assert adapter_parameters(LLAMA_8B, 16, "all_linear") == 16 * 81_920 * 32 == 41_943_040
    assert adapter_parameters(LLAMA_8B, 16, "attention") == 16 * 26_624 * 32 == 13_631_488
    assert adapter_parameters(LLAMA_8B, 64, "all_linear") == 4 * 41_943_040  # linear in r
    assert adapter_bytes(LLAMA_8B, 16) == 2 * 41_943_040 == 80 * 2**20  # 80 MiB in bf16
    assert adapter_bytes(LLAMA_8B, 16, element_bytes=4.0) == 160 * 2**20


def test_lora_flops_per_token_is_two_r_din_plus_dout_per_matrix():
    # x A: 2 r d_in, (x A) B: 2 r d_out, summed over the matrices and layers
    assert lora_flops_per_token(LLAMA_8B, 16) == 2 * 16 * 81_920 * 32
    assert lora_flops_per_token(LLAMA_8B, 8, "attention") == 2 * 8 * 26_624 * 32


def test_moe_adapters_store_every_expert_and_run_the_active_ones():
    mixtral = CATALOG.models["mixtral-8x7b"]
    ffn = 3 * (mixtral.hidden_size + mixtral.ffn_hidden_size)
    attention = adapter_parameters(mixtral, 1, "attention") / mixtral.layers
    assert adapter_parameters(mixtral, 1) == (attention + mixtral.experts * ffn) * mixtral.layers
    assert (
        lora_flops_per_token(mixtral, 1)
        == 2 * (attention + mixtral.experts_per_token * ffn) * mixtral.layers
    )


# ---------------------------------------------------------------------- serving overhead


def test_adapter_overhead_is_fixed_plus_max_of_flops_and_distinct_adapter_bytes():
    cm = serving_cost_model(scenario(), "small")
    eff = cm.efficiency
    terms = adapter_terms(LLAMA_8B, H100, eff, 1, 16, "all_linear", 512)
    fixed = 2 * 7 * 32 * LORA_KERNEL_OVERHEAD_S  # shrink + expand x 7 matrices x 32 layers
    assert terms.fixed_s == pytest.approx(fixed, rel=1e-12) and fixed == pytest.approx(1.792e-3)
    per_adapter = 80 * 2**20 / (H100.hbm_tb_per_s * 1e12 * eff.memory_bandwidth_efficiency)
    assert terms.bytes_s_per_adapter == pytest.approx(per_adapter, rel=1e-12)
    rate = (
        H100.bf16_tflops
        * 1e12
        * eff.gemm_efficiency_max
        * 64
        / (64 + eff.gemm_half_saturation_tokens)
    )
    assert terms.flops_s[64] == pytest.approx(64 * 2 * 16 * 81_920 * 32 / rate, rel=1e-12)
    assert terms.time_s(64, 0) == 0.0 and terms.time_s(0, 3) == 0.0
    for distinct in (1, 5, 40):
        expected = fixed + max(terms.flops_s[64], distinct * per_adapter)
        assert terms.time_s(64, distinct) == pytest.approx(expected, rel=1e-12)
    # decode (memory-bound): every further distinct adapter costs one adapter read
    assert terms.time_s(64, 6) - terms.time_s(64, 5) == pytest.approx(per_adapter, rel=1e-9)
    # tensor parallelism splits the per-adapter bytes, not the kernel overheads
    tp2 = adapter_terms(LLAMA_8B, H100, eff, 2, 16, "all_linear", 512)
    assert tp2.fixed_s == terms.fixed_s
    assert tp2.bytes_s_per_adapter == pytest.approx(per_adapter / 2, rel=1e-12)


def test_timer_adds_the_adapter_term_and_nothing_without_adapters():
    cm = serving_cost_model(scenario(), "small")
    terms = adapter_terms(LLAMA_8B, H100, cm.efficiency, 1, 16, "all_linear", 300)
    plain = IterationTimer.from_cost_model(cm, 300)
    lora = IterationTimer.from_cost_model(cm, 300, terms)
    args = (120, 120 * 200.5, 1, 30, 30 * 900)
    assert lora.iteration_s(*args) == plain.iteration_s(*args)  # no adapter in the batch
    assert lora.iteration_s(*args, 7) == pytest.approx(
        plain.iteration_s(*args) + terms.time_s(150, 7), rel=1e-12
    )
    run0, run7 = plain.decode_run(30, 27_000), lora.decode_run(30, 27_000, 7)
    for i in (0, 10, 500):
        assert run7.iteration_s(i) - run0.iteration_s(i) == pytest.approx(
            terms.time_s(30, 7), rel=1e-9
        )
    assert plain.decode_run(30, 27_000, 0).elapsed_s(99) == run0.elapsed_s(99)


# ---------------------------------------------------------------------- memory


def test_resident_adapters_leave_the_kv_cache():
    def with_adapters(n, cap=None):
        def mutate(data):
            data["deployments"][0].update(adapters=n, max_adapters_per_batch=cap)

        return scenario(mutate)

    base = scenario()
    dep = base.deployments[0]
    cm = serving_cost_model(base, dep)
    blocks0 = replica_kv_blocks(cm, dep)
    per_block = kv_bytes_per_token(LLAMA_8B, "bf16") * 16  # 128 KiB per token x 16 tokens
    for n, cap, resident in ((50, None, 50), (50, 8, 8), (3, 8, 3)):
        s = with_adapters(n, cap)
        blocks = replica_kv_blocks(cm, s.deployments[0])
        assert blocks0 - blocks == pytest.approx(resident * 80 * 2**20 / per_block, abs=1)
        assert replica_setup(s, s.deployments[0])[0].kv_blocks == blocks
    config, _, timer = replica_setup(base, dep)
    assert (
        config.kv_blocks == blocks0
        and timer.adapters is None
        and config.max_adapters_per_batch is None
    )


# ---------------------------------------------------------------------- training


def test_lora_training_flops_by_hand():
    tokens, seq = 1e9, 4096
    n = LLAMA_8B.parameters - LLAMA_8B.vocab_size * LLAMA_8B.hidden_size  # embedding: a lookup
    lora = 16 * 81_920 * 32
    attention = 6 * 32 * 4096 * seq
    assert lora_training_flops(LLAMA_8B, tokens, seq, 16) == pytest.approx(
        (4 * n + 6 * lora + attention) * tokens, rel=1e-12
    )
    full = training_flops(LLAMA_8B, tokens, seq)
    assert full == pytest.approx((6 * n + attention) * tokens, rel=1e-12)
    # the saving is the frozen weights' gradients, 2 N D, less the adapters' own 6 N_lora D
    assert full - lora_training_flops(LLAMA_8B, tokens, seq, 16) == pytest.approx(
        (2 * n - 6 * lora) * tokens, rel=1e-9
    )


def test_lora_job_plan_uses_lora_flops_at_the_same_throughput():
    def job(method):
        def mutate(data):
            data["training_jobs"][0].update(
                method=method, lora_rank=16, mfu=0.4, tokens=1e9, sequence_length_tokens=4096
            )

        return plan_job(scenario(mutate), 0)

    full, lora = job("full"), job("lora")
    assert lora.flops == pytest.approx(lora_training_flops(LLAMA_8B, 1e9, 4096, 16), rel=1e-12)
    assert full.flops == pytest.approx(training_flops(LLAMA_8B, 1e9, 4096), rel=1e-12)
    peak = H100.bf16_tflops * 1e12
    assert lora.spec.work_s == pytest.approx(lora.flops / (8 * peak * 0.4), rel=1e-12)
    assert full.spec.work_s == pytest.approx(full.flops / (8 * peak * 0.4), rel=1e-12)
    assert 0.66 < lora.spec.work_s / full.spec.work_s < 0.75  # ~4/6, plus the attention term


def test_lora_job_memory_check():
    fits, need, _ = lora_training_fits(LLAMA_8B, 16, 2.0, H100, 1)
    assert fits and need == pytest.approx(LLAMA_8B.parameters * 2 + 41_943_040 * 16)

    def big(data, gpus):
        data["pools"][0]["max_gpus"] = 64
        data["training_jobs"][0].update(model="llama-3-405b", method="lora", gpus=gpus)

    with pytest.raises(ScenarioError, match="LoRA fine-tune of llama-3-405b.*raise gpus"):
        scenario(lambda d: big(d, 8))
    scenario(lambda d: big(d, 16))  # 810 GB of bf16 weights over 16 x 80 GB: fits
    with pytest.raises(ScenarioError, match=r"llama-3-405b on 8 x h100-sxm: does not fit in GPU memory.*GiB over"):
        scenario(lambda d: d["training_jobs"][0].update(model="llama-3-405b", gpus=8))  # full: 16 B/param


# ---------------------------------------------------------------------- scenario checks


def test_workload_must_address_adapters_its_deployment_serves():
    def mutate(data, served):
        data["deployments"][0]["adapters"] = served
        data["workloads"][0]["adapters"] = 20

    with pytest.raises(
        ScenarioError, match="addresses 20 adapters but deployment 'small' serves 5"
    ):
        scenario(lambda d: mutate(d, 5))
    scenario(lambda d: mutate(d, 20))


def test_adapters_that_leave_no_kv_cache_are_refused():
    def mutate(data):
        data["deployments"][0].update(adapters=1000, adapter_rank=64)

    with pytest.raises(
        ScenarioError, match="1000 adapters of rank 64 take .* none for the KV cache"
    ):
        scenario(mutate)
    scenario(lambda d: (mutate(d), d["deployments"][0].update(max_adapters_per_batch=16)))


def test_schema_defaults_are_the_old_behaviour():
    s = scenario()
    dep, wl, job = s.deployments[0], s.workloads[0], s.training_jobs[0]
    assert (dep.adapters, dep.adapter_rank, dep.max_adapters_per_batch) == (0, 16, None)
    assert (wl.adapters, wl.adapter_zipf_exponent, wl.retrieval) == (0, 0.0, None)
    assert (job.method, job.lora_rank) == ("full", 16)
    data = copy.deepcopy(minimal_scenario_dict())
    data["training_jobs"][0]["method"] = "qlora"
    with pytest.raises(ScenarioError, match="method"):
        validate_scenario_data(data)
    assert np.isfinite(adapter_bytes(LLAMA_8B, 1))
