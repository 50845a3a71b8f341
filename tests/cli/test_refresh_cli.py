"""End to end: the lifecycle scenario's workbook shows each step (training, canary, distillation,
renewal, B200 refresh in place with its write-off); `--on DATE` looks at the refreshed pool;
a bad refresh step is a clean FILE:LINE error."""

from __future__ import annotations

import datetime as dt
import json
import warnings

import openpyxl
import pytest
from typer.testing import CliRunner

from simulator.cli.main import app
from tests.conftest import ROOT

runner = CliRunner()
LIFECYCLE = ROOT / "scenarios" / "lifecycle.yaml"


@pytest.fixture(scope="module")
def lifecycle_workbook(tmp_path_factory):
    out = tmp_path_factory.mktemp("lifecycle") / "lifecycle.xlsx"
    result = runner.invoke(app, ["report", str(LIFECYCLE), "-o", str(out), "--plans", "base", "--quiet"])
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return openpyxl.load_workbook(out, data_only=True)


def _deployment_rows(wb) -> dict[tuple[str, str], tuple]:
    rows = [r for r in wb["Deployments"].iter_rows(min_row=5, values_only=True) if r[0] == "base"]
    return {(r[1].strftime("%Y-%m"), r[2]): r for r in rows}


def test_lifecycle_workbook_shows_each_step(lifecycle_workbook):
    wb = lifecycle_workbook
    deps = _deployment_rows(wb)
    held = {key: row[8] for key, row in deps.items()}  # GPU-hours held
    # launch after training, with a canary: both 70B deployments held in February 2027
    assert held[("2027-01", "base-v3-70b")] < held[("2027-02", "base-v3-70b")]
    assert held[("2027-02", "legacy-70b")] > 0 and held[("2027-02", "base-v3-70b")] > 0
    assert held[("2027-05", "legacy-70b")] == 0
    # the distilled model from month 9
    assert held[("2027-08", "distilled-8b")] == 0 < held[("2027-09", "distilled-8b")]
    # the refresh in month 18: the GPU column moves to b200, the 70B needs fewer GPUs
    assert deps[("2028-05", "base-v3-70b")][5] == "h100-sxm"
    assert deps[("2028-06", "base-v3-70b")][5] == "b200"
    assert deps[("2028-06", "distilled-8b")][5] == "h100-sxm"
    assert held[("2028-06", "base-v3-70b")] < held[("2028-05", "base-v3-70b")]
    # the write-off is a Billing line of June 2028, priced by a named cell
    billing = wb["Billing base"]
    lines = [r for r in billing.iter_rows(min_row=5, values_only=True) if r[2]]
    write_off = [r for r in lines if r[2] == "refresh_write_off h100-sxm 2028-06-01" and r[5]]
    assert write_off and {r[0].strftime("%Y-%m") for r in write_off} == {"2028-06"}, lines[:3]
    names = set(wb.defined_names)
    assert "serving_70b_refresh_write_off_usd_per_gpu_h100_sxm_2028_06_01" in names
    assert "serving_8b_usd_per_gpu_hour_from_2028_09_01" in names  # the renewal price
    assert "serving_70b_owned_usd_per_gpu_hour_b200_from_2028_06_01" in names
    monthly = wb["Monthly base"]
    header = [c.value for c in monthly[4]]
    col = header.index("idle (refresh write-off serving-70b)")
    per_month = {r[0].strftime("%Y-%m"): r[col] for r in monthly.iter_rows(min_row=5, max_row=28, values_only=True)}
    assert per_month["2028-06"] > 0 and all(v == 0 for m, v in per_month.items() if m != "2028-06")
    rows = [r for r in wb["Summary"].iter_rows(min_row=5, values_only=True) if isinstance(r[0], str)]
    gpus = [r[2] for r in rows if r[0].strip() == "GPU (and refreshes)"]
    assert "h100-sxm; b200 from 2028-06-01" in gpus
    written_off = [r[2] for r in rows if r[0].strip() == "book value written off at refreshes"]
    assert written_off == [pytest.approx(per_month["2028-06"])]


def test_on_date_uses_the_refreshed_gpus():
    before = runner.invoke(app, ["cost", str(LIFECYCLE), "-d", "base-v3-70b", "--json"])
    after = runner.invoke(app, ["cost", str(LIFECYCLE), "-d", "base-v3-70b", "--on", "2028-06-01", "--json"])
    assert before.exit_code == 0 and after.exit_code == 0, before.output + after.output
    old, new = json.loads(before.output), json.loads(after.output)
    assert (old["gpu"], new["gpu"]) == ("h100-sxm", "b200")
    assert new["decode_tokens_per_s"] > old["decode_tokens_per_s"]


def test_bad_refresh_is_a_clean_error(tmp_path):
    text = LIFECYCLE.read_text().replace("        gpu: b200\n", "        gpu: b2000\n", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "gpu: b2000" in t)
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:{line}: pools.serving-70b.refresh.0.gpu: unknown GPU 'b2000'" in result.output
    assert "Traceback" not in result.output


def test_refresh_before_the_horizon_is_rejected(tmp_path):
    text = LIFECYCLE.read_text().replace("from: 2028-06-01", f"from: {dt.date(2026, 6, 1)}", 1)
    bad = tmp_path / "early.yaml"
    bad.write_text(text)
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "must be after the horizon start 2027-01-01" in result.output
