"""A hardware refresh in the workbook: the later GPU era's owned rate and the write-off per retired
GPU are formulas of named cells, so editing the retiring GPUs' capex, the new GPUs' capex or the
residual moves the totals by exactly the hand calculation (LibreOffice recalculation).

The write-off is the retired GPUs' book value (GPU and its share of the cluster network, by
default 10% of the capex) at their GPU-weighted mean age less the residual; for GPUs bought in
tranches (``purchases``) or by default (ahead of each year's peak) the later GPUs are younger,
and amortised capex + network + write-off = GPUs x (capex + network - residual), to the cent.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from simulator.economics.pricing import DEFAULT_NETWORK_SHARE, HOURS_PER_YEAR
from simulator.economics.refresh import (
    WRITE_OFF_LINE,
    book_value_usd_per_gpu,
    pool_eras,
    retired_age_years,
    write_off_item,
)
from simulator.report.prices import excel_name
from simulator.report.runs import ReportRun
from simulator.report.workbook import write_workbook
from simulator.results.runner import plan_names, run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import scenario_for_plan
from simulator.scenario.schedule import hours_since
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
START, REFRESH = dt.date(2027, 1, 1), dt.date(2027, 3, 1)
H100_CAPEX, B200_CAPEX, LIFE, OPEX, RESIDUAL = 25000.0, 40000.0, 5.0, 0.05, 8000.0
H100_NETWORK = DEFAULT_NETWORK_SHARE * H100_CAPEX  # no network capex given: 10% of the capex, $2,500
H100_CAPITAL = H100_CAPEX + H100_NETWORK  # depreciated, and written off, per H100: $27,500
H100 = {"kind": "owned", "capex_usd_per_gpu": H100_CAPEX, "lifetime_years": LIFE, "gpus": 16,
        "opex_fraction_per_year": OPEX, "power_usd_per_kwh": 0.08, "pue": 1.25,
        "overflow": "on_demand", "overflow_usd_per_gpu_hour": 3.2}  # fmt: skip
B200 = {**H100, "capex_usd_per_gpu": B200_CAPEX, "gpus": 8, "overflow_usd_per_gpu_hour": 5.0}
TRANCHES = [{"from": "2027-01-01", "gpus": 8}, {"from": "2027-02-01", "gpus": 8}]
POOL = "serving"
ERA = "_b200_from_2027_03_01"
RETIRED = "_h100_sxm_2027_03_01"
CAPEX, CAPEX_B200 = f"{POOL}_capex_usd_per_gpu", f"{POOL}_capex_usd_per_gpu{ERA}"
RATE_B200 = f"{POOL}_owned_usd_per_gpu_hour{ERA}"
WRITE_OFF, RESIDUAL_CELL = f"{POOL}_refresh_write_off_usd_per_gpu", f"{POOL}_residual_usd_per_gpu"
AGE = f"{POOL}_retired_age_years"
NETWORK = f"{POOL}_network_capex_usd_per_gpu"


def refresh_scenario_data() -> dict:
    """An owned H100 pool refreshed to owned B200s (their own capex) after two months, sold at a
    residual; plans buy the H100s in two tranches, or by default (ahead of the year's peak)."""
    data = minimal_scenario_dict()
    data["horizon"]["months"] = 4
    data["training_jobs"] = []
    data["workloads"][0]["traffic"]["requests_per_second"] = 20.0
    data["pools"] = [{"name": POOL, "gpu": "h100-sxm", "max_gpus": 64, "pricing": H100,
                      "refresh": [{"from": str(REFRESH), "gpu": "b200", "pricing": B200,
                                   "residual_usd_per_gpu": RESIDUAL}]}]  # fmt: skip
    data["deployments"][0].update(pool=POOL, autoscaling={"min_replicas": 1, "max_replicas": 32})
    bought = {k: v for k, v in H100.items() if k != "gpus"}
    data["plans"] = [
        {"name": "tranches", "set": {f"pools.{POOL}.pricing": {**bought, "purchases": TRANCHES}}},
        {"name": "by-peak", "set": {f"pools.{POOL}.pricing": bought}},
    ]
    return data


def tco_rate_per_capex_usd(life: float = LIFE) -> float:
    """$/GPU-hour of the default TCO lines per $ of capex: network (10% of capex, over the life),
    support (5% a year) and the cost of capital (8% a year on half of capex + network)."""
    return 0.1 / (life * HOURS_PER_YEAR) + 0.05 / HOURS_PER_YEAR + 1.1 / 2 * 0.08 / HOURS_PER_YEAR


def owned_rate_per_capex_usd(life: float = LIFE, opex: float = OPEX) -> float:
    """$/GPU-hour of the owned rate per $ of capex (depreciation + operations overhead)."""
    return 1 / (life * HOURS_PER_YEAR) + opex / HOURS_PER_YEAR


@pytest.fixture(scope="module")
def runs() -> list[ReportRun]:
    scenario = validate_scenario_data(refresh_scenario_data())
    return [ReportRun(plan, scenario_for_plan(scenario, plan), run(scenario, plan=plan, curve_provider=MM1))
            for plan in plan_names(scenario)]  # fmt: skip


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> Path:
    return write_workbook(tmp_path_factory.mktemp("refresh-formulas") / "report.xlsx", runs)


def billed(r: ReportRun, line_item: str) -> float:
    b = r.result.billing
    return float(b.loc[b["line_item"] == line_item, "quantity"].sum())


def depreciated_usd(owned_gpu_hours: float) -> float:
    """The H100s' capex and network share depreciated over their owned GPU-hours (straight line)."""
    return owned_gpu_hours * H100_CAPITAL / (LIFE * HOURS_PER_YEAR)


def write_off_price(r: ReportRun) -> float:
    b = r.result.billing
    return float(b.loc[b["line_item"].str.startswith(WRITE_OFF_LINE) & (b["quantity"] != 0), "unit_price_usd"].iloc[0])


def named(wb, name: str):
    """The cell a defined name points at."""
    sheet, ref = next(iter(wb.defined_names[name].destinations))
    return wb[sheet][ref.replace("$", "")]


def name_of(r: ReportRun, stem: str, formulas) -> str:
    """The run's cell of ``stem`` + the retired GPUs' suffix: shared, or suffixed by the run."""
    return next(n for n in (stem + RETIRED, excel_name(f"{stem}{RETIRED}_{r.label}"))
                if n in formulas.defined_names)  # fmt: skip


# ---------------------------------------------------------------------- the simulator


def test_write_off_prices_gpus_at_their_mean_age(runs):
    """gpus: all bought at the start; tranches: 8 bought on 1 January, 8 on 1 February, so the
    mean age is that of a GPU bought in mid-January (weighted by GPUs). Priced with the network:
    base: 27,500 x (1 - 1,416 h / (5 x 8,766 h)) - 8,000 = $18,611.57 a GPU (GPU alone: $16,192.33)."""
    by_label = {r.label: r for r in runs}
    age_start = hours_since(START, REFRESH) / HOURS_PER_YEAR
    age_second = hours_since(dt.date(2027, 2, 1), REFRESH) / HOURS_PER_YEAR
    expected = {"base": age_start, "by-peak": age_start, "tranches": (8 * age_start + 8 * age_second) / 16}
    for label, age in expected.items():
        r = by_label[label]
        assert write_off_price(r) == pytest.approx(H100_CAPITAL * (1 - age / LIFE) - RESIDUAL, rel=1e-12)
    base_era = pool_eras(by_label["base"].scenario, by_label["base"].scenario.pools[0], 0)[0]
    # bought on day one: exactly the former formula (book value at the era start's age)
    assert write_off_price(by_label["base"]) == H100_CAPITAL * max(0.0, 1 - age_start / LIFE) - RESIDUAL
    assert write_off_price(by_label["base"]) == pytest.approx(18611.57, abs=0.005)
    assert retired_age_years(base_era) == age_start
    assert write_off_price(by_label["tranches"]) > write_off_price(by_label["base"])  # younger GPUs


@pytest.mark.parametrize("label", ["base", "tranches", "by-peak"])
def test_amortised_capex_plus_write_off_is_purchase_less_residual(runs, label):
    """Straight line: the H100 capex and network amortised while in place + the write-off = GPUs
    bought x (capex + network - residual), to the cent, whenever the GPUs were bought."""
    r = next(r for r in runs if r.label == label)
    assert billed(r, "network_gpu_hours") == billed(r, "owned_gpu_hours")  # the network line's hours
    amortised = depreciated_usd(billed(r, "owned_gpu_hours"))
    b = r.result.billing
    write_off = b[b["line_item"].str.startswith(WRITE_OFF_LINE)]
    gpus = write_off["quantity"].sum()
    assert gpus == 16 or (label == "by-peak" and gpus > 0)
    assert amortised + write_off["cost_usd"].sum() == pytest.approx(gpus * (H100_CAPITAL - RESIDUAL), abs=0.01)


def test_default_purchases_are_dated_by_the_gpus_in_place():
    """Bought ahead of each year's peak: GPUs bought in year 2 are younger. With the era's owned
    GPUs per hour the write-off prices each purchase at its age (amortised capex + network +
    write-off = GPUs x (capex + network - residual)); without them, at the era's start (their oldest)."""
    data = refresh_scenario_data()
    data["horizon"]["months"] = 15
    data["pools"][0]["pricing"] = {k: v for k, v in H100.items() if k != "gpus"}
    data["pools"][0]["refresh"][0]["from"] = "2028-03-01"
    scenario = validate_scenario_data(data)
    hours = round(hours_since(START, dt.date(2028, 4, 1)))
    era = pool_eras(scenario, scenario.pools[0], hours)[0]
    year = round(HOURS_PER_YEAR)
    in_place = np.zeros(hours)
    in_place[: era.end_hour] = 8.0
    in_place[year : era.end_hour] = 12.0  # 4 more bought at the start of year 2
    age = retired_age_years(era, in_place)
    assert retired_age_years(era) is None  # default purchases need the GPUs in place
    assert age == pytest.approx((8 * era.end_hour + 4 * (era.end_hour - year)) / 12 / HOURS_PER_YEAR)
    item = write_off_item(era, 12, hours, in_place)
    assert item is not None and item.idle[era.end_hour] == 12
    assert item.unit_price_usd == pytest.approx(H100_CAPITAL * (1 - age / LIFE) - RESIDUAL, rel=1e-12)
    amortised = depreciated_usd(in_place.sum())
    assert amortised + 12 * item.unit_price_usd == pytest.approx(12 * (H100_CAPITAL - RESIDUAL), abs=1e-6)
    oldest = write_off_item(era, 12, hours)
    assert oldest is not None
    assert oldest.unit_price_usd == pytest.approx(
        book_value_usd_per_gpu(era.pool.pricing, era.end_hour / HOURS_PER_YEAR) - RESIDUAL)  # fmt: skip
    assert oldest.unit_price_usd == pytest.approx(
        H100_CAPITAL * (1 - era.end_hour / HOURS_PER_YEAR / LIFE) - RESIDUAL, rel=1e-12)  # fmt: skip


def test_default_purchases_over_a_year_end_to_end():
    data = refresh_scenario_data()
    data["horizon"]["months"] = 15
    data["workloads"][0]["traffic"].update(requests_per_second=10.0, growth_per_month=0.1)
    data["pools"][0]["pricing"] = {k: v for k, v in H100.items() if k != "gpus"}
    data["pools"][0]["refresh"][0]["from"] = "2028-03-01"
    data["plans"] = []
    r = run(validate_scenario_data(data), curve_provider=MM1)
    b = r.billing
    owned_hours = float(b.loc[b["line_item"] == "owned_gpu_hours", "quantity"].sum())
    assert float(b.loc[b["line_item"] == "network_gpu_hours", "quantity"].sum()) == owned_hours
    amortised = depreciated_usd(owned_hours)
    write_off = b[b["line_item"].str.startswith(WRITE_OFF_LINE)]
    gpus = write_off["quantity"].sum()
    assert amortised + write_off["cost_usd"].sum() == pytest.approx(gpus * (H100_CAPITAL - RESIDUAL), abs=0.01)


# ---------------------------------------------------------------------- the workbook


def test_era_rate_and_write_off_are_formulas_of_named_cells(report, runs):
    formulas, values = load(report, data_only=False), load(report)
    rate = named(formulas, RATE_B200).value
    assert rate == (f"={CAPEX_B200}/({POOL}_lifetime_years{ERA}*hours_per_year)"
                    f"+{CAPEX_B200}*{POOL}_opex_fraction_per_year{ERA}/hours_per_year")  # fmt: skip
    assert named(values, RATE_B200).value == pytest.approx(B200_CAPEX * owned_rate_per_capex_usd(), rel=1e-15)
    assert named(formulas, CAPEX_B200).value == B200_CAPEX  # an input
    assert named(formulas, NETWORK).value == f"=0.1*{CAPEX}"  # not given: 10% of the capex, a formula
    assert named(values, NETWORK).value == pytest.approx(H100_NETWORK, rel=1e-15)
    for r in runs:
        write_off = named(formulas, name_of(r, WRITE_OFF, formulas)).value
        residual, age = name_of(r, RESIDUAL_CELL, formulas), name_of(r, AGE, formulas)
        assert write_off == f"=({CAPEX}+{NETWORK})*MAX(0,1-{age}/{POOL}_lifetime_years)-{residual}"
        assert named(formulas, residual).value == RESIDUAL
        assert isinstance(named(formulas, age).value, float)  # a constant from dates
        assert named(values, name_of(r, WRITE_OFF, formulas)).value == pytest.approx(write_off_price(r), rel=1e-12)
    # the runs agree on the residual (one cell), not on the mean age (tranches are younger)
    assert RESIDUAL_CELL + RETIRED in formulas.defined_names
    assert AGE + RETIRED + "_tranches" in formulas.defined_names
    labels = {named(formulas, n).offset(column=-2).value for n in (AGE + RETIRED + "_base",)}
    assert all("derived" in label and "not an input" in label for label in labels)


@needs_soffice
def test_recalculated_formulas_equal_their_cached_values(report, tmp_path):
    cached = load(report)
    recalculated = load(recalculate(report, tmp_path))
    every_formula_matches_its_cached_value(report, recalculated, at_least=100)
    for name in (RATE_B200, WRITE_OFF + RETIRED + "_base", WRITE_OFF + RETIRED + "_tranches"):
        assert named(recalculated, name).value == pytest.approx(named(cached, name).value, rel=1e-12)


@needs_soffice
def test_editing_capex_and_residual_moves_totals_by_the_hand_calculation(report, runs, tmp_path):
    """H100 capex +$5,000, B200 capex +$10,000, residual +$1,000: each run's lifetime spend moves by
    the owned and TCO rates' change x owned GPU-hours + GPUs retired x ((capex change + the default
    network's, 10% of it) x (1 - age/life) - residual change); the write-off per GPU itself by
    5,500 x (1 - age/life) - 1,000."""
    d_h100, d_b200, d_residual = 5000.0, 10000.0, 1000.0
    changed = tmp_path / "changed.xlsx"
    assert set_named_cell(report, CAPEX, H100_CAPEX + d_h100, changed) == H100_CAPEX
    assert set_named_cell(changed, CAPEX_B200, B200_CAPEX + d_b200, changed) == B200_CAPEX
    assert set_named_cell(changed, RESIDUAL_CELL + RETIRED, RESIDUAL + d_residual, changed) == RESIDUAL
    before, formulas = load(report), load(report, data_only=False)
    after = load(recalculate(changed, tmp_path))
    table_before, table_after = summary_table(before), summary_table(after)
    for r in runs:
        age = named(before, name_of(r, AGE, formulas)).value
        gpus = billed(r, next(n for n in r.result.billing["line_item"].unique() if n.startswith(WRITE_OFF_LINE)))
        per_gpu = (d_h100 + DEFAULT_NETWORK_SHARE * d_h100) * max(0.0, 1 - age / LIFE) - d_residual
        name = name_of(r, WRITE_OFF, formulas)
        assert named(after, name).value - named(before, name).value == pytest.approx(per_gpu, abs=1e-6)
        per_capex = owned_rate_per_capex_usd() + tco_rate_per_capex_usd()
        expected = (d_h100 * per_capex * billed(r, "owned_gpu_hours")
                    + d_b200 * per_capex * billed(r, "owned_gpu_hours (b200)")
                    + gpus * per_gpu)  # fmt: skip
        delta = table_after[(SPEND, "Lifetime spend")][r.label] - table_before[(SPEND, "Lifetime spend")][r.label]
        assert billed(r, "owned_gpu_hours (b200)") > 0 and gpus > 0
        assert delta == pytest.approx(expected, abs=0.005), r.label
        assert table_before[(SPEND, "Lifetime spend")][r.label] == pytest.approx(
            r.result.summary["total_cost_usd"], abs=0.005)  # fmt: skip
