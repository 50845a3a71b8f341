"""Behaviour of the serving engine on small cases whose timelines are known exactly.

The "unit" deployment takes exactly 0.01 s per iteration whatever its batch, so timelines can be
written down by hand: a request of P prompt tokens and O output tokens alone on a replica takes
ceil(P / budget) prefill iterations (the last yields the first token) then O - 1 decode
iterations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.common.errors import ScenarioError
from simulator.inference import Trace, serve
from simulator.inference.api import replica_setup
from simulator.inference.engine import EngineConfig, RequestArrays, simulate
from simulator.inference.replica import ReplicaConfig
from simulator.inference.timing import IterationTimer
from simulator.scenario.resolve import serving_cost_model
from tests.inference_support import UNIT_ITERATION_S, chat_scenario, unit_scenario

DT = UNIT_ITERATION_S
UNIT_COST_MODEL = serving_cost_model(unit_scenario(), "d")


def run_unit(arrival, prompt, output, cached=None, *, batch=4, budget=64, blocks=10_000,
             block=16, context=1_000_000, replicas=1, router="least_outstanding", max_queue=100,
             admission="preempt"):
    """simulate() on the unit timer with the given scheduler limits; returns the record."""
    config = ReplicaConfig(batch, budget, blocks, block, context, admission=admission)
    timer = IterationTimer.from_cost_model(UNIT_COST_MODEL, config.max_iteration_tokens)
    n = len(arrival)
    requests = RequestArrays(np.asarray(arrival, float), np.asarray(prompt), np.asarray(output),
                             np.zeros(n, int) if cached is None else np.asarray(cached))  # fmt: skip
    duration = float(max(arrival)) + 1e-6
    return simulate(EngineConfig(config, replicas, router, max_queue), timer, requests,
                    duration_s=duration, drain_s=1e6)  # fmt: skip


def test_lone_request_timeline():
    r = run_unit([1.0], [1], [5])
    assert r.first_scheduled_s[0] == 1.0
    assert r.first_token_s[0] == pytest.approx(1.0 + DT)
    assert r.finish_s[0] == pytest.approx(1.0 + 5 * DT)
    assert r.status[0] == "completed"


def test_lone_request_on_a_real_deployment_matches_the_cost_model():
    scenario = chat_scenario()
    config, cm, timer = replica_setup(scenario, scenario.deployment("chat-8b"))
    prompt, output = 1000, 50
    r = simulate(EngineConfig(config), timer, RequestArrays(np.array([0.0]), np.array([prompt]),
                 np.array([output]), np.array([0])), duration_s=1.0)  # fmt: skip
    prefill = float(cm.prefill_s(prompt))
    decode = cm.decode_step_s(1, prompt + np.arange(1, output)).sum()
    assert r.first_token_s[0] == pytest.approx(prefill, rel=1e-12)
    assert r.finish_s[0] == pytest.approx(prefill + decode, rel=1e-12)


def test_chunked_prefill_and_prefix_cache():
    r = run_unit([0.0, 10.0], [300, 300], [2, 2], cached=[0, 150], budget=64)
    assert r.first_token_s[0] == pytest.approx(5 * DT)  # ceil(300 / 64) chunks
    assert r.first_token_s[1] - 10.0 == pytest.approx(3 * DT)  # ceil(150 / 64): half cached


def test_batch_cap_queues_the_third_request():
    r = run_unit([0.0, 0.0, 0.0], [1, 1, 1], [10, 3, 4], batch=2)
    assert r.first_scheduled_s.tolist() == [0.0, 0.0, pytest.approx(3 * DT)]
    assert r.finish_s[2] == pytest.approx(3 * DT + 4 * DT)


def test_arrival_joins_a_running_batch_at_the_next_iteration_boundary():
    r = run_unit([0.0, 0.0255], [1, 1], [100, 2])
    assert r.first_scheduled_s[1] == pytest.approx(3 * DT)  # boundaries every 0.01 s
    assert r.finish_s[0] == pytest.approx(100 * DT)


def test_kv_preemption_recomputes_the_newest():
    """6 blocks of 4 tokens: two requests growing to 13 KV tokens (4 blocks) each cannot both fit."""
    r = run_unit([0.0, 0.0], [4, 4], [10, 10], batch=2, budget=64, blocks=6, block=4)
    assert r.preemptions.tolist() == [0, 1]  # the newest is pre-empted
    assert (r.status == "completed").all()
    assert r.finish_s[1] > r.finish_s[0]
    assert r.replica_stats[0].preemptions == 1


def test_reserve_admission_waits_for_room_for_the_whole_output_and_never_preempts():
    """The same two requests as above under TensorRT-LLM's GUARANTEED_NO_EVICT: each needs
    ceil(14 / 4) = 4 blocks for prompt + output, so the second waits for the first to finish."""
    r = run_unit([0.0, 0.0], [4, 4], [10, 10], batch=2, budget=64, blocks=6, block=4,
                 admission="reserve")  # fmt: skip
    assert r.preemptions.tolist() == [0, 0]
    assert (r.status == "completed").all()
    assert r.first_scheduled_s[1] == pytest.approx(r.finish_s[0])
    roomy = run_unit([0.0, 0.0], [4, 4], [10, 10], batch=2, blocks=8, block=4, admission="reserve")
    assert roomy.first_scheduled_s.tolist() == [0.0, 0.0]  # 8 blocks: both fit at once


def test_queue_full_and_too_long_drops():
    r = run_unit([0.0] * 5 + [1.0], [1, 1, 1, 1, 1, 50], [100] * 5 + [1], batch=1, max_queue=2,
                 context=40)  # fmt: skip
    assert r.status.tolist() == ["completed"] * 3 + ["dropped"] * 3
    assert r.drop_reason.tolist() == ["", "", "", "queue_full", "queue_full", "too_long"]


def test_output_is_cut_at_the_context_limit():
    r = run_unit([0.0], [30], [100], context=40)
    assert r.output_tokens[0] == 10
    assert r.finish_s[0] == pytest.approx(10 * DT)


def test_shared_queue_is_fcfs_across_replicas():
    r = run_unit([0.0, 0.0, 0.001, 0.002], [1] * 4, [10, 20, 5, 5], batch=1, replicas=2,
                 router="shared_queue")  # fmt: skip
    assert r.replica.tolist()[:2] == [0, 1]
    assert r.first_scheduled_s[2] == pytest.approx(10 * DT)  # first free server
    assert r.first_scheduled_s[3] == pytest.approx(15 * DT)


def test_least_outstanding_routes_to_the_idle_replica():
    r = run_unit([0.0, 0.001, 0.002], [1] * 3, [50, 50, 50], batch=8, replicas=3)
    assert sorted(r.replica.tolist()) == [0, 1, 2]
    rr = run_unit([0.0, 0.001, 0.002, 0.003], [1] * 4, [5] * 4, replicas=2, router="round_robin")
    assert rr.replica.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("router", ["least_outstanding", "session_affinity"])
def test_heap_routing_on_many_replicas_gives_the_scans_run_bit_for_bit(monkeypatch, router):
    """From HEAP_FROM_REPLICAS replicas the load-aware routers keep heaps: the same run."""
    from simulator.inference import router as router_module

    scenario = chat_scenario()
    config, _, timer = replica_setup(scenario, scenario.deployment("chat-8b"))
    rng = np.random.default_rng(4)
    n = 4000
    session = rng.integers(0, 400, n) if router == "session_affinity" else None
    requests = RequestArrays(np.sort(rng.uniform(0, 20, n)), rng.integers(50, 1500, n),
                             rng.integers(5, 300, n), np.zeros(n, dtype=int), session=session)  # fmt: skip
    engine = EngineConfig(config, 32, router)
    fast = simulate(engine, timer, requests, duration_s=20.0)
    monkeypatch.setattr(router_module, "HEAP_FROM_REPLICAS", 10**9)
    scan = simulate(engine, timer, requests, duration_s=20.0)
    assert len(set(fast.replica.tolist())) == 32
    np.testing.assert_array_equal(fast.replica, scan.replica)
    np.testing.assert_array_equal(fast.finish_s, scan.finish_s)


# ---------------------------------------------------------------------------- serve()


def test_serve_frames_and_summary():
    result = serve(chat_scenario(), "chat-8b", rps=5, duration_s=60, replicas=2, seed=3)
    s = result.summary
    for key in ("requests_completed", "requests_dropped", "ttft_ms", "tpot_ms", "e2e_ms",
                "queue_wait_ms", "throughput_tokens_per_s", "replica_utilization",
                "slo_attainment"):  # fmt: skip
        assert key in s
    for key in ("ttft_ms", "tpot_ms", "e2e_ms", "queue_wait_ms"):
        assert set(s[key]) == {"mean", "p50", "p90", "p95", "p99"}
    assert s["requests_arrived"] == s["requests_completed"] + s["requests_dropped"] + s["requests_in_flight"]
    frame = result.requests
    gpu = frame[frame["status"] != "cache_hit"]
    assert len(gpu) == s["requests_arrived"]
    assert (frame["status"] == "cache_hit").sum() == s["requests_cache_hits"] > 0  # 5% hit rate
    assert list(result.replicas["replica"]) == [0, 1]
    done = gpu[gpu["status"] == "completed"]
    assert (done["ttft_ms"] >= done["queue_wait_ms"]).all()
    assert (done["e2e_ms"] >= done["ttft_ms"]).all()
    expected_tpot = (done["e2e_ms"] - done["ttft_ms"]) / (done["output_tokens"] - 1)
    pd.testing.assert_series_equal(done["tpot_ms"][done["output_tokens"] > 1],
                                   expected_tpot[done["output_tokens"] > 1], check_names=False)  # fmt: skip


def test_warmup_requests_are_not_measured():
    result = serve(chat_scenario(), "chat-8b", rps=5, duration_s=100, seed=1, warmup_s=30)
    frame = result.requests
    assert not frame.loc[frame["arrival_s"] < 30, "measured"].any()
    assert frame.loc[frame["arrival_s"] >= 30, "measured"].all()
    measured = frame[frame["measured"] & (frame["status"] == "completed")]
    assert result.summary["ttft_ms"]["mean"] == pytest.approx(measured["ttft_ms"].mean())


def test_response_cache_hits_skip_the_gpu():
    scenario = chat_scenario(workload={"response_cache_hit_rate": 0.5})
    s = serve(scenario, "chat-8b", rps=10, duration_s=100, seed=2).summary
    offered = s["requests_arrived"] + s["requests_cache_hits"]
    assert s["requests_cache_hits"] == pytest.approx(offered / 2, abs=4 * np.sqrt(offered / 4))


def test_same_seed_same_results_other_seed_other_results():
    scenario = chat_scenario()
    a = serve(scenario, "chat-70b", rps=8, duration_s=40, replicas=2, seed=5)
    b = serve(scenario, "chat-70b", rps=8, duration_s=40, replicas=2, seed=5)
    c = serve(scenario, "chat-70b", rps=8, duration_s=40, replicas=2, seed=6)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.replicas, b.replicas)
    assert a.summary == b.summary
    assert not a.requests["arrival_s"].equals(c.requests["arrival_s"])


def test_serve_a_trace_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n"
                    "2023-11-16 18:15:47.68,396,109\n")  # fmt: skip
    result = serve(chat_scenario(), "chat-8b", trace=str(path), seed=0)
    assert sorted(result.requests["arrival_s"]) == pytest.approx([0.0, 1.0])


def test_serve_a_trace():
    trace = Trace(np.array([0.0, 0.5, 1.0, 4.0]), np.array([100, 200, 300, 400]),
                  np.array([10, 20, 30, 40]))  # fmt: skip
    result = serve(chat_scenario(), "chat-8b", trace=trace, seed=0)
    gpu = result.requests[result.requests["status"] != "cache_hit"]
    offered = result.requests
    assert sorted(offered["arrival_s"]) == [0.0, 0.5, 1.0, 4.0]
    assert (gpu["status"] == "completed").all()
    assert result.summary["duration_s"] == pytest.approx(4.0)
    faster = serve(chat_scenario(), "chat-8b", trace=trace, rps=3.0, seed=0)  # 0.75 -> 3 req/s
    assert sorted(faster.requests["arrival_s"]) == pytest.approx([0.0, 0.125, 0.25, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"rps": 1.0}, "give a duration"),
     ({"duration_s": 1.0}, "give a request rate"),
     ({"rps": 1.0, "duration_s": 10, "router": "random"}, "unknown router"),
     ({"rps": 1.0, "duration_s": 10, "replicas": 0}, "replicas"),
     ({"rps": 1.0, "duration_s": 10, "warmup_s": 10}, "warm-up"),
     ({"rps": 1.0, "duration_s": 10, "workload": "nope"}, "no workload named 'nope'")],
)  # fmt: skip
def test_serve_rejects_bad_arguments(kwargs, message):
    workload = kwargs.pop("workload", None)
    with pytest.raises(ScenarioError, match=message):
        serve(chat_scenario(), "chat-8b", workload, **kwargs)


def test_unknown_deployment():
    with pytest.raises(ScenarioError, match="no deployment named 'x'"):
        serve(chat_scenario(), "x", rps=1, duration_s=1)
