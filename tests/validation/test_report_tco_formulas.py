"""Owned hardware's total cost of ownership in the workbook: the network, support and cost-of-capital
lines are owned GPU-hours at $/GPU-hour rates that are formulas of named input cells (capex, life,
support fraction, cost of capital, network capex: an input where the scenario gives it, else
10% of the capex by formula), so editing any of those inputs moves the totals by exactly the hand
calculation (LibreOffice recalculation), a refreshed pool's later GPUs by their own era's cells.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from simulator.economics.pricing import HOURS_PER_YEAR
from simulator.economics.refresh import WRITE_OFF_LINE
from simulator.report.prices import excel_name
from simulator.report.runs import ReportRun
from simulator.report.workbook import write_workbook
from simulator.results.runner import plan_names, run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import scenario_for_plan
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider
from tests.validation.test_report_workbook_recalc import (
    SOFFICE,
    every_formula_matches_its_cached_value,
    recalculate,
    set_named_cell,
)
from tests.validation.test_report_workbook_values import SPEND, load, summary_table

needs_soffice = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not on PATH")

MM1 = mm1_provider(service_rate=10.0, slo_ms=500.0)
H = HOURS_PER_YEAR
POOL = "serving"
CAPEX, LIFE, OPEX, SUPPORT, RATE = 30000.0, 4.0, 0.03, 0.06, 0.09
NETWORK_GIVEN = 4500.0
OWNED = {"kind": "owned", "capex_usd_per_gpu": CAPEX, "lifetime_years": LIFE, "gpus": 8,
         "opex_fraction_per_year": OPEX, "support_fraction_per_year": SUPPORT,
         "cost_of_capital_per_year": RATE, "power_usd_per_kwh": 0.1, "pue": 1.2,
         "overflow": "on_demand", "overflow_usd_per_gpu_hour": 4.0}  # fmt: skip
REFRESH = dt.date(2027, 3, 1)
ERA = "_b200_from_2027_03_01"
B200_CAPEX, B200_LIFE, B200_SUPPORT, B200_RATE, B200_NETWORK = 45000.0, 5.0, 0.04, 0.07, 6000.0
B200 = {**OWNED, "capex_usd_per_gpu": B200_CAPEX, "lifetime_years": B200_LIFE,
        "support_fraction_per_year": B200_SUPPORT, "cost_of_capital_per_year": B200_RATE,
        "network_capex_usd_per_gpu": B200_NETWORK}  # fmt: skip
LINES = ("network_gpu_hours", "support_gpu_hours", "capital_gpu_hours")
RATES = ("network_usd_per_gpu_hour", "support_usd_per_gpu_hour", "capital_usd_per_gpu_hour")
CASH = "Cash flow over the horizon (capex when paid, residual sales as inflows)"


def tco_scenario_data() -> dict:
    """An owned pool of 8 H100s over four months: the network capex left to its default (base),
    given (given-network), and the pool refreshed to owned B200s with their own pricing (refresh)."""
    data = minimal_scenario_dict()
    data["horizon"]["months"] = 4
    data["training_jobs"] = []
    data["workloads"][0]["traffic"]["requests_per_second"] = 12.0
    data["pools"] = [{"name": POOL, "gpu": "h100-sxm", "max_gpus": 64, "pricing": OWNED}]
    data["deployments"][0].update(pool=POOL, autoscaling={"min_replicas": 1, "max_replicas": 16})
    data["plans"] = [
        {"name": "given-network", "set": {f"pools.{POOL}.pricing.network_capex_usd_per_gpu": NETWORK_GIVEN}},
        {"name": "refresh", "set": {f"pools.{POOL}.refresh": [
            {"from": str(REFRESH), "gpu": "b200", "pricing": B200, "residual_usd_per_gpu": 9000}]}},
    ]  # fmt: skip
    return data


@pytest.fixture(scope="module")
def runs() -> list[ReportRun]:
    scenario = validate_scenario_data(tco_scenario_data())
    return [ReportRun(plan, scenario_for_plan(scenario, plan), run(scenario, plan=plan, curve_provider=MM1))
            for plan in plan_names(scenario)]  # fmt: skip


@pytest.fixture(scope="module")
def by_label(runs) -> dict[str, ReportRun]:
    return {r.label: r for r in runs}


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> Path:
    return write_workbook(tmp_path_factory.mktemp("tco-formulas") / "report.xlsx", runs)


@pytest.fixture(scope="module")
def recalculated(report, tmp_path_factory):
    return load(recalculate(report, tmp_path_factory.mktemp("tco-recalc")))


def named(wb, name: str):
    """The cell a defined name points at."""
    sheet, ref = next(iter(wb.defined_names[name].destinations))
    return wb[sheet][ref.replace("$", "")]


def cell_name(wb, r: ReportRun, key: str) -> str:
    """The run's cell of ``<pool>_<key>``: shared by the runs, or suffixed by the run's label."""
    shared, own = f"{POOL}_{key}", excel_name(f"{POOL}_{key}_{r.label}")
    return next(n for n in (shared, own) if n in wb.defined_names)


def hours(r: ReportRun, line: str) -> float:
    b = r.result.billing
    return float(b.loc[b["line_item"] == line, "quantity"].sum())


def owned_hours(r: ReportRun, era: str = "") -> float:
    """Owned GPU-hours (used and idle) of the first era (``era`` '') or the B200s' (' (b200)')."""
    return hours(r, "owned_gpu_hours" + era)


def spend_delta(before, after, label: str, figure: str = "Lifetime spend") -> float:
    return after[(SPEND, figure)][label] - before[(SPEND, figure)][label]


# ---------------------------------------------------------------------- the simulator


def test_tco_lines_are_owned_gpu_hours_at_the_derived_rates(by_label):
    """Each line's quantity is the owned GPU-hours (used and idle like them); its price the rate
    by hand; its cost that of the former money quantities (e.g. GPU-hours / life x network)."""
    for label, network in (("base", 0.1 * CAPEX), ("given-network", NETWORK_GIVEN), ("refresh", 0.1 * CAPEX)):
        r = by_label[label]
        b = r.result.billing
        gpu_hours = owned_hours(r)
        assert gpu_hours > 0
        expected = {"network_usd_per_gpu_hour": network / (LIFE * H), "support_usd_per_gpu_hour": CAPEX * SUPPORT / H,
                    "capital_usd_per_gpu_hour": (CAPEX + network) / 2 * RATE / H}  # fmt: skip
        for line, key in zip(LINES, RATES, strict=True):
            rows = b[b["line_item"] == line]
            assert set(rows["price_key"]) == {key} and set(rows["unit"]) == {"GPU-hour"}
            assert hours(r, line) == pytest.approx(gpu_hours, rel=1e-12)
            for category in ("inference", "idle"):
                owned = b[(b["line_item"] == "owned_gpu_hours") & (b["category"] == category)]["quantity"].sum()
                assert rows[rows["category"] == category]["quantity"].sum() == pytest.approx(owned, rel=1e-12)
            assert rows["unit_price_usd"].iloc[0] == pytest.approx(expected[key], rel=1e-14)
            assert rows["cost_usd"].sum() == pytest.approx(gpu_hours * expected[key], rel=1e-12)
        # accrual only: network (paid with the GPUs) and capital; support is paid as incurred
        cash = {line: float(b.loc[b["line_item"] == line, "cash_usd"].sum()) for line in LINES}
        assert cash["network_gpu_hours"] == cash["capital_gpu_hours"] == 0.0
        assert cash["support_gpu_hours"] == pytest.approx(gpu_hours * CAPEX * SUPPORT / H, rel=1e-12)
    refresh = by_label["refresh"]
    b200 = owned_hours(refresh, " (b200)")
    assert b200 > 0
    b = refresh.result.billing
    rate = b.loc[b["line_item"] == "capital_gpu_hours (b200)", "unit_price_usd"].iloc[0]
    assert rate == pytest.approx((B200_CAPEX + B200_NETWORK) / 2 * B200_RATE / H, rel=1e-14)
    assert set(b.loc[b["line_item"] == "capital_gpu_hours (b200)", "price_key"]) == {"capital_usd_per_gpu_hour" + ERA}


# ---------------------------------------------------------------------- the workbook


def test_the_rates_are_formulas_of_named_input_cells(report, runs):
    formulas, values = load(report, data_only=False), load(report)
    capex, life = f"{POOL}_capex_usd_per_gpu", f"{POOL}_lifetime_years"
    support, rate = f"{POOL}_support_fraction_per_year", f"{POOL}_cost_of_capital_per_year"
    for name, value in ((capex, CAPEX), (life, LIFE), (support, SUPPORT), (rate, RATE)):
        assert named(formulas, name).value == value  # inputs all runs share
    for r in runs:
        network = cell_name(formulas, r, "network_capex_usd_per_gpu")
        expected = {
            "network_usd_per_gpu_hour": f"={network}/({life}*hours_per_year)",
            "support_usd_per_gpu_hour": f"={capex}*{support}/hours_per_year",
            "capital_usd_per_gpu_hour": f"=({capex}+{network})/2*{rate}/hours_per_year",
        }
        b = r.result.billing
        for key, formula in expected.items():
            name = cell_name(formulas, r, key)
            assert named(formulas, name).value == formula, (r.label, key)
            price = float(b.loc[b["price_key"] == key, "unit_price_usd"].iloc[0])
            assert named(values, name).value == pytest.approx(price, rel=1e-15)
        if r.label == "given-network":
            assert named(formulas, network).value == NETWORK_GIVEN  # an input
        else:  # the default: a formula of the capex, labelled so
            assert named(formulas, network).value == f"=0.1*{capex}"
            assert "default, 10% of capex" in named(formulas, network).offset(column=-2).value
    # the B200 era: its own suffixed cells, the network capex given
    era = {k: f"{POOL}_{k}{ERA}" for k in ("capex_usd_per_gpu", "lifetime_years", "support_fraction_per_year",
                                            "cost_of_capital_per_year", "network_capex_usd_per_gpu")}  # fmt: skip
    assert [named(formulas, n).value for n in era.values()] == [B200_CAPEX, B200_LIFE, B200_SUPPORT, B200_RATE,
                                                                B200_NETWORK]  # fmt: skip
    c, lf, s, k, n = era.values()
    assert named(formulas, f"{POOL}_network_usd_per_gpu_hour{ERA}").value == f"={n}/({lf}*hours_per_year)"
    assert named(formulas, f"{POOL}_support_usd_per_gpu_hour{ERA}").value == f"={c}*{s}/hours_per_year"
    assert named(formulas, f"{POOL}_capital_usd_per_gpu_hour{ERA}").value == f"=({c}+{n})/2*{k}/hours_per_year"


def test_billing_prices_the_lines_by_the_rate_cells(report, runs):
    """On Billing each TCO line is GPU-hours x its named rate: nothing of a price in the quantity."""
    formulas = load(report, data_only=False)
    for r in runs:
        names = {line: cell_name(formulas, r, key) for line, key in zip(LINES, RATES, strict=True)}
        found = set()
        for row in formulas[f"Billing {r.label}"].iter_rows(min_row=5):
            line = row[2].value
            if line in names:
                assert (row[4].value, row[6].value) == ("GPU-hours", names[line])
                assert row[8].value == f"=F{row[8].row}*{names[line]}"
                found.add(line)
        assert found == set(LINES), r.label


@needs_soffice
def test_recalculated_formulas_equal_their_cached_values(report, recalculated, runs):
    cached, formulas = load(report), load(report, data_only=False)
    every_formula_matches_its_cached_value(report, recalculated, at_least=100)
    table = summary_table(recalculated)
    for r in runs:
        assert table[(SPEND, "Lifetime spend")][r.label] == pytest.approx(r.result.summary["total_cost_usd"], abs=0.005)
        for key in RATES:
            name = cell_name(formulas, r, key)
            assert named(recalculated, name).value == pytest.approx(named(cached, name).value, rel=1e-12)


def _edited(report: Path, tmp_path: Path, edits: dict[str, float]):
    """The Summary table before, and after the named cells are set and LibreOffice recalculates."""
    changed = tmp_path / "changed.xlsx"
    source = report
    for name, value in edits.items():
        set_named_cell(source, name, value, changed)
        source = changed
    return summary_table(load(report)), summary_table(load(recalculate(changed, tmp_path)))


@needs_soffice
def test_editing_the_capex_moves_every_tco_line_by_the_hand_calculation(report, by_label, tmp_path):
    """Capex +$6,000: the owned rate, the default network (10% of it), support and the cost of
    capital on half of capex + network all move, per owned GPU-hour; the refresh's write-off by
    GPUs retired x (6,000 + the default network's 600) x (1 - mean age/life). Cash: GPUs bought x
    (6,000 + the default network's 600) + opex and support as paid."""
    d = 6000.0
    formulas = load(report, data_only=False)
    before, after = _edited(report, tmp_path, {f"{POOL}_capex_usd_per_gpu": CAPEX + d})
    for label in ("base", "given-network", "refresh"):
        r = by_label[label]
        d_network = 0.0 if label == "given-network" else 0.1 * d
        per_hour = d / (LIFE * H) + d * OPEX / H + d_network / (LIFE * H) + d * SUPPORT / H + (d + d_network) / 2 * RATE / H
        expected = per_hour * owned_hours(r)
        if label == "refresh":
            age = named(load(report), cell_name(formulas, r, "retired_age_years_h100_sxm_2027_03_01")).value
            b = r.result.billing
            retired = float(b.loc[b["line_item"].str.startswith(WRITE_OFF_LINE), "quantity"].sum())
            assert retired == 8
            expected += retired * (d + d_network) * max(0.0, 1 - age / LIFE)
        assert spend_delta(before, after, label) == pytest.approx(expected, abs=0.005), label
        cash = r.result.cashflow
        bought = float(cash.loc[cash["line_item"] == "gpu_purchase", "quantity"].sum())
        assert bought == 8
        expected_cash = bought * (d + d_network) + (d * OPEX / H + d * SUPPORT / H) * owned_hours(r)
        moved = after[(CASH, "Net cash out")][label] - before[(CASH, "Net cash out")][label]
        assert moved == pytest.approx(expected_cash, abs=0.01), label



@needs_soffice
def test_editing_support_and_cost_of_capital_moves_spend_by_the_hand_calculation(report, by_label, tmp_path):
    """Support 6% -> 8% and cost of capital 9% -> 12% at once: each run moves by owned GPU-hours x
    (capex x 2% + (capex + network) / 2 x 3%) / hours per year; the B200 era is untouched."""
    ds, dr = 0.02, 0.03
    before, after = _edited(report, tmp_path, {f"{POOL}_support_fraction_per_year": SUPPORT + ds,
                                               f"{POOL}_cost_of_capital_per_year": RATE + dr})  # fmt: skip
    for label, network in (("base", 0.1 * CAPEX), ("given-network", NETWORK_GIVEN), ("refresh", 0.1 * CAPEX)):
        r = by_label[label]
        expected = (CAPEX * ds + (CAPEX + network) / 2 * dr) / H * owned_hours(r)
        assert spend_delta(before, after, label) == pytest.approx(expected, abs=0.005), label
        idle = float(r.result.billing.query("category == 'idle' and line_item == 'owned_gpu_hours'")["quantity"].sum())
        assert spend_delta(before, after, label, "idle (paid, unused)") == pytest.approx(
            (CAPEX * ds + (CAPEX + network) / 2 * dr) / H * idle, abs=0.005)  # fmt: skip


@needs_soffice
def test_editing_a_given_network_capex_moves_its_run_alone(report, by_label, tmp_path):
    """given-network's network capex +$1,500: its depreciation and cost of capital per GPU-hour move
    (1,500 / (life x hours/yr) + 1,500 / 2 x rate / hours/yr); its cash out by GPUs bought x 1,500;
    the other runs (their own default cells) do not move."""
    dn = 1500.0
    formulas = load(report, data_only=False)
    r = by_label["given-network"]
    name = cell_name(formulas, r, "network_capex_usd_per_gpu")
    assert name == f"{POOL}_network_capex_usd_per_gpu_given_network"
    before, after = _edited(report, tmp_path, {name: NETWORK_GIVEN + dn})
    expected = (dn / (LIFE * H) + dn / 2 * RATE / H) * owned_hours(r)
    assert spend_delta(before, after, "given-network") == pytest.approx(expected, abs=0.005)
    moved = after[(CASH, "Net cash out")]["given-network"] - before[(CASH, "Net cash out")]["given-network"]
    assert moved == pytest.approx(8 * dn, abs=0.01)
    for label in ("base", "refresh"):
        assert spend_delta(before, after, label) == pytest.approx(0.0, abs=0.005)


@needs_soffice
def test_editing_the_later_eras_cells_moves_its_gpu_hours_alone(report, by_label, tmp_path):
    """B200 capex +$5,000 and network capex +$1,000: the B200 GPU-hours move by the owned rate's,
    support's, network's and capital's change; the H100 era and the other runs do not."""
    dc, dn = 5000.0, 1000.0
    before, after = _edited(report, tmp_path, {f"{POOL}_capex_usd_per_gpu{ERA}": B200_CAPEX + dc,
                                               f"{POOL}_network_capex_usd_per_gpu{ERA}": B200_NETWORK + dn})  # fmt: skip
    r = by_label["refresh"]
    per_hour = (dc / (B200_LIFE * H) + dc * OPEX / H + dn / (B200_LIFE * H) + dc * B200_SUPPORT / H
                + (dc + dn) / 2 * B200_RATE / H)  # fmt: skip
    assert spend_delta(before, after, "refresh") == pytest.approx(per_hour * owned_hours(r, " (b200)"), abs=0.005)
    for label in ("base", "given-network"):
        assert spend_delta(before, after, label) == pytest.approx(0.0, abs=0.005)
