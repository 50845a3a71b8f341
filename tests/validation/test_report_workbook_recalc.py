"""The workbook recalculated by LibreOffice: its formulas reproduce the simulator to the cent, and
changing a named price moves the totals by exactly delta-price x billed quantity.

LibreOffice runs headless with a throw-away profile set to recalculate every formula on load
(so the cached values XlsxWriter wrote are not simply read back). Skipped when ``soffice`` is
not on PATH (CI installs libreoffice-calc-nogui).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest

from simulator.economics.pricing import HOURS_PER_YEAR
from tests.validation.test_report_workbook_values import (
    SPEND,
    assert_spend_matches_summary,
    build_runs,
    load,
    summary_table,
    write_report,
)

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
pytestmark = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not on PATH")

ALWAYS_RECALCULATE = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"
           xmlns:xs="http://www.w3.org/2001/XMLSchema"
           xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load">
  <prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop>
</item>
</oor:items>
"""


def recalculate(path: Path, work: Path) -> Path:
    """``path`` opened, recalculated and saved as xlsx by LibreOffice; returns the new file."""
    profile = work / "lo-profile"
    (profile / "user").mkdir(parents=True, exist_ok=True)
    (profile / "user" / "registrymodifications.xcu").write_text(ALWAYS_RECALCULATE)
    out_dir = work / "recalculated"
    command = [SOFFICE, "--headless", "--norestore", f"-env:UserInstallation={profile.as_uri()}",
               "--convert-to", "xlsx", "--outdir", str(out_dir), str(path)]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=180)
    converted = out_dir / path.name
    assert converted.exists(), f"LibreOffice wrote nothing for {path}"
    return converted


def set_named_cell(path: Path, name: str, value: float, target: Path) -> float:
    """Save a copy of the workbook with the named cell changed (openpyxl); returns the old value."""
    wb = load(path, data_only=False)
    sheet, ref = next(iter(wb.defined_names[name].destinations))
    cell = wb[sheet][ref.replace("$", "")]
    old = cell.value
    cell.value = value
    wb.save(target)
    return float(old)


@pytest.fixture(scope="module")
def runs():
    return build_runs()


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> Path:
    return write_report(tmp_path_factory.mktemp("recalc"), runs)


def billed(run, pool: str, line_item: str, category: str | None = None) -> float:
    rows = run.result.billing
    rows = rows[(rows["pool"] == pool) & (rows["line_item"] == line_item)]
    if category:
        rows = rows[rows["category"] == category]
    return float(rows["quantity"].sum())


def test_recalculated_workbook_equals_the_simulator(report, runs, tmp_path):
    recalculated = load(recalculate(report, tmp_path))
    table = summary_table(recalculated)
    assert_spend_matches_summary(table, runs)
    for r in runs:
        s = r.result.summary
        for name, w in s["workloads"].items():
            assert table[(f"Workload {name}", "Inference spend")][r.label] == pytest.approx(
                w["cost_usd"], abs=0.005
            )
            assert table[(f"Workload {name}", "API baseline cost")][r.label] == pytest.approx(
                w["api_baseline_cost_usd"], abs=0.005)  # fmt: skip
        for name, j in s["training_jobs"].items():
            assert table[(f"Training job {name}", "Training spend")][r.label] == pytest.approx(
                j["cost_usd"], abs=0.005
            )
    every_formula_matches_its_cached_value(report, recalculated)


def every_formula_matches_its_cached_value(report: Path, recalculated, at_least: int = 300) -> int:
    """Every numeric formula result written in ``report`` equals LibreOffice's recalculation of it
    (and LibreOffice computed a number there); at least ``at_least`` were checked. Returns the count."""
    cached, formulas = load(report), load(report, data_only=False)
    checked = 0
    for ws in formulas.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if not (isinstance(cell.value, str) and cell.value.startswith("=")):
                    continue
                ours = cached[ws.title][cell.coordinate].value
                theirs = recalculated[ws.title][cell.coordinate].value
                if isinstance(ours, int | float) and not isinstance(ours, bool):
                    assert isinstance(theirs, int | float), (ws.title, cell.coordinate, theirs)
                    assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-6), (
                        ws.title,
                        cell.coordinate,
                    )
                    checked += 1
    assert checked > at_least
    return checked


def test_changing_named_prices_moves_totals_by_price_times_quantity(report, runs, tmp_path):
    changed = tmp_path / "changed.xlsx"
    delta_reserved = 0.5
    old = set_named_cell(report, "serving_usd_per_gpu_hour", 2.0 + delta_reserved, changed)
    assert old == 2.0
    old_capex = set_named_cell(changed, "serving_capex_usd_per_gpu", 26000.0, changed)
    assert old_capex == 20000.0
    before = summary_table(load(report))
    after = summary_table(load(recalculate(changed, tmp_path)))
    by_label = {r.label: r for r in runs}

    def delta(label: str, figure: str = "Lifetime spend") -> float:
        return after[(SPEND, figure)][label] - before[(SPEND, figure)][label]

    for label in ("base", "pricier"):  # both use the shared reserved price
        committed = billed(by_label[label], "serving", "committed_gpu_hours")
        assert committed > 0
        assert delta(label) == pytest.approx(delta_reserved * committed, abs=0.005)
        idle = billed(by_label[label], "serving", "committed_gpu_hours", "idle")
        assert delta(label, "idle (paid, unused)") == pytest.approx(
            delta_reserved * idle, abs=0.005
        )
    owned_hours = billed(by_label["owned"], "serving", "owned_gpu_hours")
    # per owned GPU-hour: the owned rate (depreciation, opex 5%), and the default TCO lines: network
    # (10% of capex, over the life), support (5% of capex a year), cost of capital (8% a year on
    # half of capex + network)
    rate_change = 6000.0 * (1 / (4 * HOURS_PER_YEAR) + 0.05 / HOURS_PER_YEAR + 0.1 / (4 * HOURS_PER_YEAR)
                            + 0.05 / HOURS_PER_YEAR + 1.1 / 2 * 0.08 / HOURS_PER_YEAR)  # fmt: skip
    assert delta("owned") == pytest.approx(rate_change * owned_hours, abs=0.005)
    assert (
        after[("Workload chat", "Inference spend")]["owned"]
        > before[("Workload chat", "Inference spend")]["owned"]
    )


CASH = "Cash flow over the horizon (capex when paid, residual sales as inflows)"


def test_cash_view_npv_and_capex_recompute_by_the_hand_calculation(report, runs, tmp_path):
    """Summary's cash rows equal the simulator's; a new discount rate gives the NPV of the same
    monthly cash at the new rate; a new capex moves the cash out by delta x GPUs bought."""
    from simulator.economics.cashflow import npv_usd

    before = summary_table(load(recalculate(report, tmp_path)))
    for r in runs:
        cash = r.result.summary["cash_flow"]
        assert before[(CASH, "Net cash out")][r.label] == pytest.approx(cash["total_usd"], abs=0.005)
        assert before[(CASH, "net present value (at the discount rate)")][r.label] == pytest.approx(
            cash["npv_usd"], abs=0.005)
        # the bridge: lifetime spend - accrual-only charges + hardware bought + sales = net cash out
        parts = [before[(CASH, label)][r.label] or 0.0 for label in (
            "= lifetime spend less accrual charges paid to no one now", "+ owned GPUs and network bought (capex when paid)")]
        sold = before.get((CASH, "+ retired GPUs sold (inflow)"), {}).get(r.label) or 0.0
        assert before[(SPEND, "Lifetime spend")][r.label] + sum(parts) + sold == pytest.approx(cash["total_usd"], abs=0.01)
    changed = tmp_path / "changed.xlsx"
    assert set_named_cell(report, "finance_discount_rate_per_year", 0.15, changed) == 0.08
    set_named_cell(changed, "serving_capex_usd_per_gpu", 26000.0, changed)
    after = summary_table(load(recalculate(changed, tmp_path / "again")))
    by_label = {r.label: r for r in runs}
    owned = by_label["owned"].result
    bought = owned.cashflow[owned.cashflow["line_item"] == "gpu_purchase"]
    assert bought["quantity"].sum() > 0
    # capex 20k -> 26k: the GPU purchases and their default network (10% of capex), and what is
    # paid as incurred: the opex part (5%) and support (5% of capex a year)
    opex = billed(by_label["owned"], "serving", "owned_gpu_hours") * 6000.0 * (0.05 + 0.05) / HOURS_PER_YEAR
    delta_cash = 6000.0 * 1.1 * bought["quantity"].sum() + opex
    assert after[(CASH, "Net cash out")]["owned"] - before[(CASH, "Net cash out")]["owned"] == pytest.approx(
        delta_cash, abs=0.01)
    for label in ("base", "pricier"):  # no owned GPUs: the capex cell does not touch them
        months = by_label[label].result.cashflow.groupby("month")["cash_usd"].sum().to_numpy()
        assert after[(CASH, "Net cash out")][label] == pytest.approx(months.sum(), abs=0.01)
        assert after[(CASH, "net present value (at the discount rate)")][label] == pytest.approx(
            npv_usd(months, 0.15), abs=0.01)


def test_a_currency_shows_every_cost_at_its_rate_and_the_rate_is_an_input(runs, tmp_path):
    """EUR at 0.92 per USD: every money figure is the simulator's x 0.92 after LibreOffice
    recalculates; the named rate moves every total in proportion; prices stay in US dollars."""
    import dataclasses

    from simulator.scenario.schema import Currency

    eur = [dataclasses.replace(r, scenario=r.scenario.model_copy(update={"currency": Currency(code="EUR", usd_rate=0.92)}))
           for r in runs]  # fmt: skip
    report = write_report(tmp_path, eur)
    recalculated = load(recalculate(report, tmp_path))
    table = summary_table(recalculated)
    for r in runs:
        s = r.result.summary
        assert table[(SPEND, "Lifetime spend")][r.label] == pytest.approx(0.92 * s["total_cost_usd"], abs=0.005)
        assert table[(CASH, "Net cash out")][r.label] == pytest.approx(0.92 * s["cash_flow"]["total_usd"], abs=0.005)
    assert "€" in recalculated["Summary"]["C7"].number_format
    assert recalculated["Summary"]["B7"].value == "EUR"
    every_formula_matches_its_cached_value(report, recalculated)
    changed = tmp_path / "changed.xlsx"
    assert set_named_cell(report, "finance_usd_rate", 1.1, changed) == 0.92
    after = summary_table(load(recalculate(changed, tmp_path / "again")))
    for r in runs:
        assert after[(SPEND, "Lifetime spend")][r.label] == pytest.approx(1.1 * r.result.summary["total_cost_usd"], abs=0.01)


def test_labels_that_depend_on_inputs_are_formulas(report, runs, tmp_path):
    """The cheapest run meeting every SLO follows the prices; the fiscal years follow their start month."""
    from simulator.results.compare import compare

    recommended = compare([r.result.summary for r in runs]).recommended
    recalculated = load(recalculate(report, tmp_path))
    assert recalculated["Compare"]["A3"].value == f"Cheapest run meeting every SLO: {recommended}"
    assert recommended == "owned"
    changed = tmp_path / "changed.xlsx"
    set_named_cell(report, "serving_capex_usd_per_gpu", 200000.0, changed)  # owned hardware 10x dearer
    assert set_named_cell(changed, "finance_fiscal_year_start_month", 7, changed) == 2  # the scenario: February
    after = load(recalculate(changed, tmp_path / "again"))
    assert after["Compare"]["A3"].value == "Cheapest run meeting every SLO: base"
    monthly = after["Monthly base"]
    rows = list(monthly.iter_rows(min_row=5, values_only=True))
    months = [(r[0], r[1], r[2]) for r in rows if hasattr(r[0], "month")]
    for month, fy, _ in months:  # named by the year the fiscal year ends in
        assert fy == f"FY{month.year + (1 if month.month >= 7 else 0)}"
    table = summary_table(after)
    common = {fy for _, fy, _ in months} & {label.removeprefix("spend ") for _, label in table}
    assert common
    for fy in common:
        assert table[(SPEND, f"spend {fy}")]["base"] == pytest.approx(
            sum(total for _, y, total in months if y == fy), abs=0.005)


def test_every_price_input_at_once_moves_each_total_by_its_quantity(report, runs, tmp_path):
    """Superposition: every named price that Billing multiplies directly is raised by its own
    amount at once; each run's lifetime spend moves by exactly sum(delta x billed quantity)."""
    from simulator.report.prices import PricedRun, build_price_book

    book = build_price_book([PricedRun(r.label, r.scenario, r.result.billing) for r in runs])
    used = {name for (run, group, key), name in book.names.items()
            if any(len(r.result.billing) and (r.result.billing["price_key"] == key).any() for r in runs)}  # fmt: skip
    direct = [c for c in book.cells if c.formula is None and c.editable and c.name in used]
    assert len(direct) >= 5
    changed = tmp_path / "changed.xlsx"
    source = report
    deltas = {}
    for k, cell in enumerate(direct):
        deltas[cell.name] = 0.01 * (k + 1) * max(abs(cell.value), 1.0)
        set_named_cell(source, cell.name, cell.value + deltas[cell.name], changed)
        source = changed
    before = summary_table(load(report))
    after = summary_table(load(recalculate(changed, tmp_path)))
    for r in runs:
        billing = r.result.billing
        expected = 0.0
        for (run, group, key), name in book.names.items():
            if run == r.label and name in deltas:
                rows = billing[(billing["pool"] == group) & (billing["price_key"] == key)]
                expected += deltas[name] * float(rows["quantity"].sum())
        moved = after[(SPEND, "Lifetime spend")][r.label] - before[(SPEND, "Lifetime spend")][r.label]
        assert moved == pytest.approx(expected, abs=0.01), r.label
