"""The per-plan task: rows, errors recorded not raised, the cache directory, seeds, pickling."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.paths import scenario_data
from simulator.sweep.tasks import (
    CACHE_ENV,
    CurveSource,
    TaskSpec,
    cache_env,
    children,
    effective_attainment,
    run_task,
    summary_row,
)
from tests.synthetic import mm1_provider


@pytest.fixture
def data(mini):
    return scenario_data(validate_scenario_data(mini))


def test_row_holds_the_summary_figures(data):
    row = run_task(TaskSpec(3, 0, data, None, mm1_provider()))
    assert row["status"] == "ok" and row["error"] is None
    assert (row["plan_id"], row["replication"], row["seed"]) == (3, 0, 1)
    expected = run(validate_scenario_data(data), curve_provider=mm1_provider()).summary
    assert row["total_cost_usd"] == expected["total_cost_usd"]
    assert row["fy.FY2027.cost_usd"] == pytest.approx(expected["total_cost_usd"])
    assert row["workload.chat.ttft_p95_ms"] == expected["workloads"]["chat"]["ttft_p95_ms"]
    assert row["pool.gpus.peak_gpus"] == expected["pools"]["gpus"]["peak_gpus"]
    assert row["meets_slo"] is True
    assert row["total_cost_usd"] == pytest.approx(
        row["inference_cost_usd"] + row["training_cost_usd"] + row["idle_cost_usd"], abs=0.01
    )


def test_a_bad_plan_is_a_row_with_its_error(data):
    data["deployments"][0]["model"] = "llama-3-70b"  # 140 GB of bf16 weights on one 80 GB GPU
    row = run_task(TaskSpec(0, 0, data, None, mm1_provider()))
    assert row["status"] == "error"
    assert row["error"].startswith("deployments.small.tensor_parallel: llama-3-70b weights at bf16 take")


def test_an_exception_in_the_engine_is_a_row_too(data):
    def broken(scenario, deployment, workload):
        raise RuntimeError("boom")

    row = run_task(TaskSpec(0, 0, data, None, broken))
    assert (row["status"], row["error"]) == ("error", "RuntimeError: boom")


def test_replications_draw_from_their_own_seed_sequence(data):
    data["uncertainty"] = {"pools.gpus.pricing.usd_per_gpu_hour": {"distribution": "normal", "mean": 3, "sd": 0.3}}
    seeds = np.random.SeedSequence(1).spawn(3)
    rows = [run_task(TaskSpec(0, r, data, seeds[r], mm1_provider())) for r in range(3)]
    again = run_task(TaskSpec(0, 2, data, np.random.SeedSequence(1).spawn(3)[2], mm1_provider()))
    assert again == rows[2]
    assert len({r["total_cost_usd"] for r in rows}) == 3
    assert len({r["seed"] for r in rows}) == 3


def test_a_seed_sequence_shared_by_tasks_gives_each_the_same_draws(data):
    """SeedSequence.spawn counts its children; tasks must not depend on what ran before them."""
    data["uncertainty"] = {"pools.gpus.pricing.usd_per_gpu_hour": {"distribution": "normal", "mean": 3, "sd": 0.3}}
    shared = np.random.SeedSequence(1).spawn(1)[0]
    first = run_task(TaskSpec(0, 0, data, shared, mm1_provider()))
    second = run_task(TaskSpec(1, 0, data, shared, mm1_provider()))
    assert first | {"plan_id": 1} == second
    assert children(shared, 2)[1].spawn_key == shared.spawn(2)[1].spawn_key == (0, 1)


def test_cache_env_sets_and_restores(monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "/before")
    with cache_env("/during"):
        assert os.environ[CACHE_ENV] == "/during"
    assert os.environ[CACHE_ENV] == "/before"
    monkeypatch.delenv(CACHE_ENV)
    with cache_env("/during"):
        assert os.environ[CACHE_ENV] == "/during"
    assert CACHE_ENV not in os.environ
    with cache_env(None):
        assert CACHE_ENV not in os.environ


def test_tasks_pickle(data):
    spec = TaskSpec(1, 2, data, np.random.SeedSequence(5).spawn(3)[2], CurveSource(quick=True), "/tmp/x")
    back = pickle.loads(pickle.dumps(spec))
    assert back.scenario == spec.scenario and back.curves == spec.curves
    assert (back.seed.entropy, back.seed.spawn_key) == (5, (2,))
    assert CurveSource().pinned(7) == CurveSource(7) and CurveSource(3).pinned(7) == CurveSource(3)


def test_effective_attainment_counts_unserved_requests_as_misses():
    assert effective_attainment({"requests_served": 90, "unserved_requests": 10, "slo_attainment": 1.0,
                                 "requests": 100}) == pytest.approx(0.9)  # fmt: skip
    assert effective_attainment({"requests_served": 0, "unserved_requests": 0, "slo_attainment": None,
                                 "requests": 0}) == 1.0  # fmt: skip


def test_unserved_requests_fail_the_slo(data):
    summary = run(validate_scenario_data(data), curve_provider=mm1_provider()).summary
    summary["workloads"]["chat"]["unserved_requests"] = 5.0
    assert summary_row(summary)["meets_slo"] is False


def test_too_long_requests_count_as_misses_not_as_missing_capacity():
    from simulator.sweep.tasks import capacity_unserved, effective_attainment

    workload = {"requests": 1000.0, "requests_served": 997.0, "requests_cache_hits": 0.0, "unserved_requests": 3.0,
                "unserved_too_long_requests": 3.0, "slo_attainment": 0.99}  # fmt: skip
    assert capacity_unserved(workload) == 0.0
    assert effective_attainment(workload) == pytest.approx(0.99 * 997 / 1000)
    assert capacity_unserved({**workload, "unserved_requests": 10.0}) == 7.0


def test_dask_workers_start_without_malloc_trimming_and_single_threaded():
    from simulator.sweep.runner import worker_environment

    environ = worker_environment()
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert {environ[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")} == {1}
