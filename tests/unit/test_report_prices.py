"""Named price cells (simulator.report.prices) and workbook naming helpers."""

from __future__ import annotations

import pytest

from simulator.economics.pricing import (
    HOURS_PER_YEAR,
    owned_capex_usd_per_gpu_hour,
    owned_opex_usd_per_gpu_hour,
)
from simulator.report.monthly import fiscal_year
from simulator.report.prices import PricedRun, build_price_book, excel_name, owned_usd_per_gpu_hour
from simulator.report.sheet import wrapped_lines
from simulator.report.workbook import sheet_title
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import scenario_for_plan
from simulator.scenario.schema import OwnedPricing
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

MM1 = mm1_provider()


@pytest.mark.parametrize(
    "text, name",
    [("serving_usd_per_gpu_hour", "serving_usd_per_gpu_hour"), ("train-pool x", "train_pool_x"),
     ("1st", "_1st"), ("A1", "_A1"), ("xfd12", "_xfd12"), ("R1C1", "_R1C1"), ("c", "_c"),
     ("pools.serving.pue", "pools.serving.pue")],
)  # fmt: skip
def test_excel_names_are_valid(text, name):
    assert excel_name(text) == name


def test_owned_rate_formula_matches_pricing():
    pricing = OwnedPricing(
        kind="owned", capex_usd_per_gpu=30000, lifetime_years=4, opex_fraction_per_year=0.1
    )
    expected = owned_capex_usd_per_gpu_hour(pricing) + owned_opex_usd_per_gpu_hour(pricing)
    assert owned_usd_per_gpu_hour(30000, 4, 0.1) == pytest.approx(expected, rel=1e-15)
    assert HOURS_PER_YEAR == 8766


def priced_runs():
    data = minimal_scenario_dict()
    data["api_baseline"] = {
        "usd_per_million_input_tokens": 1.0,
        "usd_per_million_output_tokens": 3.0,
    }
    data["plans"] = [
        {"name": "same", "set": {"seed": 2}},
        {"name": "dearer", "set": {"pools.gpus.pricing.usd_per_gpu_hour": 4.0}},
        {"name": "owned", "set": {"pools.gpus.pricing": {"kind": "owned", "capex_usd_per_gpu": 25000,
                                                          "lifetime_years": 5}}},
    ]  # fmt: skip
    s = validate_scenario_data(data)
    return [
        PricedRun(p, scenario_for_plan(s, p), run(s, plan=p, curve_provider=MM1).billing)
        for p in ("base", "same", "dearer", "owned")
    ]


def test_price_book_shares_equal_prices_and_splits_different_ones():
    book = build_price_book(priced_runs())
    cells = {c.name: c for c in book.cells}
    # base and same pay 3.0, dearer 4.0: one name per run; owned is the only owned run
    assert book.name_for("base", "gpus", "usd_per_gpu_hour") == "gpus_usd_per_gpu_hour_base"
    assert book.name_for("dearer", "gpus", "usd_per_gpu_hour") == "gpus_usd_per_gpu_hour_dearer"
    assert cells["gpus_usd_per_gpu_hour_dearer"].value == 4.0
    assert book.name_for("owned", "gpus", "owned_usd_per_gpu_hour") == "gpus_owned_usd_per_gpu_hour"
    owned = cells["gpus_owned_usd_per_gpu_hour"]
    assert owned.formula is not None and "gpus_capex_usd_per_gpu" in owned.formula
    assert owned.value == pytest.approx(owned_usd_per_gpu_hour(25000, 5, 0.0))
    assert cells["hours_per_year"].value == HOURS_PER_YEAR
    api = cells["api_usd_per_million_input_tokens"]
    assert api.value == 1.0 and api.runs == ("base", "same", "dearer", "owned")


def test_one_plan_gets_plain_names():
    book = build_price_book(priced_runs()[:2])
    assert book.name_for("same", "gpus", "usd_per_gpu_hour") == "gpus_usd_per_gpu_hour"
    assert [c.name for c in book.cells if c.group == "gpus"] == ["gpus_usd_per_gpu_hour"]


def test_sheet_titles_are_valid_and_unique():
    taken: set[str] = set()
    first = sheet_title("Monthly", "scenario-with-a-long-name:plan/x", taken)
    second = sheet_title("Monthly", "scenario-with-a-long-name:plan/x", taken)
    assert len(first) <= 31 and len(second) <= 31 and first != second
    assert not set(first) & set("[]:*?/\\'")


def test_wrapped_lines_and_fiscal_years():
    import datetime as dt

    assert wrapped_lines("short", 10) == 1
    assert wrapped_lines("delta owned-hardware vs base", 12) == 3
    assert fiscal_year(dt.date(2027, 1, 1), 1) == "FY2027"
    assert fiscal_year(dt.date(2027, 3, 1), 4) == "FY2027"
    assert fiscal_year(dt.date(2027, 4, 1), 4) == "FY2028"
