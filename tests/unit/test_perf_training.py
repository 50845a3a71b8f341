"""The training step-time model: each term against a hand computation, memory, the layout rule."""

from __future__ import annotations

import math

import pytest

from simulator.catalog import GpuSpec, ModelSpec, bundled_catalog
from simulator.perf.profile import EfficiencyParameters
from simulator.perf.training import (
    OVERLAP_SM_SHARE,
    Layout,
    LayoutError,
    LayoutRequest,
    TrainingJobShape,
    activation_bytes_per_token_layer,
    best_layout,
    default_global_batch_tokens,
    expert_parameters,
    memory_bytes_per_gpu,
    step_time,
)

CAT = bundled_catalog()
#: A toy model whose terms are easy to compute by hand: 2 layers, hidden 1024, MHA.
TOY = ModelSpec(
    name="toy", parameters=2 * (4 * 1024**2 + 3 * 1024 * 4096) + 2 * 1000 * 1024, layers=2,
    hidden_size=1024, heads=8, kv_heads=8, ffn_hidden_size=4096, vocab_size=1000,
)  # fmt: skip
GPU = GpuSpec(
    name="toy-gpu", vendor="test", bf16_tflops=100, fp32_tflops=10, hbm_gib=80, hbm_tb_per_s=1.0,
    interconnect_gb_per_s=100, internode_gb_per_s=10, tdp_w=500, gpus_per_node=8,
)  # fmt: skip
EFF = EfficiencyParameters(
    gemm_efficiency_max=0.5, gemm_half_saturation_tokens=0.0, attention_efficiency=0.25,
    memory_bandwidth_efficiency=0.5, interconnect_efficiency=1.0, allreduce_latency_s=0.0,
    iteration_overhead_s=0.0, training_kernel_efficiency=0.5,
)  # fmt: skip
SEQ = 2048


def shape(gpus: int = 1, batch_tokens: float = 4 * SEQ, gpu: GpuSpec = GPU, model: ModelSpec = TOY) -> TrainingJobShape:
    return TrainingJobShape(model, gpu, "bf16", gpus, SEQ, batch_tokens)


def per_token_s(model: ModelSpec = TOY) -> float:
    """Seconds per token on one GPU, by hand from the module's formulas."""
    matmul = 6 * (model.parameters - model.vocab_size * model.hidden_size) / (100e12 * 0.5)
    attention = 6 * model.layers * 1024 * SEQ / (100e12 * 0.25)
    elements = model.layers * 3 * (12 * 1024 + 3 * 4096) + 3 * model.vocab_size * 2
    elementwise = elements * 2 / (1e12 * 0.5)
    return (matmul + attention + elementwise) / 0.5


def test_single_gpu_step_is_the_roofline_over_kernel_efficiency() -> None:
    st = step_time(shape(), Layout(), EFF)
    optimizer = TOY.parameters * 30 / (1e12 * 0.5)
    assert st.micro_batches == 4 and st.tokens_per_step == 4 * SEQ
    assert st.compute_s == pytest.approx(per_token_s() * 4 * SEQ + optimizer, rel=1e-12)
    assert st.step_s == st.compute_s  # no other term on one GPU
    assert st.mfu == pytest.approx(st.model_flops_per_step / (100e12 * st.step_s), rel=1e-12)


def test_full_recompute_adds_a_forward_pass() -> None:
    sel = step_time(shape(), Layout(), EFF)
    full = step_time(shape(), Layout(recompute="full"), EFF)
    assert full.recompute_s == pytest.approx(per_token_s() * 4 * SEQ / 3, rel=1e-12)
    assert full.compute_s == sel.compute_s


def test_tensor_parallel_all_reduces_over_nvlink() -> None:
    st = step_time(shape(gpus=2), Layout(tensor_parallel=2), EFF)
    # 4 collectives per layer and micro-batch of SEQ x hidden bf16, ring share 2(t-1)/t = 1
    per_collective = SEQ * 1024 * 2 * 1.0 / 100e9
    assert st.tensor_parallel_s == pytest.approx(4 * 2 * 4 * per_collective, rel=1e-12)
    # 8 GPUs per node: the same pair on a 1-GPU-per-node machine pays the network
    slow = step_time(shape(gpus=2, gpu=GPU.model_copy(update={"gpus_per_node": 1})), Layout(tensor_parallel=2), EFF)
    assert slow.tensor_parallel_s == pytest.approx(10 * st.tensor_parallel_s, rel=1e-12)


def test_pipeline_bubble_is_p_minus_one_over_v_m() -> None:
    batch = 8 * SEQ
    for v in (1, 2):
        st = step_time(shape(gpus=2, batch_tokens=batch), Layout(pipeline_parallel=2, virtual_stages=v), EFF)
        assert st.micro_batches == 8
        # (p - 1) / (v m) of the step's work: (p - 1) / v micro-batches' worth
        assert st.pipeline_bubble_s == pytest.approx((2 - 1) / (v * 8) * st.compute_s, rel=1e-12)


def test_data_parallel_reduce_hides_under_compute_but_takes_sms() -> None:
    one = GPU.model_copy(update={"gpus_per_node": 1})  # DP ranks on separate nodes: 10 GB/s
    st = step_time(shape(gpus=2, gpu=one), Layout(data_parallel=2), EFF)
    comm = TOY.parameters * 2 * (1 / 2) * 2 / 10e9  # reduce-scatter + all-gather of bf16 grads
    expected = max(comm - st.compute_s, 0) + min(comm, st.compute_s) * OVERLAP_SM_SHARE
    assert st.data_parallel_s == pytest.approx(expected, rel=1e-12)
    fsdp = step_time(shape(gpus=2, gpu=one), Layout(data_parallel=2, sharding="full"), EFF)
    assert fsdp.data_parallel_s > st.data_parallel_s  # the weights are gathered twice


def test_memory_zero1_and_fsdp_by_hand() -> None:
    n = TOY.parameters
    acts = activation_bytes_per_token_layer(TOY) * SEQ * TOY.layers
    logits = SEQ * TOY.vocab_size * 4.0
    zero1 = memory_bytes_per_gpu(shape(gpus=4), Layout(data_parallel=4))
    assert zero1 == pytest.approx(n * 4 + n * 12 / 4 + acts + logits, rel=1e-12)
    fsdp = memory_bytes_per_gpu(shape(gpus=4), Layout(data_parallel=4, sharding="full"))
    assert fsdp == pytest.approx(n * 16 / 4 + acts + logits, rel=1e-12)
    # Llama-style layer: 2 (4 h + 2 q + 2 kv + 3 f) bytes per token
    assert activation_bytes_per_token_layer(TOY) == 2 * (4 * 1024 + 2 * 1024 + 2 * 1024 + 3 * 4096)


def test_default_batch_is_deepseek_llms_rule() -> None:
    assert default_global_batch_tokens(1e24) == pytest.approx(0.2920 * 1e24**0.3271)
    # Llama 3 405B's budget (~3.8e25 FLOPs) -> ~68M tokens; a 2e9-token 70B fine-tune ~2M
    assert 60e6 < default_global_batch_tokens(3.8e25) < 75e6
    assert 1.5e6 < default_global_batch_tokens(6 * 70e9 * 2e9) < 2.5e6


def test_expert_parameters_from_published_totals() -> None:
    mixtral = CAT.models["mixtral-8x7b"]
    per_expert = (46.7e9 - 12.9e9) / (8 - 2)
    assert expert_parameters(mixtral) == pytest.approx(8 * per_expert)
    assert expert_parameters(CAT.models["llama-3-70b"]) == 0


def test_expert_all_to_all_counts_remote_nodes_once() -> None:
    mixtral = CAT.models["mixtral-8x7b"]
    gpu = CAT.gpus["h100-sxm"]
    s = TrainingJobShape(mixtral, gpu, "bf16", 16, 4096, 64 * 4096)
    inside = step_time(s, Layout(expert_parallel=8, data_parallel=16), EFF)  # EP8 within a node
    across = step_time(s, Layout(expert_parallel=16, data_parallel=16), EFF)  # EP16 over 2 nodes
    assert 0 < inside.expert_parallel_s < across.expert_parallel_s
    # by hand, EP16 over 2 nodes: k = 2 copies reach 1 (1 - (1/2)^2) = 0.75 remote nodes
    # over the network and 2 x 7 / 16 local copies over NVLink, 2+2 bytes forward + 4 backward
    per_copy = mixtral.hidden_size * (4 + 4)
    per_token_layer = 0.75 * per_copy / (50e9 * 1.0) + 2 * 7 / 16 * per_copy / (450e9 * 1.0)
    expected = across.micro_batches * mixtral.layers * 4096 * per_token_layer
    assert across.expert_parallel_s == pytest.approx(expected, rel=1e-12)


def test_rule_picks_the_fastest_layout_that_fits() -> None:
    s = TrainingJobShape(CAT.models["llama-3-70b"], CAT.gpus["h100-sxm"], "bf16", 64, 8192, 4 * 2**20)
    eff = EFF.model_copy(update={"interconnect_efficiency": 0.8})
    best = best_layout(s, LayoutRequest(), eff)
    assert best.fits
    for tp in (1, 2, 4, 8):
        try:
            fixed = best_layout(s, LayoutRequest(tensor_parallel=tp), eff)
        except LayoutError:
            continue
        assert best.step_s <= fixed.step_s


def test_no_layout_fits_says_by_how_much() -> None:
    s = TrainingJobShape(CAT.models["llama-3-405b"], CAT.gpus["h100-sxm"], "bf16", 8, 8192, 2**20)
    with pytest.raises(LayoutError, match=r"needs [\d,.]+ GiB per GPU, h100-sxm offers 78.0 GiB .* GiB over; try more GPUs"):
        best_layout(s, LayoutRequest(), EFF)
    with pytest.raises(LayoutError, match="divides 6 GPUs"):
        best_layout(TrainingJobShape(TOY, GPU, "bf16", 6, SEQ, 8 * SEQ), LayoutRequest(tensor_parallel=4), EFF)


def test_published_llama3_405b_layout_fits_an_h100() -> None:
    """Llama 3 405B ran TP8 PP16 at 8K without activation checkpointing (Table 4)."""
    s = TrainingJobShape(CAT.models["llama-3-405b"], CAT.gpus["h100-sxm"], "bf16", 16384, 8192, 16 * 2**20)
    layout = Layout(8, 16, 1, 1, 128, 1, 7, "selective")
    assert step_time(s, layout, EFF).fits
    assert math.isclose(layout.gpus, 16384)


def test_interleaving_needs_as_many_micro_batches_as_stages() -> None:
    few = step_time(shape(gpus=4, batch_tokens=2 * SEQ), Layout(pipeline_parallel=4, virtual_stages=2), EFF)
    assert few.micro_batches == 2
    # m < PP: plain 1F1B, (PP - 1) micro-batch slots of bubble whatever v says
    assert few.pipeline_bubble_s == pytest.approx(3 * few.compute_s / 2, rel=1e-12)


def test_fsdp_gathers_the_weights_every_micro_batch() -> None:
    one = GPU.model_copy(update={"gpus_per_node": 1})
    big = 16 * 2 * SEQ  # 16 micro-batches per rank
    a = step_time(shape(gpus=2, gpu=one, batch_tokens=big), Layout(data_parallel=2, sharding="full"), EFF)
    comm = 16 * (TOY.parameters * 2 * 2 + TOY.parameters * 2) * (1 / 2) / 10e9
    assert a.micro_batches == 16
    expected = max(comm - a.compute_s, 0) + min(comm, a.compute_s) * OVERLAP_SM_SHARE
    assert a.data_parallel_s == pytest.approx(expected, rel=1e-12)


def test_impossible_requests_are_refused() -> None:
    s = TrainingJobShape(CAT.models["llama-3-8b"], CAT.gpus["h100-sxm"], "bf16", 64, 8192, 2**22)
    for request, message in [
        (LayoutRequest(tensor_parallel=3), "must divide the 32 attention heads and 8 KV heads"),
        (LayoutRequest(pipeline_parallel=64), "exceeds the model's 32 layers"),
        (LayoutRequest(pipeline_parallel=2, virtual_stages=40), "exceeds the 16 layers of a pipeline stage"),
        (LayoutRequest(expert_parallel=2), "on a dense model"),
    ]:
        with pytest.raises(LayoutError, match=message):
            best_layout(s, request, EFF)
    mixtral = TrainingJobShape(CAT.models["mixtral-8x7b"], CAT.gpus["h100-sxm"], "bf16", 64, 4096, 2**22)
    with pytest.raises(LayoutError, match="must divide the model's 8 experts"):
        best_layout(mixtral, LayoutRequest(expert_parallel=16), EFF)


def test_rule_ranks_layouts_by_time_per_token() -> None:
    s = TrainingJobShape(CAT.models["llama-3-70b"], CAT.gpus["h100-sxm"], "bf16", 1024, 8192, 4 * 2**20)
    eff = EFF.model_copy(update={"interconnect_efficiency": 0.8})
    best = best_layout(s, LayoutRequest(), eff)
    per_token = best.step_s / best.tokens_per_step
    for tp, pp in [(4, 1), (4, 4), (8, 2), (2, 8)]:
        try:
            other = best_layout(s, LayoutRequest(tensor_parallel=tp, pipeline_parallel=pp), eff)
        except LayoutError:
            continue
        assert per_token <= other.step_s / other.tokens_per_step * (1 + 1e-12)
