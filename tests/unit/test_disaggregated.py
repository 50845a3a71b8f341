"""Disaggregated prefill/decode: hand timelines on the unit deployment, theory and the
co-located comparison on a real one."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.common.errors import ScenarioError
from simulator.inference import serve
from simulator.inference.api import disaggregated_setup, replica_setup
from simulator.inference.disaggregated import simulate_disaggregated
from simulator.inference.engine import RequestArrays
from simulator.perf.memory import kv_bytes_per_token
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.resolve import model_of
from tests.inference_support import UNIT_ITERATION_S, chat_scenario, unit_scenario_dict

DT = UNIT_ITERATION_S


def unit_disaggregated(**disaggregation):
    data = unit_scenario_dict(max_batch_size=4)
    data["deployments"][0]["disaggregation"] = disaggregation
    return validate_scenario_data(data)


def run_unit(scenario, arrival, prompt, output):
    dep = scenario.deployment("d")
    config, _, timer = replica_setup(scenario, dep)
    units = disaggregated_setup(scenario, dep, None, config)
    n = len(arrival)
    requests = RequestArrays(np.asarray(arrival, float), np.asarray(prompt), np.asarray(output), np.zeros(n, int))
    return simulate_disaggregated(units, timer, requests, duration_s=max(arrival) + 1e-6, drain_s=1e6)


def test_kv_transfer_is_bytes_over_bandwidth_and_charged_to_ttft():
    gb_per_s, latency_ms = 1e-6, 5.0  # 1,000 bytes/s: a slow link makes the transfer visible
    scenario = unit_disaggregated(kv_transfer_gb_per_s=gb_per_s, kv_transfer_latency_ms=latency_ms)
    prompt, output = 100, 6
    r = run_unit(scenario, [1.0], [prompt], [output])
    per_token = kv_bytes_per_token(model_of(scenario, "unit-model"), "bf16", 1)
    transfer = latency_ms / 1000 + prompt * per_token / (gb_per_s * 1e9)
    prefill = 2 * DT  # ceil(100 / 64) chunks
    assert r.status[0] == "completed"
    assert r.first_token_s[0] == pytest.approx(1.0 + prefill + transfer)
    # the decode side: the first token fed as a one-token step, then the rest one per iteration
    assert r.finish_s[0] == pytest.approx(1.0 + prefill + transfer + (output - 1) * DT)
    assert r.replica[0] == 1  # the decode replica, listed after the prefill one
    assert [g.name for g in r.groups] == ["prefill", "decode"]


def test_a_one_token_answer_never_leaves_the_prefill_replica():
    r = run_unit(unit_disaggregated(kv_transfer_gb_per_s=1e-6), [0.0], [10], [1])
    assert r.finish_s[0] == pytest.approx(DT)
    assert r.first_token_s[0] == pytest.approx(DT)


def test_littles_law_holds_across_the_groups():
    scenario = chat_scenario({"disaggregation": {"prefill_replicas": 1, "decode_replicas": 2}})
    result = serve(scenario, "chat-8b", rps=15, duration_s=600, seed=3)
    rq = result.requests
    window = rq[rq["measured"] & (rq["status"] == "completed")]  # response-cache hits never enter
    rate = len(window) / (result.record.duration_s - result.record.warmup_s)
    e2e_s = window["e2e_ms"].mean() / 1000
    assert result.summary["mean_requests_in_system"] == pytest.approx(rate * e2e_s, rel=0.01)


@pytest.mark.parametrize("rps", [4.0, 12.0, 24.0])
def test_decode_tpot_never_worse_than_co_located_with_a_free_link(rps):
    """Same GPUs, an (almost) infinitely fast link, equal decode replicas: decode iterations no
    longer carry prompt chunks, so TPOT can only improve."""
    free = {"prefill_replicas": 2, "decode_replicas": 2, "kv_transfer_gb_per_s": 1e9}
    split = serve(chat_scenario({"disaggregation": free}), "chat-8b", rps=rps, duration_s=300, seed=5)
    together = serve(chat_scenario(), "chat-8b", rps=rps, duration_s=300, replicas=2, seed=5)
    for q in (0.5, 0.95):
        assert split.requests["tpot_ms"].quantile(q) <= together.requests["tpot_ms"].quantile(q) * 1.001


def test_units_count_all_their_gpus_and_bad_layouts_are_problems():
    dep = chat_scenario({"tensor_parallel": 2, "disaggregation": {"prefill_replicas": 1, "decode_replicas": 3,
                                                                  "prefill_tensor_parallel": 1}})  # fmt: skip
    assert dep.deployment("chat-8b").gpus_per_replica == 1 * 1 + 3 * 2
    with pytest.raises(ScenarioError) as err:  # a unit of (64 + 64) x TP 8 GPUs > the pool's 512
        chat_scenario({"tensor_parallel": 8, "disaggregation": {"prefill_replicas": 64, "decode_replicas": 64}})
    assert "exceeds pool" in str(err.value)


def test_the_projection_holds_whole_units():
    from simulator.inference import deployment_curve
    from simulator.results.runner import run

    scenario = chat_scenario({"disaggregation": {"prefill_replicas": 1, "decode_replicas": 2}})
    scenario = scenario.model_copy(update={"horizon": scenario.horizon.model_copy(update={"months": 1})})
    result = run(scenario, curve_provider=lambda s, d, w: deployment_curve(s, d, w, quick=True))
    hourly = result.deployments_hourly
    units = hourly.loc[hourly["deployment"] == "chat-8b", "replicas_held"].sum()
    held = result.summary["deployments"]["chat-8b"]["gpu_hours_held"]
    assert held == pytest.approx(3 * units)  # 1 prefill + 2 decode GPUs per unit
    assert 0 < result.summary["deployments"]["chat-8b"]["busy_fraction"] <= 1


def test_closed_loop_keeps_its_users_across_the_groups():
    scenario = chat_scenario({"disaggregation": {"prefill_replicas": 1, "decode_replicas": 1}})
    result = serve(scenario, "chat-8b", concurrency=16, duration_s=120, seed=2)
    assert result.summary["mean_requests_in_system"] == pytest.approx(16, rel=1e-9)
    rq = result.requests
    done = rq[rq["measured"] & (rq["status"] == "completed")]
    throughput = len(done) / (result.record.duration_s - result.record.warmup_s)
    assert throughput * done["e2e_ms"].mean() / 1000 == pytest.approx(16, rel=0.05)  # Little: N = X R


def test_optimize_searches_the_prefill_decode_split():
    from simulator.sweep import space
    from simulator.sweep.grid import apply_overrides

    scenario = chat_scenario({"disaggregation": {"prefill_replicas": 1, "decode_replicas": 2}})
    dep = scenario.deployment("chat-8b")
    options = space.deployment_options(scenario, scenario.pool(dep.pool), "h100-sxm", dep)
    splits = {o.prefill_decode for o in options}
    assert splits == set(space.PREFILL_DECODE) | {(1, 2)}
    assert options[0].prefill_decode == (1, 2)  # the deployment's own first
    option = next(o for o in options if o.prefill_decode == (2, 3) and o.tensor_parallel == 2)
    variant = apply_overrides(scenario, option.overrides()).deployment("chat-8b")
    assert (variant.disaggregation.prefill_replicas, variant.disaggregation.decode_replicas) == (2, 3)
    assert option.gpus_per_replica(dep) == variant.gpus_per_replica == 10
    assert "P:D 2:3" in option.label
    colocated = chat_scenario()
    assert {o.prefill_decode for o in space.deployment_options(
        colocated, colocated.pool("serving"), "h100-sxm", colocated.deployment("chat-8b"))} == {None}


def test_disaggregation_composes_with_speculation_and_conversations():
    split = {"disaggregation": {"prefill_replicas": 1, "decode_replicas": 1}}
    draft = {"speculative": {"draft_model": "llama-3.2-1b", "draft_tokens": 4, "acceptance_rate": 0.7}}
    talk = {"sessions": {"turns": {"distribution": "fixed", "value": 4}, "think_s": 30, "system_prompt_tokens": 500},
            "prefix_cache_hit_rate": 0}  # fmt: skip
    plain = serve(chat_scenario(split, talk), "chat-8b", rps=4, duration_s=600, seed=1).summary
    both = serve(chat_scenario({**split, **draft}, talk), "chat-8b", rps=4, duration_s=600, seed=1).summary
    assert both["tpot_ms"]["p50"] < 0.9 * plain["tpot_ms"]["p50"]  # the decode side speculates
    assert plain["prefix_cache_hit_rate"] > 0.3  # the prefill side keeps the conversations' prefixes


def test_a_decode_side_preemption_recomputes_the_whole_prompt():
    """The prompt's KV came over the link into the request's own blocks: pre-empted, they are
    freed, so re-admission recomputes prompt + generated tokens, not the generated ones alone."""
    import dataclasses

    from simulator.inference.metrics import replicas_frame

    scenario = unit_disaggregated(kv_transfer_gb_per_s=1e9)
    dep = scenario.deployment("d")
    config, _, timer = replica_setup(scenario, dep)
    tight = dataclasses.replace(config, kv_blocks=14, kv_block_tokens=16, kv_watermark=0.0)
    units = disaggregated_setup(scenario, dep, None, tight)
    prompt, output = 96, 30  # 7 blocks each at admission; together past 14 after ~16 tokens each
    requests = RequestArrays(np.array([0.0, 0.0]), np.full(2, prompt), np.full(2, output), np.zeros(2, int))
    r = simulate_disaggregated(units, timer, requests, duration_s=100.0, warmup_s=0.0, drain_s=1e6)
    assert (r.status == "completed").all() and r.preemptions.sum() >= 1
    decode = replicas_frame(r).iloc[1]  # the decode replica
    recomputed = decode["prefill_tokens_per_s"] * 100.0
    # the pre-empted request's prompt came back through prefill (not ~16 generated tokens alone)
    assert recomputed >= prompt + 1
