"""The serving engine with LoRA adapters: iterations pay for the distinct adapters they run,
the per-batch adapter cap, adapter sampling, and no change at all without adapters.

Timelines use the "unit" deployment (0.01 s per iteration whatever its batch, see
tests/unit/test_inference_engine.py) plus a hand-made adapter term of 1 ms + 0.5 ms per distinct
adapter, so every instant can be written down.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.inference import serve
from simulator.inference.api import sample_adapters, streams
from simulator.inference.curve import QUICK_SETTINGS, curve_key
from simulator.inference.engine import EngineConfig, RequestArrays, simulate
from simulator.inference.replica import ReplicaConfig
from simulator.inference.timing import IterationTimer
from simulator.perf.lora import AdapterTerms
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.resolve import serving_cost_model
from tests.conftest import minimal_scenario_dict
from tests.inference_support import UNIT_ITERATION_S, unit_scenario

DT = UNIT_ITERATION_S
FIXED, PER_ADAPTER = 0.001, 0.0005
UNIT_COST_MODEL = serving_cost_model(unit_scenario(), "d")


def run_unit(prompt, output, adapter, *, arrival=None, cap=None, adapters=True, batch=8, budget=64):
    config = ReplicaConfig(batch, budget, 10_000, 16, 1_000_000, max_adapters_per_batch=cap)
    terms = None
    if adapters:
        terms = AdapterTerms(FIXED, np.zeros(config.max_iteration_tokens + 1), PER_ADAPTER)
    timer = IterationTimer.from_cost_model(UNIT_COST_MODEL, config.max_iteration_tokens, terms)
    n = len(prompt)
    arrival = np.zeros(n) if arrival is None else np.asarray(arrival, float)
    requests = RequestArrays(arrival, np.asarray(prompt), np.asarray(output), np.zeros(n, int),
                             adapter=None if adapter is None else np.asarray(adapter))  # fmt: skip
    return simulate(
        EngineConfig(config), timer, requests, duration_s=float(arrival.max()) + 1e-6, drain_s=1e6
    )


@pytest.mark.parametrize("ids, distinct", [([0, 0, 0, 0], 1), ([0, 1, 0, 1], 2), ([3, 1, 2, 0], 4)])
def test_iterations_pay_for_the_distinct_adapters_of_the_batch(ids, distinct):
    # 4 one-token prompts prefill together (first token), then 4 decode iterations
    r = run_unit([1] * 4, [5] * 4, ids)
    step = DT + FIXED + distinct * PER_ADAPTER
    assert r.first_token_s == pytest.approx(np.full(4, step), abs=1e-12)
    assert r.finish_s == pytest.approx(np.full(4, 5 * step), abs=1e-12)


def test_more_distinct_adapters_lengthen_iterations():
    finish = [run_unit([1] * 6, [20] * 6, np.arange(6) % k).finish_s.max() for k in (1, 2, 3, 6)]
    assert np.all(np.diff(finish) > 0)
    assert finish[-1] - finish[0] == pytest.approx(20 * 5 * PER_ADAPTER, abs=1e-12)


def test_base_model_requests_pay_nothing_and_no_adapters_changes_nothing():
    plain = run_unit([3, 7, 2], [5, 9, 4], None, arrival=[0.0, 0.004, 0.03], adapters=False)
    base = run_unit([3, 7, 2], [5, 9, 4], [-1, -1, -1], arrival=[0.0, 0.004, 0.03])
    for name in ("first_scheduled_s", "first_token_s", "finish_s"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(base, name))
    assert plain.adapter is None and plain.retrieval_s is None
    # a mix: only the adapter requests' iterations pay
    mixed = run_unit([1, 1], [3, 3], [-1, 5])
    assert mixed.finish_s == pytest.approx(np.full(2, 3 * (DT + FIXED + PER_ADAPTER)), abs=1e-12)


def test_adapter_cap_skips_requests_whose_adapter_has_no_slot():
    # cap 1: adapter 0 takes the slot; request 1 (adapter 1) waits, request 2 (adapter 0) overtakes
    # (all arrive at 0; the first plan runs at the first arrival, the others join at the first
    # iteration boundary)
    r = run_unit([1, 1, 1], [5, 5, 5], [0, 1, 0], cap=1)
    step = DT + FIXED + PER_ADAPTER
    assert r.first_scheduled_s[[0, 2]] == pytest.approx([0.0, step], abs=1e-12)
    assert r.finish_s[[0, 2]] == pytest.approx([5 * step, 6 * step], abs=1e-12)
    assert r.first_scheduled_s[1] == pytest.approx(6 * step, abs=1e-12)  # when adapter 0 left
    assert r.finish_s[1] == pytest.approx(11 * step, abs=1e-12)
    uncapped = run_unit([1, 1, 1], [5, 5, 5], [0, 1, 0])
    assert uncapped.finish_s == pytest.approx(
        np.full(3, 5 * (DT + FIXED + 2 * PER_ADAPTER)), abs=1e-12
    )


def test_arrival_for_an_active_adapter_cuts_a_decode_run_behind_a_blocked_queue():
    # request 1 (adapter 1) is blocked by the cap; request 2 arrives mid-run for adapter 0 and
    # joins at the next iteration boundary instead of waiting behind request 1
    r = run_unit([1, 1, 1], [50, 5, 5], [0, 1, 0], arrival=[0.0, 0.0, 0.1], cap=1)
    step = DT + FIXED + PER_ADAPTER
    boundary = np.ceil(0.1 / step - 1e-9) * step
    assert r.first_scheduled_s[2] == pytest.approx(boundary, abs=1e-9)
    assert r.first_scheduled_s[1] > r.finish_s[0] - 1e-9


# ---------------------------------------------------------------------- sampling


def _workload(adapters, s):
    data = minimal_scenario_dict()
    data["deployments"][0]["adapters"] = max(adapters, 1)
    data["workloads"][0].update(adapters=adapters, adapter_zipf_exponent=s)
    return validate_scenario_data(data).workloads[0]


@pytest.mark.parametrize("s", [0.0, 1.0, 1.5])
def test_adapter_ids_follow_their_zipf_law(s):
    n, draws = 20, 200_000
    ids = sample_adapters(_workload(n, s), np.random.default_rng(7), draws)
    p = np.arange(1, n + 1, dtype=float) ** -s
    p /= p.sum()
    freq = np.bincount(ids, minlength=n) / draws
    sd = np.sqrt(p * (1 - p) / draws)
    assert np.all(np.abs(freq - p) < 5 * sd)
    assert sample_adapters(_workload(0, 0.0), np.random.default_rng(7), 10) is None


def test_extra_streams_leave_the_original_streams_alone():
    seq = np.random.SeedSequence(5)
    expected = [np.random.default_rng(c).random(3) for c in np.random.SeedSequence(5).spawn(4)]
    got = streams(seq)
    for name, values in zip(
        ("arrivals", "prompt_tokens", "output_tokens", "response_cache"), expected, strict=True
    ):
        np.testing.assert_array_equal(got[name].random(3), values)
    again = streams(np.random.SeedSequence(5))
    assert got["adapters"].random() != got["retrieval"].random()
    assert again["adapters"].random() == streams(np.random.SeedSequence(5))["adapters"].random()


# ---------------------------------------------------------------------- real deployment


def served(adapters: int, spread: int, cap=None):
    data = minimal_scenario_dict()
    data["deployments"][0].update(adapters=adapters, max_adapters_per_batch=cap)
    data["workloads"][0]["adapters"] = spread
    return serve(validate_scenario_data(data), "small", rps=15, duration_s=240, seed=3)


def test_adapters_on_llama_8b_slow_decode_by_the_cost_model_terms():
    none, one, many = served(0, 0), served(50, 1), served(50, 50)
    tpot = [r.summary["tpot_ms"]["p50"] for r in (none, one, many)]
    assert tpot[0] < tpot[1] < tpot[2]
    assert 1.0 < tpot[1] - tpot[0] < 3.5  # ~1.8 ms of adapter kernels per token, plus batching
    assert many.summary["distinct_adapters"] == 50 and "adapter" in many.requests
    assert "distinct_adapters" not in none.summary and "adapter" not in none.requests
    # serving adapters no request uses costs memory only
    unused = served(50, 0)
    assert unused.summary["tpot_ms"] == none.summary["tpot_ms"]


def test_curve_key_has_the_adapter_inputs():
    def key(mutate):
        data = minimal_scenario_dict()
        mutate(data)
        s = validate_scenario_data(data)
        return curve_key(s, s.deployments[0], s.workloads[0], 0, QUICK_SETTINGS)

    plain = key(lambda d: None)
    assert plain == key(lambda d: d["deployments"][0].update(adapters=0, adapter_rank=64))
    keys = {
        plain,
        key(lambda d: d["deployments"][0].update(adapters=10)),
        key(lambda d: d["deployments"][0].update(adapters=10, adapter_rank=8)),
        key(lambda d: d["deployments"][0].update(adapters=10, max_adapters_per_batch=4)),
        key(
            lambda d: (
                d["deployments"][0].update(adapters=10),
                d["workloads"][0].update(adapters=10),
            )
        ),
        key(
            lambda d: (
                d["deployments"][0].update(adapters=10),
                d["workloads"][0].update(adapters=10, adapter_zipf_exponent=1.0),
            )
        ),
    }
    assert len(keys) == 6
