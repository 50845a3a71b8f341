"""The training step model is monotone: a more communication-bound job never runs faster."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.catalog import bundled_catalog
from simulator.perf.profile import default_profile_for_gpu
from simulator.perf.training import Layout, TrainingJobShape, step_time

CAT = bundled_catalog()
MODELS = ["llama-3-8b", "llama-3-70b", "llama-3-405b", "mixtral-8x7b", "deepseek-v3"]


@st.composite
def jobs(draw):
    model = CAT.models[draw(st.sampled_from(MODELS))]
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    pp = draw(st.sampled_from([1, 2, 4, 8]))
    cp = draw(st.sampled_from([1, 2]))
    dp = draw(st.sampled_from([1, 2, 8, 64, 512]))
    ep = draw(st.sampled_from([e for e in (1, 2, 4, 8) if (dp * cp) % e == 0])) if model.is_moe else 1
    v = draw(st.sampled_from([1, 2])) if pp > 1 else 1
    layout = Layout(tp, pp, cp, ep, dp, draw(st.sampled_from([1, 2])), v,
                    draw(st.sampled_from(["selective", "full"])), draw(st.sampled_from(["optimizer", "full"])))  # fmt: skip
    seq = draw(st.sampled_from([2048, 8192]))
    batch = draw(st.sampled_from([1, 4, 16])) * seq * dp * layout.micro_batch_sequences
    dtype = draw(st.sampled_from(["bf16", "fp8"]))
    gpu = CAT.gpus["h100-sxm"]
    shape = TrainingJobShape(model, gpu, dtype, layout.gpus, seq, batch,
                             overlap_expert_communication=draw(st.booleans()))  # fmt: skip
    return shape, layout


EFF = default_profile_for_gpu("h100-sxm").parameters


@settings(max_examples=200, deadline=None)
@given(job=jobs(), slower=st.floats(0.05, 0.99))
def test_slower_links_never_make_a_step_faster(job, slower) -> None:
    shape, layout = job
    base = step_time(shape, layout, EFF)
    for field in ("interconnect_gb_per_s", "internode_gb_per_s"):
        gpu = shape.gpu.model_copy(update={field: getattr(shape.gpu, field) * slower})
        worse = step_time(TrainingJobShape(**{**shape.__dict__, "gpu": gpu}), layout, EFF)
        assert worse.step_s >= base.step_s * (1 - 1e-12)
    eff = EFF.model_copy(update={"interconnect_efficiency": EFF.interconnect_efficiency * slower})
    assert step_time(shape, layout, eff).step_s >= base.step_s * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(job=jobs())
def test_step_terms_are_non_negative_and_mfu_physical(job) -> None:
    shape, layout = job
    step = step_time(shape, layout, EFF)
    shares = step.shares()
    assert all(v >= 0 for v in shares.values()) and abs(sum(shares.values()) - 1) < 1e-9
    assert 0 < step.mfu < 1


@settings(max_examples=100, deadline=None)
@given(job=jobs())
def test_more_pipeline_stages_never_shrink_the_bubble_at_fixed_micro_batches(job) -> None:
    shape, layout = job
    if layout.pipeline_parallel == 8:
        return
    deeper = Layout(**{**layout.__dict__, "pipeline_parallel": layout.pipeline_parallel * 2})
    a = step_time(shape, layout, EFF)
    b = step_time(TrainingJobShape(**{**shape.__dict__, "gpus": deeper.gpus}), deeper, EFF)
    # per GPU the work halves with twice the stages; the bubble's share of it never falls
    assert b.pipeline_bubble_s / b.compute_s >= a.pipeline_bubble_s / a.compute_s * (1 - 1e-12)
