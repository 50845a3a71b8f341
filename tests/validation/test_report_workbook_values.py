"""The finance workbook read back with openpyxl: every figure against the run's summary.

Runs use the closed-form M/M/1 latency curve (tests/synthetic.py) over two months, so the whole
module takes a few seconds. ``build_runs`` and ``write_report`` are shared with the LibreOffice
recalculation tests (test_report_workbook_recalc.py).
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import openpyxl
import pytest

from simulator.economics.pricing import HOURS_PER_YEAR
from simulator.report import workbook as workbook_module
from simulator.report.runs import ReportRun
from simulator.report.workbook import write_workbook
from simulator.results.runner import plan_names, run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import scenario_for_plan
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

MM1 = mm1_provider(service_rate=10.0, slo_ms=500.0)
OWNED = {"kind": "owned", "capex_usd_per_gpu": 20000, "lifetime_years": 4,
         "opex_fraction_per_year": 0.05, "power_usd_per_kwh": 0.12, "pue": 1.2}  # fmt: skip


def report_scenario_data() -> dict:
    """Two pools (reserved serving with overflow, on-demand training), two workloads sharing one
    deployment, two training jobs, an API baseline, a fiscal year starting in February, and
    plans that change a shared price (owned hardware), a per-plan price (pricier), and owned
    hardware refreshed in place to B200 (refresh: its write-off and B200 lines)."""
    data = minimal_scenario_dict()
    data["fiscal_year_start_month"] = 2
    data["pools"] = [
        {"name": "serving", "gpu": "h100-sxm", "max_gpus": 64,
         "pricing": {"kind": "reserved", "committed_gpus": 6, "term_months": 1,
                     "usd_per_gpu_hour": 2.0, "overflow_usd_per_gpu_hour": 5.0}},
        {"name": "train-pool", "gpu": "h100-sxm", "max_gpus": 32,
         "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 3.0}},
    ]  # fmt: skip
    data["deployments"][0]["pool"] = "serving"
    chat = data["workloads"][0]
    chat["traffic"].update(requests_per_second=12.0, diurnal_peak_to_mean=1.6, growth_per_month=0.2)
    batch = {**chat, "name": "batch", "traffic": {"requests_per_second": 4.0},
             "prompt_tokens": {"distribution": "fixed", "value": 2000}}  # fmt: skip
    data["workloads"].append(batch)
    job = data["training_jobs"][0]
    job.update(pool="train-pool", failures_per_gpu_day=0.0)
    data["training_jobs"].append({**job, "name": "ft2", "gpus": 4, "start": "2027-02-03"})
    data["api_baseline"] = {
        "usd_per_million_input_tokens": 0.6,
        "usd_per_million_output_tokens": 2.4,
    }
    data["plans"] = [
        {"name": "owned", "set": {"pools.serving.pricing": OWNED}},
        {"name": "pricier", "set": {"pools.train-pool.pricing.usd_per_gpu_hour": 4.0}},
        {"name": "refresh", "set": {"pools.serving.pricing": OWNED, "pools.serving.refresh": [
            {"from": "2027-02-01", "gpu": "b200", "residual_usd_per_gpu": 5000}]}},
    ]
    return data


def build_runs() -> list[ReportRun]:
    """Every plan of the report scenario, run with the synthetic curve."""
    scenario = validate_scenario_data(report_scenario_data())
    runs = []
    for plan in plan_names(scenario):
        result = run(scenario, plan=plan, curve_provider=MM1)
        runs.append(ReportRun(plan, scenario_for_plan(scenario, plan), result))
    return runs


def write_report(directory: Path, runs: list[ReportRun]) -> Path:
    return write_workbook(directory / "report.xlsx", runs)


def load(path: Path, data_only: bool = True) -> openpyxl.Workbook:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl: charts it cannot read back
        return openpyxl.load_workbook(path, data_only=data_only)


def summary_table(wb: openpyxl.Workbook) -> dict[tuple[str, str], dict[str, object]]:
    """Summary sheet as {(section, figure label): {run: value}}."""
    ws = wb["Summary"]
    runs = [c.value for c in ws[4][2:] if c.value and c.value != "How"]
    out: dict[tuple[str, str], dict[str, object]] = {}
    section = ""
    for row in ws.iter_rows(min_row=5):
        label = row[0].value
        if label and row[1].value is None and all(c.value is None for c in row[2:]):
            section = label
            if section.startswith("Cumulative"):
                break
            continue
        if label:
            out[(section, label.strip())] = {r: row[2 + j].value for j, r in enumerate(runs)}
    return out


@pytest.fixture(scope="module")
def runs() -> list[ReportRun]:
    return build_runs()


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> Path:
    return write_report(tmp_path_factory.mktemp("workbook"), runs)


@pytest.fixture(scope="module")
def values(report):
    return load(report)


@pytest.fixture(scope="module")
def formulas(report):
    return load(report, data_only=False)


SPEND = "Spend over the horizon (formulas: sums of the Monthly sheets)"


def test_sheets_in_order(values, runs):
    names = values.sheetnames
    assert names[:3] == ["Summary", "Compare", "Assumptions"]
    for r in runs:
        assert f"Monthly {r.label}" in names and f"Billing {r.label}" in names
    assert names[-7:] == [
        "Utilisation",
        "Utilisation by hour",
        "Deployments",
        "Latency & SLO",
        "Training jobs",
        "Training runs",
        "About",
    ]


def test_about_sheet_audit_trail_and_printing(values, runs):
    """The About sheet names the version and each run's scenario, plan, seed and input hash;
    every sheet prints with page numbers and the scenario in its footer."""
    from simulator import __version__

    about = [[c for c in row if c is not None] for row in values["About"].iter_rows(values_only=True)]
    assert ["fleetsim version", __version__] in about
    for r in runs:
        (line,) = [row for row in about if row and row[0] == r.label]
        assert line[2] == r.result.summary["plan"] and line[3] == r.result.summary["seed"]
        assert len(line[5]) == 64  # SHA-256 of the scenario as run
    for name in values.sheetnames:
        footer = values[name].oddFooter
        assert "Page &P of &N" in footer.right.text and footer.left.text.startswith("fleetsim: ")
        assert values[name].page_setup.paperSize == 9  # A4 by default


def assert_spend_matches_summary(table, runs) -> None:
    """Lifetime, category and fiscal-year spend on the Summary sheet equal summary.json, to the cent."""
    for r in runs:
        s = r.result.summary
        assert table[(SPEND, "Lifetime spend")][r.label] == pytest.approx(
            s["total_cost_usd"], abs=0.005
        )
        for key, label in (("inference_cost_usd", "inference"), ("training_cost_usd", "training"),
                           ("idle_cost_usd", "idle (paid, unused)")):  # fmt: skip
            assert table[(SPEND, label)][r.label] == pytest.approx(s[key], abs=0.005)
        for fy, cost in s["cost_by_fiscal_year_usd"].items():
            assert table[(SPEND, f"spend {fy}")][r.label] == pytest.approx(cost, abs=0.005)


def test_totals_and_categories_match_summary(values, runs):
    assert_spend_matches_summary(summary_table(values), runs)
    for r in runs:
        s = r.result.summary
        assert s["idle_cost_usd"] > 0 or r.label == "owned"  # the reserved plans leave some idle
        assert len(s["cost_by_fiscal_year_usd"]) == 2


def test_pools_workloads_and_jobs_match_summary(values, runs):
    table = summary_table(values)
    for r in runs:
        s = r.result.summary
        for pool, p in s["pools"].items():
            assert table[(f"Pool {pool}", "Spend")][r.label] == pytest.approx(
                p["cost_usd"], abs=0.005
            )
            assert table[(f"Pool {pool}", "peak GPUs held")][r.label] == p["peak_gpus"]
        for name, w in s["workloads"].items():
            section = f"Workload {name}"
            cost = table[(section, "Inference spend")][r.label]
            assert cost == pytest.approx(w["cost_usd"], abs=0.005)
            per_m = table[(section, "$ per 1M tokens (input + output)")][r.label]
            assert per_m == pytest.approx(w["cost_per_million_tokens_usd"], rel=1e-9)
            per_in = table[(section, "$ per 1M input tokens")][r.label]
            per_out = table[(section, "$ per 1M output tokens")][r.label]
            rebuilt = (per_in * w["input_tokens"] + per_out * w["output_tokens"]) / 1e6
            assert rebuilt == pytest.approx(w["cost_usd"], rel=1e-9)
            assert per_in > 0 and per_out > 0
            baseline = table[(section, "API baseline cost")][r.label]
            assert baseline == pytest.approx(w["api_baseline_cost_usd"], rel=1e-9)
            ratio = table[(section, "our all-in spend / API baseline")][r.label]
            assert ratio == pytest.approx(w["all_in_cost_usd"] / w["api_baseline_cost_usd"], rel=1e-9)
            idle = table[(section, "share of its pools' idle cost (by GPU-hours)")][r.label]
            assert idle == pytest.approx(w["idle_share_usd"], abs=0.005)
            all_in = table[(section, "all-in $ per 1M tokens (input + output)")][r.label]
            assert all_in == pytest.approx(w["all_in_cost_per_million_tokens_usd"], rel=1e-9)
            assert all_in >= per_m
            a_in = table[(section, "all-in $ per 1M input tokens")][r.label]
            a_out = table[(section, "all-in $ per 1M output tokens")][r.label]
            assert a_in == pytest.approx(w["all_in_cost_per_million_input_tokens_usd"], rel=1e-9)
            assert a_out == pytest.approx(w["all_in_cost_per_million_output_tokens_usd"], rel=1e-9)
            assert table[(section, "SLO attainment (of the requests served)")][r.label] == pytest.approx(w["slo_attainment"])
        for name, j in s["training_jobs"].items():
            assert table[(f"Training job {name}", "Training spend")][r.label] == pytest.approx(
                j["cost_usd"], abs=0.005
            )
        per_entity = sum(w["cost_usd"] for w in s["workloads"].values()) + sum(
            j["cost_usd"] for j in s["training_jobs"].values())  # fmt: skip
        assert per_entity + s["idle_cost_usd"] == pytest.approx(s["total_cost_usd"], abs=0.005)


def _columns(ws, header_row: int = 4) -> dict[str, int]:
    return {c.value: c.column for c in ws[header_row] if c.value}


def test_monthly_rows_add_up_and_match_the_simulation(values, runs):
    for r in runs:
        ws = values[f"Monthly {r.label}"]
        cols = _columns(ws)
        per_month = r.result.monthly.groupby("month")["cost_usd"].sum()
        rows = list(ws.iter_rows(min_row=5, max_row=4 + len(per_month)))
        for row, (month, cost) in zip(rows, per_month.items(), strict=True):
            assert row[0].value == dt.datetime.strptime(month, "%Y-%m")
            total = row[cols["Total"] - 1].value
            assert total == pytest.approx(cost, abs=0.005)
            by_category = sum(row[cols[c] - 1].value for c in ("inference", "training", "idle"))
            by_pool = sum(row[cols[p.name] - 1].value for p in r.scenario.pools)
            entities = ["chat", "batch", "ft", "ft2", "idle (paid, unused)"]
            entities += [c for c in cols if str(c).startswith("idle (refresh write-off") and ":" not in str(c)]
            by_entity = sum(row[cols[e] - 1].value for e in entities)
            assert by_category == pytest.approx(total, abs=1e-6)
            assert by_pool == pytest.approx(total, abs=1e-6)
            assert by_entity == pytest.approx(total, abs=1e-6)
        last = ws.cell(5 + len(per_month), cols["Cumulative"]).value
        assert last is None or last == pytest.approx(r.result.summary["total_cost_usd"], abs=0.005)


def test_cost_cells_are_formulas_of_named_prices(formulas, runs):
    base = formulas["Billing base"]  # long format: one row per line item per month, cost in column I
    header = [c.value for c in base[4]]
    assert header[:9] == ["Month", "Pool", "Line item", "Paid for", "Unit", "Quantity (simulated)",
                          "Price (named cell)", "Unit price", "Cost"]  # fmt: skip
    rows = [r for r in base.iter_rows(min_row=5, values_only=True) if hasattr(r[0], "month")]
    costs = [r[8] for r in rows]
    assert costs and all(isinstance(f, str) and f.startswith("=F") and "*" in f for f in costs)
    assert {"serving_usd_per_gpu_hour", "serving_overflow_usd_per_gpu_hour", "train_pool_usd_per_gpu_hour_base"} <= {
        f.split("*")[1] for f in costs}  # fmt: skip
    assert all(f.split("*")[1] == name for f, name in zip(costs, (r[6] for r in rows), strict=True))
    monthly = formulas["Monthly base"]
    cols = _columns(monthly)
    assert monthly.cell(5, cols["Total"]).value == "=SUM(E5:G5)"
    assert "'Billing base'!" in monthly.cell(5, cols["serving inference"]).value
    chat = monthly.cell(5, cols["chat"]).value
    assert chat.startswith("=") and "*" in chat  # a simulated share times the pool's inference cost
    summary = formulas["Summary"]
    assert summary["C7"].value == "='Monthly base'!$C$7"


def test_named_prices_shared_or_per_plan(formulas):
    names = formulas.defined_names
    # one reserved price used by base and pricier; the on-demand price differs in pricier
    assert "serving_usd_per_gpu_hour" in names
    assert {"train_pool_usd_per_gpu_hour_base", "train_pool_usd_per_gpu_hour_owned",
            "train_pool_usd_per_gpu_hour_pricier"} <= set(names)  # fmt: skip
    assert "train_pool_usd_per_gpu_hour" not in names
    for name in ("serving_capex_usd_per_gpu", "serving_lifetime_years", "serving_opex_fraction_per_year",
                 "serving_owned_usd_per_gpu_hour", "serving_power_usd_per_kwh", "hours_per_year",
                 "api_usd_per_million_input_tokens", "api_usd_per_million_output_tokens"):  # fmt: skip
        assert name in names, name
    sheet, ref = next(iter(names["serving_owned_usd_per_gpu_hour"].destinations))
    cell = formulas[sheet][ref.replace("$", "")]
    assert cell.value == ("=serving_capex_usd_per_gpu/(serving_lifetime_years*hours_per_year)"
                          "+serving_capex_usd_per_gpu*serving_opex_fraction_per_year/hours_per_year")  # fmt: skip


def test_owned_rate_cached_value(values):
    sheet, ref = next(iter(values.defined_names["serving_owned_usd_per_gpu_hour"].destinations))
    expected = 20000 / (4 * HOURS_PER_YEAR) + 20000 * 0.05 / HOURS_PER_YEAR
    assert values[sheet][ref.replace("$", "")].value == pytest.approx(expected, rel=1e-12)


def test_detail_sheets(values, runs):
    latency = values["Latency & SLO"]
    rows = [r for r in latency.iter_rows(min_row=5, values_only=True) if r[0]]
    assert len(rows) == sum(len(r.result.latency) for r in runs)
    first = runs[0].result.latency.iloc[0]
    assert rows[0][7] == pytest.approx(first["ttft_p95_ms"])
    util = values["Utilisation"]
    billed: dict[tuple[str, str], float] = {}
    for row in util.iter_rows(min_row=5, values_only=True):
        if row[0]:
            billed[(row[0], row[2])] = billed.get((row[0], row[2]), 0.0) + row[3]
            assert 0 <= row[7] <= 1
    for r in runs:
        for pool, p in r.result.summary["pools"].items():
            assert billed[(r.label, pool)] == pytest.approx(p["gpu_hours_billed"])
    job_rows = [r for r in values["Training runs"].iter_rows(min_row=5, values_only=True) if r[0]]
    assert len(job_rows) == sum(len(r.result.jobs) for r in runs)
    jobs = {
        (r[0], r[1]): r
        for r in values["Training jobs"].iter_rows(min_row=5, values_only=True)
        if r[0]
    }
    for r in runs:
        for name, j in r.result.summary["training_jobs"].items():
            assert jobs[(r.label, name)][12] == pytest.approx(j["cost_usd"], abs=0.005)


def test_compare_sheet(values, runs):
    ws = values["Compare"]
    recommended = next(iter(c.value for c in ws[3] if c.value))
    assert "Cheapest run meeting every SLO" in recommended
    header = [c.value for c in ws[4]]
    assert header[2 : 2 + len(runs)] == [r.label for r in runs]
    lifetime = next(
        row for row in ws.iter_rows(min_row=5, values_only=True) if row[0] == "lifetime spend"
    )
    for j, r in enumerate(runs):
        assert lifetime[2 + j] == pytest.approx(r.result.summary["total_cost_usd"], abs=0.005)
    first_delta = 2 + len(runs)  # deltas against the first run follow the runs' columns
    assert lifetime[first_delta] == pytest.approx(lifetime[3] - lifetime[2], abs=1e-6)


def test_layout_formats_and_page_setup(values):
    summary = values["Summary"]
    assert summary.freeze_panes == "B5"
    assert values["Monthly base"].freeze_panes == "B5"
    assert values["Latency & SLO"].freeze_panes == "D5"
    for ws in values.worksheets:
        assert ws.page_setup.orientation == "landscape", ws.title
        assert ws.protection.sheet and ws.protection.password is None, ws.title  # protected, no password
        assert ws.freeze_panes, ws.title
    # only the input cells take edits: the yellow price cells are unlocked, formulas are not
    assumptions = values["Assumptions"]
    inputs = [c for row in assumptions.iter_rows(min_row=5, max_col=5) for c in row[4:5]
              if c.fill.fgColor.rgb in ("FFFFF2CC", "00FFF2CC")]  # fmt: skip
    assert inputs and all(not c.protection.locked for c in inputs)
    assert summary["C7"].protection.locked
    assert "$" in summary["C7"].number_format
    util = values["Utilisation"]
    assert util["H5"].number_format == "0.0%"
    assert values["Monthly base"].column_dimensions["C"].width >= 12


def test_failed_write_leaves_the_previous_file(tmp_path, runs, monkeypatch):
    target = write_report(tmp_path, runs[:1])
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(workbook_module, "write_summary", boom)
    with pytest.raises(RuntimeError):
        write_report(tmp_path, runs)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.xlsx"]


def test_deployments_sheet_matches_hourly_replicas(values, runs):
    ws = values["Deployments"]
    rows = [r for r in ws.iter_rows(min_row=4, values_only=True) if r[0] is not None]
    for report_run in runs:
        d = report_run.result.deployments_hourly
        tp = {dep.name: dep.tensor_parallel for dep in report_run.scenario.deployments}
        expected = float((d["replicas_held"] * d["deployment"].map(tp)).sum())
        got = sum(r[8] for r in rows if r[0] == report_run.label)
        assert got == pytest.approx(expected)
