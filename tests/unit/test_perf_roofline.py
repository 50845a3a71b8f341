"""Cost model: hand-computed roofline cases."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.catalog import bundled_catalog
from simulator.perf.memory import kv_bytes_per_token, kv_cache_blocks, weight_bytes
from simulator.perf.profile import EfficiencyParameters
from simulator.perf.roofline import (
    ServingCostModel,
    gemm_efficiency,
    training_flops,
    training_time_s,
)

CAT = bundled_catalog()
EFF = EfficiencyParameters(
    gemm_efficiency_max=0.8, gemm_half_saturation_tokens=0.0, attention_efficiency=0.5,
    memory_bandwidth_efficiency=0.8, interconnect_efficiency=0.5, allreduce_latency_s=1e-5,
    iteration_overhead_s=0.002, training_mfu=0.4,
)  # fmt: skip


def model(name="llama-3-8b", dtype="bf16", tp=1, gpu="h100-sxm", eff=EFF):
    return ServingCostModel(CAT.models[name], CAT.gpus[gpu], dtype, "bf16", tp, eff)


def test_kv_bytes_per_token_llama3_70b():
    # 80 layers x 2 (K,V) x 8 kv heads x 128 dims x 2 bytes
    assert kv_bytes_per_token(CAT.models["llama-3-70b"], "bf16") == 80 * 2 * 8 * 128 * 2


def test_kv_bytes_mla():
    m = CAT.models["deepseek-v3"]
    assert kv_bytes_per_token(m, "bf16") == m.layers * m.kv_latent_dim * 2


def test_single_token_decode_is_weight_bandwidth_bound():
    cm = model()
    m = CAT.models["llama-3-8b"]
    emb = m.vocab_size * m.hidden_size
    weights = (m.parameters - emb) * 2  # embedding table is gathered, not streamed
    kv = kv_bytes_per_token(m, "bf16") * (100 + 1)
    expected = (weights + kv) / (3.35e12 * 0.8) + 0.002
    assert float(cm.decode_step_s(1, 100)) == pytest.approx(expected, rel=1e-9)


def test_large_prefill_is_compute_bound():
    cm = model()
    m = CAT.models["llama-3-8b"]
    c = 8192
    emb = m.vocab_size * m.hidden_size
    gemm = 2 * (m.parameters - 2 * emb) * c + 2 * emb * 1
    attn = 4 * m.layers * m.hidden_size * c * (c + 1) / 2
    expected = gemm / (989e12 * 0.8) + attn / (989e12 * 0.5) + 0.002
    assert float(cm.prefill_s(c)) == pytest.approx(expected, rel=1e-9)


def test_tensor_parallel_adds_allreduce_and_splits_work():
    one, four = model(tp=1), model(tp=4)
    m = CAT.models["llama-3-8b"]
    tokens = 4096
    ring = 2 * 3 / 4 * tokens * m.hidden_size * 2
    comm = 2 * m.layers * (1e-5 + ring / (450e9 * 0.5))
    t1 = float(one.prefill_s(tokens)) - 0.002
    t4 = float(four.prefill_s(tokens)) - 0.002
    assert t4 == pytest.approx(t1 / 4 + comm, rel=1e-9)


def test_fp8_uses_fp8_peak_and_halves_weight_bytes():
    bf, f8 = model(dtype="bf16"), model(dtype="fp8")
    assert float(f8.decode_step_s(1, 1)) < float(bf.decode_step_s(1, 1))
    assert weight_bytes(CAT.models["llama-3-8b"], "fp8") * 2 == weight_bytes(CAT.models["llama-3-8b"], "bf16")


def test_moe_small_batch_reads_few_experts():
    cm = model("mixtral-8x7b", tp=2)
    m = CAT.models["mixtral-8x7b"]
    one = cm._weight_bytes_read(np.array(1.0))
    many = cm._weight_bytes_read(np.array(1e6))
    assert many == pytest.approx((m.parameters - m.vocab_size * m.hidden_size) * 2, rel=1e-6)
    assert one < 0.45 * many  # 2 of 8 experts touched


def test_vectorised_matches_scalar():
    cm = model()
    batch = np.array([1, 8, 64, 256])
    vec = cm.decode_step_s(batch, 1000)
    assert vec.shape == (4,)
    assert np.all(np.diff(vec) > 0)
    for b, t in zip(batch, vec, strict=True):
        assert float(cm.decode_step_s(int(b), 1000)) == pytest.approx(t)


def test_empty_iteration_costs_nothing():
    assert float(model().iteration_time_s()) == 0.0


def test_gemm_efficiency_curve():
    eff = EFF.model_copy(update={"gemm_half_saturation_tokens": 64.0})
    assert float(gemm_efficiency(64, eff)) == pytest.approx(0.4)
    assert float(gemm_efficiency(1e9, eff)) == pytest.approx(0.8, rel=1e-6)


def test_kv_blocks_llama3_8b_on_h100():
    m, g = CAT.models["llama-3-8b"], CAT.gpus["h100-sxm"]
    # runtime 1 GiB + activations of 8192 tokens (gate+up 2 x 14336 and 4 x 4096 residual-stream
    # elements, bf16) + fp32 logits of 256 rows
    reserve = 2**30 + 8192 * (2 * 14336 + 4 * 4096) * 2 + 256 * 128256 * 4
    free = 80 * 2**30 * 0.9 - m.parameters * 2 - reserve
    per_block = kv_bytes_per_token(m, "bf16") * 16
    assert kv_cache_blocks(m, g, "bf16", "bf16", 1, 0.9, 16) == int(free // per_block)


def test_kv_fraction_of_free_memory_tensorrt_style():
    m, g = CAT.models["llama-3-8b"], CAT.gpus["h100-sxm"]
    reserve = 2**30 + 8192 * (2 * 14336 + 4 * 4096) * 2 + 256 * 128256 * 4
    free = (80 * 2**30 - m.parameters * 2 - reserve) * 0.95
    per_block = kv_bytes_per_token(m, "bf16") * 32
    got = kv_cache_blocks(m, g, "bf16", "bf16", 1, 0.95, 32, fraction_of_free=True)
    assert got == int(free // per_block)


def test_kv_heads_replicate_when_tp_exceeds_them():
    m = CAT.models["llama-3-70b"]  # 8 KV heads
    per_rank_one_head = 80 * 2 * 1 * 128 * 2
    assert kv_bytes_per_token(m, "bf16", 8) == 8 * per_rank_one_head  # one head per rank
    assert kv_bytes_per_token(m, "bf16", 16) == 16 * per_rank_one_head  # 2x the model's KV
    assert kv_bytes_per_token(m, "bf16", 4) == kv_bytes_per_token(m, "bf16")


def test_mla_latent_is_copied_on_every_rank():
    m = CAT.models["deepseek-v3"]
    assert kv_bytes_per_token(m, "fp8", 8) == 8 * m.layers * 576 * 1


def test_fp8_gemms_use_their_own_efficiency():
    eff = EFF.model_copy(update={"fp8_gemm_efficiency_max": 0.6})
    bf16 = model(eff=eff)
    fp8 = model(dtype="fp8", eff=eff)
    assert fp8.gemm_peak_flops_per_s == pytest.approx(1979e12 * 0.6 / 0.8)
    assert bf16.gemm_peak_flops_per_s == pytest.approx(989e12)


def test_fp4_falls_back_to_bf16_units_without_fp4_tensor_cores():
    assert CAT.gpus["h100-sxm"].compute_dtype_for("fp4") == "bf16"


def test_partial_overlap_adds_the_hidden_share():
    c, m = np.array([2.0, 5.0]), np.array([3.0, 1.0])
    from simulator.perf.roofline import overlapped

    assert overlapped(c, m, 1.0).tolist() == [3.0, 5.0]
    assert overlapped(c, m, 0.0).tolist() == [5.0, 6.0]
    assert overlapped(c, m, 0.5).tolist() == [4.0, 5.5]


def test_host_overheads_per_sequence_and_chunk():
    eff = EFF.model_copy(update={"sequence_overhead_s": 1e-5, "prefill_chunk_overhead_s": 2e-5})
    base = model()
    more = model(eff=eff)
    args = {"prefill_tokens": 100, "prefill_attention_pairs": 5050, "prefill_sequences": 1,
                "decode_requests": 10, "decode_context_tokens": 5000, "prefill_chunks": 2}
    extra = float(more.iteration_time_s(**args)) - float(base.iteration_time_s(**args))
    assert extra == pytest.approx(11 * 1e-5 + 2 * 2e-5)


def test_moe_expert_gemms_run_at_the_per_expert_row_count():
    eff = EFF.model_copy(update={"gemm_half_saturation_tokens": 64.0})
    cm = model("mixtral-8x7b", eff=eff)
    t = 64.0
    m = CAT.models["mixtral-8x7b"]
    touched = 1 - (1 - 2 / 8) ** t
    rows = t * 2 / (8 * touched)  # 16 rows per touched expert
    expert = (m.parameters - m.active) / (1 - 2 / 8) / 8
    dense = m.active - 2 * m.vocab_size * m.hidden_size - 2 * expert
    expected = (2 * dense * t / (989e12 * 0.8 * t / (t + 64))
                + 2 * 2 * expert * t / (989e12 * 0.8 * rows / (rows + 64)))  # fmt: skip
    assert float(cm._gemm_compute_s(np.array([t]))[0]) == pytest.approx(expected, rel=1e-9)


def test_mla_decode_attention_flops():
    cm = model("deepseek-v3", tp=8)
    # absorbed MLA: 2 x heads x (2 x 576 - 64) per layer and pair
    assert cm.decode_flops_per_pair == 2 * 61 * 128 * (2 * 576 - 64)
    assert cm.decode_flops_per_pair / (4 * 61 * 128 * 128) == pytest.approx(4.25)


def test_tp_group_across_nodes_pays_the_scale_out_link():
    inside = model("llama-3-405b", tp=8)
    across = model("llama-3-405b", tp=16)
    assert inside.tp_link_bytes_per_s == pytest.approx(450e9 * 0.5)
    assert across.tp_link_bytes_per_s == pytest.approx(50e9 * 0.5)


def test_training_time_is_flops_over_peak_times_mfu():
    m, g = CAT.models["llama-3-70b"], CAT.gpus["h100-sxm"]
    flops = training_flops(m, 1e12, 8192)
    n = m.parameters - m.vocab_size * m.hidden_size  # the input embedding is a lookup
    assert flops == pytest.approx((6 * n + 6 * 80 * 8192 * 8192) * 1e12)
    t = training_time_s(m, 1e12, 1024, g, "bf16", 8192, 0.4)
    assert t == pytest.approx(flops / (1024 * 989e12 * 0.4))


def test_expert_parallel_swaps_the_mlp_all_reduce_for_an_all_to_all_and_pays_imbalance():
    from simulator.perf.roofline import EXPERT_PARALLEL_IMBALANCE

    tp_only = model("mixtral-8x7b", tp=8)
    ep = ServingCostModel(CAT.models["mixtral-8x7b"], CAT.gpus["h100-sxm"], "bf16", "bf16", 8, EFF,
                          expert_parallel=8)  # fmt: skip
    t = np.array([256.0])
    m = CAT.models["mixtral-8x7b"]
    hidden = 256 * m.hidden_size * 2
    link = 450e9 * 0.5
    allreduce = 1e-5 + 2 * 7 / 8 * hidden / link
    all_to_all = 2 * (1e-5 + hidden / 8 * 2 * 7 / 8 / link)
    assert float(tp_only._comm_s(t)[0]) == pytest.approx(m.layers * 2 * allreduce)
    assert float(ep._comm_s(t)[0]) == pytest.approx(m.layers * (allreduce + all_to_all))
    dense_only = float(model("llama-3-8b", tp=8)._gemm_compute_s(t)[0])
    assert dense_only > 0
    routed_tp = float(tp_only._gemm_compute_s(t)[0])
    routed_ep = float(ep._gemm_compute_s(t)[0])
    assert routed_tp < routed_ep < routed_tp * EXPERT_PARALLEL_IMBALANCE
