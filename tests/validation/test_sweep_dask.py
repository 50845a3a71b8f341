"""Sweeps on a Dask LocalCluster: the same rows as serially, and no plan lost to a dead worker.

The real engine (short curve simulations) on a tiny scenario with a one-month horizon, two
worker processes; the cluster runs use a fresh curve cache, so curves are built on the workers.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import cloudpickle
import pandas as pd
import pytest

from simulator.scenario.checks import validate_scenario_data
from simulator.sweep.grid import expand, parse_grid
from simulator.sweep.runner import Execution, Executor, sweep
from simulator.sweep.tasks import CACHE_ENV, CurveSource, run_task

# the worker processes unpickle the crashing tasks below by value, not by importing this file
cloudpickle.register_pickle_by_value(sys.modules[__name__])

GRID = {
    "deployments.small.tensor_parallel": [1, 2],
    "deployments.small.model": ["llama-3-8b", "llama-3-70b"],  # 70B at TP 1 does not fit: an error row
    "pricing": [
        {"name": "on-demand", "set": {"pools.gpus.pricing.usd_per_gpu_hour": 2.5}},
        {"name": "reserved", "set": {"pools.gpus.pricing": {"kind": "reserved", "committed_gpus": 4,
                                                             "term_months": 1, "usd_per_gpu_hour": 2.0}}},
    ],
}  # fmt: skip
QUICK = CurveSource(quick=True)


@pytest.fixture(scope="module")
def setup():
    from tests.conftest import minimal_scenario_dict

    data = minimal_scenario_dict()
    data["horizon"]["months"] = 1
    data["pools"][0]["gpus_per_node"] = 1  # whole-node rounding would absorb the draws' differences
    data["uncertainty"] = {
        "workloads.chat.traffic.growth_per_month": {"distribution": "uniform", "low": 0.0, "high": 0.2},
        "training_jobs.ft.tokens": {"distribution": "normal", "mean": 1e9, "sd": 2e8},
    }
    scenario = validate_scenario_data(data)
    return scenario, expand(parse_grid(GRID, scenario=scenario))


@pytest.fixture(scope="module")
def serial_rows(setup, tmp_path_factory):
    scenario, plans = setup
    with _cache(tmp_path_factory.mktemp("serial-cache")), Executor(Execution(workers=1)) as executor:
        return sweep(scenario, plans, replications=2, executor=executor, curves=QUICK)


class _cache:
    """Point FLEETSIM_CACHE_DIR at a directory for a block."""

    def __init__(self, path: Path) -> None:
        self.path, self.previous = str(path), os.environ.get(CACHE_ENV)

    def __enter__(self) -> None:
        os.environ[CACHE_ENV] = self.path

    def __exit__(self, *exc: object) -> None:
        if self.previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = self.previous


def test_serial_sweep_records_failed_plans_and_goes_on(serial_rows):
    assert len(serial_rows) == 8 * 2
    failed = serial_rows[serial_rows["status"] == "error"]
    assert set(failed["plan"]) == {"pricing=on-demand, tensor_parallel=1, model=llama-3-70b",
                                   "pricing=reserved, tensor_parallel=1, model=llama-3-70b"}  # fmt: skip
    assert failed["error"].str.contains("weights at bf16 take").all()
    ok = serial_rows[serial_rows["status"] == "ok"]
    assert ok["total_cost_usd"].notna().all() and ok["pareto"].any()
    # the two replications draw different training sizes and growth
    assert (ok.groupby("plan_id")["total_cost_usd"].nunique() == 2).all()


def test_local_cluster_gives_exactly_the_serial_rows(setup, serial_rows, tmp_path_factory):
    scenario, plans = setup
    with _cache(tmp_path_factory.mktemp("cluster-cache")), Executor(Execution(workers=2)) as executor:
        rows = sweep(scenario, plans, replications=2, executor=executor, curves=QUICK)
        assert len(executor.client.scheduler_info()["workers"]) == 2
    pd.testing.assert_frame_equal(rows, serial_rows)


def crash_once(spec, after=None, *, marker: str, plan_id: int):
    """Kill the worker process the first time it runs ``plan_id`` (marker file: it happened)."""
    if spec.plan_id == plan_id and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return run_task(spec, after)


def always_raises(spec, after=None, *, plan_id: int):
    if spec.plan_id == plan_id:
        raise RuntimeError("lost connection")
    return run_task(spec, after)


def test_a_worker_killed_mid_sweep_loses_no_plan(setup, serial_rows, tmp_path):
    scenario, plans = setup
    marker = tmp_path / "crashed"
    task = functools.partial(crash_once, marker=str(marker), plan_id=3)
    with _cache(tmp_path / "cache"), Executor(Execution(workers=2), task=task) as executor:
        rows = sweep(scenario, plans, replications=2, executor=executor, curves=QUICK)
    assert marker.exists()  # a worker did die
    assert len(rows) == len(serial_rows)
    pd.testing.assert_frame_equal(rows, serial_rows)  # the killed task was run again elsewhere


def test_a_task_that_keeps_failing_is_recorded_as_failed(setup, tmp_path):
    scenario, plans = setup
    task = functools.partial(always_raises, plan_id=0)
    with _cache(tmp_path / "cache"), Executor(Execution(workers=2, retries=1), task=task) as executor:
        rows = sweep(scenario, plans[:4], replications=None, executor=executor, curves=QUICK)
    assert rows["plan_id"].tolist() == [0, 1, 2, 3]
    assert rows.loc[0, "status"] == "error"
    assert rows.loc[0, "error"] == "worker failed: RuntimeError: lost connection"
    assert rows.loc[1, "error"].startswith("deployments.small.tensor_parallel: llama-3-70b")  # invalid
    assert (rows.loc[2:, "status"] == "ok").all()
