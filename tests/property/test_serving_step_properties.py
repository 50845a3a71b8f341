"""The serving iteration model is monotone: more batch, context or prompt never takes less time.

Checked over catalog models (dense, MoE, MLA), GPUs, dtypes, TP degrees (inside and across
nodes) and profiles with every optional term switched on, for both the vectorised cost model
and the engine's table-driven timer.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.catalog import bundled_catalog
from simulator.inference.timing import IterationTimer
from simulator.perf.profile import default_profile_for_gpu
from simulator.perf.roofline import ServingCostModel

CAT = bundled_catalog()
MODELS = ["llama-3-8b", "llama-3-70b", "mixtral-8x7b", "deepseek-v3", "llama-2-7b"]
GPUS = ["h100-sxm", "h200", "a100-80-sxm", "l40s", "b200", "mi300x"]
MAX_TOKENS = 4096


@st.composite
def cost_models(draw):
    gpu = draw(st.sampled_from(GPUS))
    eff = default_profile_for_gpu(gpu).parameters
    eff = eff.model_copy(update={
        "compute_memory_overlap": draw(st.floats(0, 1)),
        "sequence_overhead_s": draw(st.sampled_from([0.0, 2e-5])),
        "prefill_chunk_overhead_s": draw(st.sampled_from([0.0, 5e-5])),
        "elementwise_traffic_factor": draw(st.sampled_from([0.0, 1.0])),
    })  # fmt: skip
    return ServingCostModel(CAT.models[draw(st.sampled_from(MODELS))], CAT.gpus[gpu],
                            draw(st.sampled_from(["bf16", "fp8", "fp4", "int4"])),
                            draw(st.sampled_from(["bf16", "fp8"])),
                            draw(st.sampled_from([1, 2, 8, 16])), eff)  # fmt: skip


@st.composite
def iterations(draw):
    prefill = draw(st.integers(0, 2048))
    seqs = draw(st.integers(0, 4)) if prefill else 0
    done = draw(st.integers(0, 8000))
    decode = draw(st.integers(0, 1024))
    context = decode * draw(st.integers(1, 8000))
    pairs = prefill * (done + (prefill + 1) / 2)
    return prefill, pairs, seqs, decode, context


@settings(max_examples=150, deadline=None)
@given(cm=cost_models(), it=iterations(), more=st.integers(1, 512), longer=st.integers(1, 4000))
def test_step_time_never_falls_when_the_iteration_grows(cm, it, more, longer):
    prefill, pairs, seqs, decode, context = it
    base = float(cm.iteration_time_s(prefill, pairs, seqs, decode, context))
    # more decoders (each with at least one token of context)
    assert float(cm.iteration_time_s(prefill, pairs, seqs, decode + more, context + more)) >= base
    # longer contexts
    assert float(cm.iteration_time_s(prefill, pairs, seqs, decode, context + longer)) >= base
    # more prompt tokens in the chunk (more query-key pairs with them)
    grown = prefill + more
    grown_pairs = pairs + more * (grown + 1)
    assert float(cm.iteration_time_s(grown, grown_pairs, max(seqs, 1), decode, context)) >= base


@settings(max_examples=60, deadline=None)
@given(cm=cost_models(), it=iterations())
def test_engine_timer_prices_what_the_cost_model_prices(cm, it):
    prefill, pairs, seqs, decode, context = it
    if prefill + decode > MAX_TOKENS:
        return
    timer = IterationTimer.from_cost_model(cm, MAX_TOKENS)
    expected = float(cm.iteration_time_s(prefill, pairs, seqs, decode, context))
    got = timer.iteration_s(prefill, pairs, seqs, decode, context)
    assert abs(got - expected) <= 1e-9 * max(expected, 1e-6)
    if prefill == 0 and decode > 0:
        run = timer.decode_run(decode, context)
        assert abs(run.iteration_s(0) - expected) <= 1e-9 * max(expected, 1e-6)


def test_a_longer_one_row_prefill_never_takes_less_time():
    """Found by hypothesis: the LM head of one logit row was priced at the efficiency of the
    batch's token count, so a 2-token prefill read faster than a 1-token one once compute and
    weight reads stopped overlapping fully; the LM head now runs at M = its rows."""
    eff = default_profile_for_gpu("h100-sxm").parameters.model_copy(update={"compute_memory_overlap": 0.0})
    cm = ServingCostModel(CAT.models["llama-3-8b"], CAT.gpus["h100-sxm"], "bf16", "bf16", 1, eff)
    times = [float(cm.iteration_time_s(p, p * (p + 1) / 2, 1)) for p in range(1, 200)]
    assert all(b >= a for a, b in pairwise(times))
