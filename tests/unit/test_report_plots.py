"""PNG plots (simulator.report.plots): every plot is written, atomically, and readable."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from matplotlib.image import imread

from simulator.report import plots
from simulator.report.runs import ReportRun
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import scenario_for_plan
from tests.conftest import minimal_scenario_dict
from tests.synthetic import MM1Curve, mm1_provider

MM1 = mm1_provider()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs() -> list[ReportRun]:
    data = minimal_scenario_dict()
    data["workloads"][0]["traffic"]["requests_per_second"] = 10.0
    data["training_jobs"][0]["deadline"] = "2027-02-20"
    data["training_jobs"][0]["failures_per_gpu_day"] = 2.0
    data["plans"] = [{"name": "cheaper", "set": {"pools.gpus.pricing.usd_per_gpu_hour": 2.0}}]
    s = validate_scenario_data(data)
    out = []
    for plan in ("base", "cheaper"):
        variant = scenario_for_plan(s, plan)
        curves = {("small", "chat"): MM1(variant, "small", "chat")}
        out.append(ReportRun(plan, variant, run(s, plan=plan, curve_provider=MM1), curves))
    return out


def assert_png(path, min_width=800):
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.shape[1] >= min_width and image.shape[0] >= 250
    assert image[..., :3].std() > 0.05  # not blank


def test_every_plot_is_written(runs, tmp_path):
    written = plots.write_plots(runs, tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted([
        "cumulative_spend.png", "monthly_spend_base.png", "monthly_spend_cheaper.png",
        "utilisation_base_gpus.png", "utilisation_cheaper_gpus.png", "training_base.png",
        "training_cheaper.png", "latency_small_chat.png",  # identical curves: one plot
    ])  # fmt: skip
    for path in written:
        assert_png(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no temp files left


def test_latency_plot_marks_capacity_and_slo(tmp_path):
    curve = MM1Curve(service_rate=5.0, slo_ms=800.0)
    slo = validate_scenario_data(minimal_scenario_dict()).workloads[0].slo
    path = plots.plot_latency_vs_load(curve, "small", "chat", slo, tmp_path / "latency.png")
    assert_png(path, min_width=1500)


def test_latency_plots_skipped_without_the_inference_engine(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "simulator.inference", types.ModuleType("simulator.inference"))
    bare = [ReportRun(r.label, r.scenario, r.result) for r in runs]
    written = plots.write_plots(bare, tmp_path)
    assert written and not any(p.name.startswith("latency_") for p in written)


def test_heatmap_table_is_busy_over_billed(runs):
    from simulator.report.details import hour_of_day_utilisation

    hourly = runs[0].result.hourly
    table = hour_of_day_utilisation(hourly, "gpus")
    assert table.shape == (2, 24)
    rows = hourly[hourly["time"].dt.hour == 3]
    jan = rows[rows["time"].dt.month == 1]
    assert table.iloc[0, 3] == pytest.approx(jan["gpus_busy"].sum() / jan["gpus_billed"].sum())
    assert np.nanmax(table.to_numpy()) <= 1 + 1e-9


def test_usd_axis_labels():
    assert plots.usd_axis(1_250_000) == "$1.2M"
    assert plots.usd_axis(350_000) == "$350k"
    assert plots.usd_axis(900) == "$900"
    assert plots.slug("a:b c/d") == "a-b-c-d"


def test_outlier_months_cut_the_axis_only_when_they_would_squash_the_rest():
    flat = np.array([100.0, 110, 95, 105, 100, 98])
    assert plots.outlier_axis_top(flat) is None
    lump = np.array([100.0, 110, 5000, 105, 100, 98, 102, 99])
    assert plots.outlier_axis_top(lump) == pytest.approx(1.25 * 110)
    assert plots.outlier_axis_top(np.array([0.0, 0, 900])) is None  # too few months to judge


def test_refresh_write_off_is_its_own_category_and_events_are_dated():
    from simulator.results.result import write_off_entity

    data = minimal_scenario_dict()
    data["horizon"]["months"] = 4
    data["pools"][0]["pricing"] = {"kind": "owned", "capex_usd_per_gpu": 25000, "lifetime_years": 5, "gpus": 8,
                                   "overflow": "on_demand", "overflow_usd_per_gpu_hour": 3.0}  # fmt: skip
    data["pools"][0]["refresh"] = [{"from": "2027-03-01", "gpu": "b200", "residual_usd_per_gpu": 5000}]
    data["deployments"][0]["until"] = "2027-04-01"
    scenario = validate_scenario_data(data)
    result = run(scenario, curve_provider=mm1_provider())
    report = ReportRun("base", scenario, result)
    table = plots.monthly_by_category(report)
    written = result.monthly[result.monthly["entity"] == write_off_entity("gpus")]["cost_usd"].sum()
    assert written > 0 and table["write-off"].sum() == pytest.approx(written)
    assert table.sum().sum() == pytest.approx(result.summary["total_cost_usd"])
    events = dict(plots.monthly_events(report, table.index))
    assert events == {2: "gpus: refresh to b200", 3: "small retires"}
