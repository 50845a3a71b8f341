"""End to end: the bundled support-adapters scenario (50 customer LoRA adapters on Llama-3-8B,
RAG retrieval, a monthly LoRA fine-tune) through `fleetsim run` and `fleetsim report` with the
real inference engine."""

from __future__ import annotations

import json
import warnings

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.scenario.loading import load_scenario
from tests.conftest import ROOT

runner = CliRunner()
PATH = ROOT / "scenarios" / "support-adapters.yaml"


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    out = tmp_path_factory.mktemp("support") / "out"
    result = runner.invoke(
        app, ["run", str(PATH), "--months", "2", "--out", str(out), "--quiet", "--json"]
    )
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.output)
    return summary, out / "base"


def test_run_reports_retrieval_adapters_and_the_lora_job(ran):
    summary, out = ran
    scenario = load_scenario(PATH)
    support = summary["workloads"]["support"]
    assert support["slo_met"] and support["unserved_requests"] == 0
    retrieval = scenario.workload("support").retrieval
    # 2 months served every hour: 1,416 h x hourly price + queries x price per 1k
    expected = (
        1416 * retrieval.usd_per_hour
        + support["retrieval_queries"] / 1000 * retrieval.usd_per_thousand_queries
    )
    assert support["retrieval_cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert support["retrieval_queries"] == pytest.approx(support["requests_served"], rel=1e-9)
    assert summary["retrieval_cost_usd"] == pytest.approx(support["retrieval_cost_usd"], rel=1e-12)
    assert support["ttft_p50_ms"] > 100  # retrieval (median ~106 ms) is in TTFT
    assert support["input_tokens"] / (
        support["requests_served"] + support["requests_cache_hits"]
    ) == pytest.approx(1900)
    job = summary["training_jobs"]["adapter-refresh"]
    assert job["runs"] == 2 and job["runs_finished"] == 2
    pools = sum(p["cost_usd"] for p in summary["pools"].values())
    assert pools + summary["retrieval_cost_usd"] == pytest.approx(
        summary["total_cost_usd"], abs=0.01
    )
    monthly = pd.read_csv(out / "monthly.csv")
    assert monthly["cost_usd"].sum() == pytest.approx(summary["total_cost_usd"], abs=0.01)
    stage = monthly[monthly["entity_kind"] == "retrieval"]
    assert set(stage["pool"]) == {"retrieval:support"} and set(stage["category"]) == {"inference"}
    billing = pd.read_csv(out / "billing.csv")
    assert {"retrieval_queries", "retrieval_hours"} <= set(billing["line_item"])


def test_report_workbook_has_the_retrieval_column(tmp_path):
    out = tmp_path / "support.xlsx"
    result = runner.invoke(app, ["report", str(PATH), "--plans", "base", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = openpyxl.load_workbook(out, data_only=True)
    headers = [c.value for c in wb["Monthly base"][4]]
    assert "support retrieval" in headers
    names = [row[0].value for row in wb["Assumptions"].iter_rows(min_row=5)]
    assert "retrieval_support_usd_per_hour" in names
