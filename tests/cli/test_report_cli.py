"""CLI: ``fleetsim report`` writes one workbook (and plots) atomically; bad input exits 2.

The latency curves come from the closed-form M/M/1 curve (tests/synthetic.py), swapped in for
the inference engine so these tests stay fast; the bundled scenarios run the real engine in the
end-to-end tests of ``fleetsim run``.
"""

from __future__ import annotations

import warnings

import openpyxl
import pytest
import yaml
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.fleet import projection
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

runner = CliRunner()


@pytest.fixture(autouse=True)
def synthetic_curves(monkeypatch):
    monkeypatch.setattr(projection, "default_curve_provider", mm1_provider())


def scenario_file(tmp_path, name="mini", **extra):
    data = minimal_scenario_dict()
    data["name"] = name
    data["plans"] = [{"name": "dearer", "set": {"pools.gpus.pricing.usd_per_gpu_hour": 4.0}}]
    data.update(extra)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def open_workbook(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return openpyxl.load_workbook(path, data_only=True)


def test_report_writes_workbook_and_plots(tmp_path):
    scenario = scenario_file(tmp_path)
    out = tmp_path / "out" / "report.xlsx"
    plots = tmp_path / "plots"
    result = runner.invoke(app, ["report", str(scenario), "-o", str(out), "--plots", str(plots)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    wb = open_workbook(out)
    assert {"Summary", "Compare", "Assumptions", "Monthly base", "Monthly dearer"} <= set(
        wb.sheetnames
    )
    assert [c.value for c in wb["Summary"][4][2:4]] == ["base", "dearer"]
    names = {p.name for p in plots.iterdir()}
    assert {"cumulative_spend.png", "monthly_spend_base.png", "latency_small_chat.png",
            "training_base.png", "utilisation_dearer_gpus.png"} <= names  # fmt: skip
    assert not [p for p in out.parent.iterdir() if p.name != "report.xlsx"]


def test_report_chosen_plans_and_quiet(tmp_path):
    out = tmp_path / "r.xlsx"
    result = runner.invoke(
        app, ["report", str(scenario_file(tmp_path)), "--plans", "dearer", "-o", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert [c.value for c in open_workbook(out)["Summary"][4][2:3]] == ["dearer"]


def test_report_several_scenario_files(tmp_path):
    a, b = scenario_file(tmp_path, "alpha"), scenario_file(tmp_path, "beta")
    out = tmp_path / "ab.xlsx"
    result = runner.invoke(app, ["report", str(a), str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    wb = open_workbook(out)
    assert [c.value for c in wb["Summary"][4][2:4]] == ["alpha:base", "beta:base"]
    assert "Monthly alpha-base" in wb.sheetnames


def test_bad_scenario_exits_2_without_a_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(scenario_file(tmp_path).read_text().replace("max_gpus: 64", "max_gpu: 64"))
    out = tmp_path / "report.xlsx"
    result = runner.invoke(app, ["report", str(bad), "-o", str(out)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{bad}:" in result.output and "max_gpu" in result.output
    assert not out.exists()


def test_unknown_plan_exits_2_and_keeps_the_previous_file(tmp_path):
    out = tmp_path / "report.xlsx"
    out.write_bytes(b"previous")
    scenario = scenario_file(tmp_path)
    result = runner.invoke(app, ["report", str(scenario), "--plans", "base,nope", "-o", str(out)])
    assert result.exit_code == 2
    assert result.output.startswith(f"{scenario}:") and ": plans: no plan named 'nope'" in result.output
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini.yaml", "report.xlsx"]


@pytest.mark.parametrize("name", ["report.csv", "report"])
def test_output_must_be_xlsx(tmp_path, name):
    result = runner.invoke(
        app, ["report", str(scenario_file(tmp_path)), "-o", str(tmp_path / name)]
    )
    assert result.exit_code == 2
    assert ".xlsx" in result.output


def test_missing_scenario_file_exits_2(tmp_path):
    result = runner.invoke(
        app, ["report", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "r.xlsx")]
    )
    assert result.exit_code == 2
    assert "cannot read file" in result.output
    assert not (tmp_path / "r.xlsx").exists()


def test_an_unwritable_workbook_path_exits_1_with_one_line(tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    result = runner.invoke(app, ["report", str(scenario_file(tmp_path)), "-o", str(blocker / "r.xlsx"), "-q"])
    assert result.exit_code == 1  # an I/O error, not a usage error
    assert "cannot write the report" in result.output and "Traceback" not in result.output
    assert blocker.read_text() == "mine"


def test_paper_option_footer_and_percentage_point_deltas(tmp_path):
    scenario = scenario_file(tmp_path)
    out = tmp_path / "letter.xlsx"
    result = runner.invoke(app, ["report", str(scenario), "-o", str(out), "--paper", "letter", "-q"])
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out)  # formulas
    assert all(ws.page_setup.paperSize == 1 for ws in book.worksheets)  # Letter
    assert book["Summary"].oddFooter.left.text == "fleetsim: mini"
    compare = book["Compare"]
    shares = [row for row in compare.iter_rows() if row[1].value == "%"]
    assert shares
    for row in shares:  # a difference of shares: percentage points, not a percentage
        delta = row[4]  # Metric, Unit, base, dearer, delta dearer vs base
        assert "*100" in delta.value and "pp" in delta.number_format
    result = runner.invoke(app, ["report", str(scenario), "-o", str(out), "--paper", "a3"])
    assert result.exit_code == 2 and "expected a4 or letter" in result.output


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_report_focus_export_of_every_plan(tmp_path, suffix):
    import pandas as pd

    path = scenario_file(tmp_path)
    target = tmp_path / f"focus{suffix}"
    result = runner.invoke(app, ["report", str(path), "--focus", str(target), "--quiet"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    assert set(frame["x_plan"]) == {"base", "dearer"}
    assert frame.groupby("x_plan")["EffectiveCost"].sum()["dearer"] > frame.groupby("x_plan")["EffectiveCost"].sum()["base"]
    assert not list(tmp_path.glob("*.tmp*"))


def test_report_focus_must_be_csv_or_parquet(tmp_path):
    result = runner.invoke(app, ["report", str(scenario_file(tmp_path)), "--focus", str(tmp_path / "f.xlsx")])
    assert result.exit_code == 2
    assert ".csv or .parquet" in result.output and not (tmp_path / "f.xlsx").exists()
