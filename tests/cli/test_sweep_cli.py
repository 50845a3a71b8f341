"""`fleetsim sweep`, `fleetsim optimize` and `fleetsim run --replications` end to end (in-process,
--workers 1; the Dask runs are in tests/validation/test_sweep_dask.py)."""

from __future__ import annotations

import json

import openpyxl
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.scenario.loading import load_scenario
from tests.conftest import minimal_scenario_dict

runner = CliRunner()

GRID = """\
# two TP degrees x two ways of buying
deployments.small.tensor_parallel: [1, 2]
pricing:
  - name: on-demand
    set: {pools.gpus.pricing.usd_per_gpu_hour: 2.5}
  - name: reserved
    set:
      pools.gpus.pricing: {kind: reserved, committed_gpus: 2, term_months: 1, usd_per_gpu_hour: 2.0}
"""


@pytest.fixture
def files(tmp_path):
    data = minimal_scenario_dict()
    data["horizon"]["months"] = 1
    data["workloads"][0]["traffic"]["growth_per_month"] = {"distribution": "normal", "mean": 0.05, "sd": 0.02}
    data["training_jobs"][0]["tokens"] = {"distribution": "lognormal", "mean": 1e9, "sigma": 0.3}
    scenario = tmp_path / "mini.yaml"
    scenario.write_text(yaml.safe_dump(data, sort_keys=False))
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    return scenario, grid, tmp_path


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_sweep_writes_rows_and_report(files):
    scenario, grid, tmp = files
    out, report = tmp / "out" / "sweep.parquet", tmp / "out" / "sweep.xlsx"
    result = invoke("sweep", scenario, "--grid", grid, "-o", out, "--report", report, "--workers", "1",
                    "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["plans"], summary["runs"], summary["ok"], summary["errors"]) == (4, 4, 4, 0)
    rows = pd.read_parquet(out)
    assert rows["plan_id"].tolist() == [0, 1, 2, 3]
    assert {"plan", "replication", "seed", "status", "error", "alt.pricing", "set.deployments.small.tensor_parallel",
            "total_cost_usd", "inference_cost_usd", "training_cost_usd", "idle_cost_usd",
            "workload.chat.slo_attainment", "workload.chat.ttft_p95_ms", "workload.chat.unserved_requests",
            "workload.chat.cost_per_million_tokens_usd", "pool.gpus.peak_gpus", "pareto"} <= set(rows.columns)  # fmt: skip
    assert rows["pareto"].any()
    assert [p["plan_id"] for p in summary["pareto"]] == sorted(rows.loc[rows["pareto"], "plan_id"].tolist(),
                                                             key=lambda i: rows.loc[i, "total_cost_usd"])  # fmt: skip
    book = openpyxl.load_workbook(report, read_only=True)
    assert book.sheetnames == ["Sweep", "Pareto"]
    assert not list(out.parent.glob(".*.tmp"))  # atomic writes leave no temp files


def test_sweep_on_a_local_cluster_writes_the_same_rows(files):
    scenario, grid, tmp = files
    for workers in ("1", "2"):
        result = invoke("sweep", scenario, "--grid", grid, "-o", tmp / f"w{workers}.parquet", "--workers", workers,
                        "--replications", "2", "--quiet")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert result.output == ""
    pd.testing.assert_frame_equal(pd.read_parquet(tmp / "w1.parquet"), pd.read_parquet(tmp / "w2.parquet"))


def test_sweep_with_replications_gives_ranges(files):
    scenario, grid, tmp = files
    report = tmp / "r.xlsx"
    result = invoke("sweep", scenario, "--grid", grid, "-o", tmp / "r.parquet", "--report", report,
                    "--replications", "3", "--workers", "1", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["runs"] == 12 and len(summary["ranges"]) == 4
    cost = summary["ranges"][0]["total_cost_usd"]
    assert cost["n"] == 3 and cost["p10"] <= cost["p50"] <= cost["p90"]
    assert set(summary["ranges"][0]["workloads"]["chat"]) >= {"ttft_p95_ms", "tpot_p95_ms"}
    assert "Ranges" in openpyxl.load_workbook(report, read_only=True).sheetnames
    table = invoke("sweep", scenario, "--grid", grid, "-o", tmp / "r.parquet", "--replications", "2",
                   "--workers", "1")  # fmt: skip
    assert table.exit_code == 0, table.output
    assert "Pareto front" in table.output and "P10-P90" in table.output


def test_bad_grid_is_file_line_path_message_and_exit_2(files):
    scenario, _, tmp = files
    bad = tmp / "bad.yaml"
    bad.write_text("deployments.small.tensor_parallel: [1, 2]\ndeployments.small.tensor_paralel: [1]\n"
                   "fixed: {pools.gpus.max_gpu: 8}\n")  # fmt: skip
    out = tmp / "never.parquet"
    result = invoke("sweep", scenario, "--grid", bad, "-o", out, "--workers", "1")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"{bad}:2: deployments.small.tensor_paralel: no field 'deployments.small.tensor_paralel'")
    assert lines[1].startswith(f"{bad}:3: fixed.pools.gpus.max_gpu: no field 'pools.gpus.max_gpu' to set")
    assert "Traceback" not in result.output and not out.exists()
    garbled = tmp / "garbled.yaml"
    garbled.write_text("deployments.small.tensor_parallel: [1, 2\n")
    result = invoke("sweep", scenario, "--grid", garbled, "-o", out)
    assert result.exit_code == 2 and f"{garbled}:2: (root): not valid YAML" in result.output


def test_workers_and_scheduler_are_exclusive(files):
    scenario, grid, tmp = files
    result = invoke("sweep", scenario, "--grid", grid, "-o", tmp / "x.parquet", "--workers", "2",
                    "--scheduler", "tcp://127.0.0.1:8786")  # fmt: skip
    assert result.exit_code == 2 and "not both" in result.output


def test_optimize_with_a_search_grid_prints_and_writes_the_plan(files):
    scenario, grid, tmp = files
    plan_file = tmp / "plan.yaml"
    result = invoke("optimize", scenario, "--search", grid, "--workers", "1", "--out", plan_file)
    assert result.exit_code == 0, result.output
    assert "WINNER" in result.output and "plans:" in result.output
    entry = yaml.safe_load(plan_file.read_text())["plans"][0]
    assert entry["name"] == "optimized" and entry["set"]
    pasted = yaml.safe_load(scenario.read_text()) | {"plans": [entry]}
    scenario.write_text(yaml.safe_dump(pasted, sort_keys=False))
    assert load_scenario(scenario).plan("optimized").set == entry["set"]
    again = invoke("optimize", scenario, "--search", grid, "--workers", "1", "--json", "--name", "cheap")
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["winner"]["meets_slo"] and data["plan_entry"]["name"] == "cheap"
    assert data["winner"]["total_cost_usd"] <= min(r["total_cost_usd"] for r in data["runners_up"])


def test_optimize_exit_1_when_nothing_meets_the_slo(files):
    scenario, grid, _ = files
    data = yaml.safe_load(scenario.read_text())
    data["workloads"][0]["slo"] = {"ttft_p95_ms": 0.01, "tpot_p95_ms": 0.01}  # impossible
    scenario.write_text(yaml.safe_dump(data, sort_keys=False))
    result = invoke("optimize", scenario, "--search", grid, "--workers", "1")
    assert result.exit_code == 1, result.output
    assert "no plan meets every SLO" in result.output and "Traceback" not in result.output


def test_run_with_replications_prints_ranges_and_json(files):
    scenario, _, tmp = files
    result = invoke("run", scenario, "--replications", "4", "--workers", "1", "--json", "--out", tmp / "mc")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["replications"] == 4 and data["failed"] == 0
    assert data["uncertain_inputs"] == ["training_jobs.ft.tokens", "workloads.chat.traffic.growth_per_month"]
    assert set(data["total_cost_usd"]) >= {"p10", "p50", "p90", "mean", "ci90_low", "ci90_high"}
    assert set(data["cost_by_fiscal_year_usd"]) == {"FY2027"}
    assert set(data["workloads"]["chat"]["ttft_p95_ms"]) >= {"p10", "p90", "ci90_low"}
    assert len(pd.read_parquet(tmp / "mc" / "replications.parquet")) == 4
    assert json.loads((tmp / "mc" / "montecarlo.json").read_text()) == data
    table = invoke("run", scenario, "--replications", "3", "--workers", "1")
    assert table.exit_code == 0, table.output
    assert "3 replications" in table.output and "P90" in table.output and "90% CI" in table.output


def test_run_replications_function(files, capsys):
    """The function behind `fleetsim run --replications` (what run.py calls)."""
    from simulator.cli.replications import run_replications

    scenario, _, _ = files
    run_replications(load_scenario(scenario), ["base"], 2, as_json=True, workers=1)
    assert json.loads(capsys.readouterr().out)["replications"] == 2
