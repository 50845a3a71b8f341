"""End to end: every bundled scenario runs through `fleetsim run` (shortened horizon), and
`fleetsim compare` marks the cheapest plan that meets every SLO."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from simulator.cli.main import app
from tests.conftest import ROOT, SCENARIOS

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
    (summary,) = json.loads(result.output)  # always a list, one summary per plan
    assert SUMMARY_KEYS <= set(summary)
    for workload in summary["workloads"].values():
        assert WORKLOAD_KEYS <= set(workload)
    for job in summary["training_jobs"].values():
        assert JOB_KEYS <= set(job)
    out = out / "base"  # OUT/<plan>/ whatever the number of plans
    for name in ["summary.json", "monthly.csv", "hourly.parquet", "latency.csv", "jobs.csv"]:
        assert (out / name).is_file(), name
    assert json.loads((out / "summary.json").read_text()) == summary
    monthly = pd.read_csv(out / "monthly.csv")
    cents = 0.005 * len(monthly) + 1e-9  # each CSV row is rounded to the cent
    assert monthly["cost_usd"].sum() == pytest.approx(summary["total_cost_usd"], abs=cents)
    focus = pd.read_csv(out / "focus.csv")  # the FOCUS export: cash and accrual views
    rows = 0.005 * len(focus) + 0.01
    assert focus["EffectiveCost"].sum() == pytest.approx(summary["total_cost_usd"], abs=rows)
    assert focus["BilledCost"].sum() == pytest.approx(summary["cash_flow"]["total_usd"], abs=rows)
    assert pd.read_csv(out / "cashflow.csv")["cash_usd"].sum() == pytest.approx(
        summary["cash_flow"]["total_usd"], abs=0.01)
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
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "o" / "base").iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes
    assert {stat.S_IMODE(d.stat().st_mode) for d in (tmp_path / "o", tmp_path / "o" / "base")} == {0o755}


def test_run_out_on_an_existing_file_is_one_line_not_a_traceback(chat_path, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    result = runner.invoke(app, ["run", str(chat_path), "--months", "1", "--out", str(blocker), "-q"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{blocker}: is a file, but a directory is needed" in result.output
    assert blocker.read_text() == "mine"


def test_one_layout_for_any_number_of_plans_and_no_stale_mix(tmp_path):
    out = tmp_path / "out"
    path = str(ROOT / "scenarios" / "buy-vs-rent.yaml")
    result = runner.invoke(app, ["run", path, "--all-plans", "--months", "1", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert [s["plan"] for s in json.loads(result.stdout)] == ["base", "reserved-3y", "owned"]
    assert sorted(p.name for p in out.iterdir()) == ["base", "compare.json", "owned", "reserved-3y"]
    compare = json.loads((out / "compare.json").read_text())
    assert compare["runs"] == ["base", "reserved-3y", "owned"]
    # one plan into the same folder would leave the others stale beside it: refused
    result = runner.invoke(app, ["run", path, "--months", "1", "--out", str(out), "-q"])
    assert result.exit_code == 1 and "which this run would not write" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["base", "compare.json", "owned", "reserved-3y"]
    result = runner.invoke(app, ["run", path, "--months", "1", "--out", str(out), "-q", "--force"])
    assert result.exit_code == 0 and [p.name for p in out.iterdir()] == ["base"]
    assert "wrote" in result.stderr and "wrote" not in result.stdout  # messages on stderr


def test_fail_on_slo_miss_exits_1(tmp_path):
    import yaml

    from tests.conftest import minimal_scenario_dict

    data = minimal_scenario_dict()
    data["workloads"][0]["slo"] = {"ttft_p95_ms": 0.001}  # impossible
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    assert runner.invoke(app, ["run", str(path), "-q"]).exit_code == 0
    result = runner.invoke(app, ["run", str(path), "-q", "--fail-on-slo-miss"])
    assert result.exit_code == 1 and "SLO missed (base: chat)" in result.output


def test_monthly_rows_have_one_key_each(tmp_path):
    out = tmp_path / "out"
    path = str(ROOT / "scenarios" / "chat-assistant.yaml")  # one workload on two deployments of one pool
    assert runner.invoke(app, ["run", path, "--months", "2", "--out", str(out), "-q"]).exit_code == 0
    monthly = pd.read_csv(out / "base" / "monthly.csv", keep_default_na=False)
    key = ["month", "pool", "deployment", "entity_kind", "entity", "category"]
    assert not monthly.duplicated(key).any()
    assert set(monthly.loc[monthly["entity"] == "chat", "deployment"]) == {"chat-70b", "chat-8b"}


@pytest.mark.parametrize("file_format,suffixes", [("both", {".csv", ".parquet"}), ("csv", {".csv"}),
                                                  ("parquet", {".parquet"})])  # fmt: skip
def test_every_table_in_the_formats_asked_months_as_dates_cents_in_csv(tmp_path, chat_path, file_format, suffixes):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(chat_path), "--months", "2", "--out", str(out), "-q",
                                 "--format", file_format])  # fmt: skip
    assert result.exit_code == 0, result.output
    files = {p.name for p in (out / "base").iterdir()} - {"summary.json"}
    tables = ("monthly", "hourly", "latency", "jobs", "deployments_hourly", "billing", "cashflow", "focus")
    assert files == {f"{t}{s}" for t in tables for s in suffixes}
    if ".csv" in suffixes:
        text = (out / "base" / "monthly.csv").read_text()
        first = text.splitlines()[1].split(",")
        assert first[0] == "2027-01-01"
        cost = first[text.splitlines()[0].split(",").index("cost_usd")]
        assert len(cost.split(".")[-1]) <= 2  # cents
    if ".parquet" in suffixes:
        monthly = pd.read_parquet(out / "base" / "monthly.parquet")
        assert str(monthly["month"].iloc[0]) == "2027-01-01"
        summary = json.loads((out / "base" / "summary.json").read_text())
        assert monthly["cost_usd"].sum() == pytest.approx(summary["total_cost_usd"], rel=1e-12)


def test_unknown_format_is_a_usage_error(tmp_path, chat_path):
    result = runner.invoke(app, ["run", str(chat_path), "--out", str(tmp_path / "o"), "--format", "xls"])
    assert result.exit_code == 2 and "expected csv, parquet or both" in result.output
    assert not (tmp_path / "o").exists()


def test_run_table_shows_regions_and_outages_and_no_empty_training_table(tmp_path):
    path = ROOT / "scenarios" / "multi-region.yaml"
    result = runner.invoke(app, ["run", str(path), "--months", "6", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "Regions" in result.output and "us-east-drill" in result.output
    assert "Training jobs" not in result.output  # the scenario has none


def test_workbook_has_no_training_sheets_without_training(tmp_path):
    from openpyxl import load_workbook

    path = ROOT / "scenarios" / "multi-region.yaml"
    book = tmp_path / "mr.xlsx"
    result = runner.invoke(app, ["report", str(path), "-o", str(book), "--plans", "base"])
    assert result.exit_code == 0, result.output
    names = load_workbook(book, read_only=True).sheetnames
    assert "Training jobs" not in names and "Training runs" not in names and "Latency & SLO" in names
