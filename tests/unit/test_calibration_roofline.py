"""The roofline terms calibration added: KV bandwidth, element-wise traffic, per-layer overhead.

Their defaults leave the cost model as it was (published GPU profiles are unchanged); set, each
adds exactly its term, and ``iteration_terms`` (the event-driven engine's tables) stays equal to
``iteration_time_s``.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.catalog import bundled_catalog
from simulator.perf.memory import kv_bytes_per_token
from simulator.perf.profile import EfficiencyParameters, bundled_profile, bundled_profile_names
from simulator.perf.roofline import ServingCostModel, elementwise_bytes_per_token_layer

CAT = bundled_catalog()
EFF = EfficiencyParameters(
    gemm_efficiency_max=0.6, gemm_half_saturation_tokens=20.0, attention_efficiency=0.1,
    memory_bandwidth_efficiency=0.25, interconnect_efficiency=0.5, allreduce_latency_s=1e-4,
    iteration_overhead_s=1e-4, training_mfu=0.4,
)  # fmt: skip


def cm(eff=EFF, model="tiny-cpu", gpu="cpu-local", dtype="bf16", tp=1):
    return ServingCostModel(CAT.models[model], CAT.gpus[gpu], dtype, dtype, tp, eff)


def test_defaults_are_the_plain_roofline():
    assert EFF.kv_bandwidth_efficiency is None
    assert EFF.elementwise_traffic_factor == 0.0
    assert EFF.layer_overhead_s == 0.0
    shared = set()
    for name in bundled_profile_names():
        p = bundled_profile(name)
        if p.source == "published":
            assert p.parameters.elementwise_traffic_factor == 0.0
            shared.add((p.parameters.layer_overhead_s, p.parameters.sequence_overhead_s,
                        p.parameters.compute_memory_overlap))  # fmt: skip
    # the host and kernel terms were fitted once across GPUs (calibration.serving): one value
    assert len(shared) == 1


def test_kv_bandwidth_efficiency_scales_only_the_kv_read():
    base = float(cm().decode_step_s(1, 4000))
    slower = float(
        cm(EFF.model_copy(update={"kv_bandwidth_efficiency": 0.125})).decode_step_s(1, 4000)
    )
    kv = kv_bytes_per_token(CAT.models["tiny-cpu"], "bf16") * 4001
    bw = CAT.gpus["cpu-local"].hbm_tb_per_s * 1e12
    assert slower - base == pytest.approx(kv / (bw * 0.125) - kv / (bw * 0.25), rel=1e-9)


def test_layer_overhead_adds_layers_times_seconds():
    m = CAT.models["tiny-cpu"]
    eff = EFF.model_copy(update={"layer_overhead_s": 3e-4})
    delta = float(cm(eff).decode_step_s(8, 100)) - float(cm().decode_step_s(8, 100))
    assert delta == pytest.approx(m.layers * 3e-4, rel=1e-9)


def test_elementwise_traffic_adds_to_compute_bound_prefill():
    m = CAT.models["tiny-cpu"]
    eff = EFF.model_copy(update={"elementwise_traffic_factor": 2.0})
    tokens = 4096
    delta = float(cm(eff).prefill_s(tokens)) - float(cm().prefill_s(tokens))
    per_layer = elementwise_bytes_per_token_layer(m.hidden_size, 512, 512, m.ffn_hidden_size, 2.0)
    assert per_layer == (10 * 512 + 2 * 1024 + 3 * 2048) * 2.0
    bw = CAT.gpus["cpu-local"].hbm_tb_per_s * 1e12 * 0.25
    assert delta == pytest.approx(2.0 * m.layers * per_layer * tokens / bw, rel=1e-9)


def test_fp32_activations_are_four_bytes():
    eff = EFF.model_copy(update={"elementwise_traffic_factor": 1.0})
    assert cm(eff, dtype="fp32").elementwise_s_per_token == pytest.approx(
        2 * cm(eff, dtype="bf16").elementwise_s_per_token
    )


@pytest.mark.parametrize(
    "model,gpu,tp", [("tiny-cpu", "cpu-local", 1), ("llama-3-70b", "h100-sxm", 4)]
)
def test_iteration_terms_match_iteration_time_with_every_new_term(model, gpu, tp):
    eff = EFF.model_copy(update={"kv_bandwidth_efficiency": 0.05, "elementwise_traffic_factor": 1.7,
                                 "layer_overhead_s": 2.5e-4})  # fmt: skip
    c = cm(eff, model=model, gpu=gpu, tp=tp)
    terms = c.iteration_terms(600)
    rng = np.random.default_rng(0)
    for _ in range(50):
        p, b = int(rng.integers(0, 300)), int(rng.integers(0, 300))
        if p + b == 0:
            continue
        pairs, seqs, ctx = float(p * (p + 1) / 2), int(p > 0), float(b * rng.integers(1, 3000))
        t = p + b
        table = (max(terms.gemm_s[t] + terms.logits_s[b + seqs], terms.weights_s[t])
                 + max(terms.attention_s_per_pair * (pairs + ctx), terms.kv_s_per_token * (ctx + t))
                 + terms.comm_s[t] + terms.overhead_s)  # fmt: skip
        direct = float(c.iteration_time_s(p, pairs, seqs, b, ctx))
        assert table == pytest.approx(direct, rel=1e-9)
