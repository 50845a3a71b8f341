"""End to end: every bundled scenario runs through `fleetsim run` (shortened horizon), and
`fleetsim compare` marks the cheapest plan that meets every SLO."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from simulator.cli.main import app
from tests.conftest import SCENARIOS

runner = CliRunner()
SUMMARY_KEYS = {"scenario", "plan", "horizon_months", "total_cost_usd", "training_cost_usd",
                "inference_cost_usd", "idle_cost_usd", "gpu_hours_billed", "gpu_hours_busy",
                "energy_kwh", "workloads", "training_jobs", "pools"}  # fmt: skip
WORKLOAD_KEYS = {"requests", "input_tokens", "output_tokens", "ttft_p95_ms", "tpot_p95_ms",
                 "slo_attainment", "unserved_requests", "cost_usd", "cost_per_million_tokens_usd",
                 "api_baseline_cost_usd"}  # fmt: skip
JOB_KEYS = {"runs", "gpu_hours", "gpu_hours_lost", "failures", "first_start", "last_finish",
            "cost_usd", "deadline_missed"}  # fmt: skip


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_bundled_scenario_runs(path, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(path), "--months", "3", "--out", str(out), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert SUMMARY_KEYS <= set(summary)
    for workload in summary["workloads"].values():
        assert WORKLOAD_KEYS <= set(workload)
    for job in summary["training_jobs"].values():
        assert JOB_KEYS <= set(job)
    for name in ["summary.json", "monthly.csv", "hourly.parquet", "latency.csv", "jobs.csv"]:
        assert (out / name).is_file(), name
    assert json.loads((out / "summary.json").read_text()) == summary
    monthly = pd.read_csv(out / "monthly.csv")
    assert monthly["cost_usd"].sum() == pytest.approx(summary["total_cost_usd"], abs=0.01)
    assert summary["gpu_hours_billed"] + 1e-6 >= summary["gpu_hours_busy"]


def test_run_table_output(chat_path):
    result = runner.invoke(app, ["run", str(chat_path), "--months", "2"])
    assert result.exit_code == 0, result.output
    assert "total cost" in result.output and "Workloads" in result.output


def test_run_unknown_plan_exit_2(chat_path):
    result = runner.invoke(app, ["run", str(chat_path), "--plan", "nope"])
    assert result.exit_code == 2
    assert "no plan named 'nope'" in result.output


def test_compare_marks_cheapest_meeting_slo(tmp_path):
    path = next(p for p in SCENARIOS if p.name == "buy-vs-rent.yaml")
    result = runner.invoke(app, ["compare", str(path), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["runs"] == ["base", "reserved-3y", "owned"]
    totals = next(m for m in data["metrics"] if m["key"] == "total_cost_usd")
    meeting = [r for r in data["runs"] if data["meets_every_slo"][r]]
    if meeting:
        assert data["recommended"] == min(meeting, key=lambda r: totals["values"][r])
    assert totals["delta_vs_first"]["base"] == 0
    table = runner.invoke(app, ["compare", str(path), "--plans", "base,owned"])
    assert table.exit_code == 0, table.output
    assert "lifetime spend" in table.output


def test_run_files_are_readable_by_others_under_umask_022(chat_path, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        result = runner.invoke(app, ["run", str(chat_path), "--months", "1", "--out", str(tmp_path / "o"), "-q"])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "o").iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes


def test_run_out_on_an_existing_file_is_one_line_not_a_traceback(chat_path, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    result = runner.invoke(app, ["run", str(chat_path), "--months", "1", "--out", str(blocker), "-q"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{blocker}: is a file, but a directory is needed" in result.output
    assert blocker.read_text() == "mine"
