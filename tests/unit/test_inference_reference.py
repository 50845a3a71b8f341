"""The engine's shortcuts (closed-form decode runs, merged segments, cuts on arrival, aggregate
KV accounting) reproduce a per-iteration reference scheduler exactly (to float rounding)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.inference.engine import EngineConfig, RequestArrays, simulate
from simulator.inference.replica import ReplicaConfig
from simulator.inference.timing import IterationTimer
from simulator.scenario.loading import load_scenario
from tests.conftest import ROOT
from tests.unit.inference_reference import reference_replica


@pytest.fixture(scope="module")
def cost_model():
    from simulator.scenario.resolve import serving_cost_model

    scenario = load_scenario(ROOT / "scenarios" / "chat-assistant.yaml")
    return serving_cost_model(scenario, "chat-8b")


CASES = {
    # name: (replica config, rate per s, prompt max, output max, prefix share)
    "roomy": (ReplicaConfig(8, 64, 10_000, 16, 4096), 30.0, 200, 60, 0.0),
    "chunked": (ReplicaConfig(6, 24, 10_000, 4, 4096), 40.0, 90, 30, 0.3),
    "kv_tight": (ReplicaConfig(16, 64, 40, 4, 4096), 60.0, 40, 60, 0.0),
    "kv_tight_prefix": (ReplicaConfig(12, 32, 30, 8, 4096), 80.0, 50, 40, 0.5),
    "batch_one": (ReplicaConfig(1, 8, 100, 4, 4096), 5.0, 3, 50, 0.0),
    "context_limit": (ReplicaConfig(4, 32, 200, 4, 64), 20.0, 80, 40, 0.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_matches_per_iteration_reference(cost_model, case, seed):
    rc, rate, prompt_max, output_max, share = CASES[case]
    rng = np.random.default_rng(seed)
    n = 300
    arrival = np.cumsum(rng.exponential(1 / rate, n))
    prompt = rng.integers(1, prompt_max + 1, n)
    output = rng.integers(1, output_max + 1, n)
    output = np.minimum(output, np.maximum(rc.max_context_tokens - prompt, 1))
    cached = np.minimum(np.rint(share * prompt).astype(np.int64), prompt - 1)
    timer = IterationTimer.from_cost_model(cost_model, rc.max_iteration_tokens)
    duration = float(arrival[-1]) + 1e-9
    record = simulate(EngineConfig(rc, 1, "round_robin"), timer,
                      RequestArrays(arrival, prompt, output, cached),
                      duration_s=duration, drain_s=1e9)  # fmt: skip
    ref = reference_replica(cost_model, rc, arrival, prompt, output, cached)
    assert (record.status == "dropped").tolist() == ref["dropped"].tolist()
    assert (record.status != "in_flight").all()
    for key in ("first_scheduled_s", "first_token_s", "finish_s"):
        np.testing.assert_allclose(getattr(record, key), ref[key], rtol=1e-9, atol=1e-9,
                                   err_msg=key)  # fmt: skip
    np.testing.assert_array_equal(record.preemptions, ref["preemptions"])
    if case.startswith("kv_tight"):
        assert record.preemptions.sum() > 0, "the case is meant to exercise pre-emption"


@pytest.mark.parametrize("seed", [4, 5])
def test_round_robin_replicas_each_match_the_reference(cost_model, seed):
    """Round robin sends request i to replica i mod c; each replica then runs on its own."""
    rc, rate, prompt_max, output_max, share = CASES["kv_tight_prefix"]
    rng = np.random.default_rng(seed)
    n, c = 240, 3
    arrival = np.cumsum(rng.exponential(1 / (c * rate), n))
    prompt = rng.integers(1, prompt_max + 1, n)
    output = rng.integers(1, output_max + 1, n)
    cached = np.minimum(np.rint(share * prompt).astype(np.int64), prompt - 1)
    timer = IterationTimer.from_cost_model(cost_model, rc.max_iteration_tokens)
    record = simulate(EngineConfig(rc, c, "round_robin"), timer,
                      RequestArrays(arrival, prompt, output, cached),
                      duration_s=float(arrival[-1]) + 1e-9, drain_s=1e9)  # fmt: skip
    for replica in range(c):
        mine = np.arange(replica, n, c)
        ref = reference_replica(cost_model, rc, arrival[mine], prompt[mine], output[mine], cached[mine])
        np.testing.assert_allclose(record.finish_s[mine], ref["finish_s"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(record.first_token_s[mine], ref["first_token_s"], rtol=1e-9,
                                   atol=1e-9)  # fmt: skip
        np.testing.assert_array_equal(record.preemptions[mine], ref["preemptions"])
