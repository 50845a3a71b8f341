"""Named price cells (simulator.report.prices) and workbook naming helpers."""

from __future__ import annotations

import pytest

from simulator.economics.pricing import (
    HOURS_PER_YEAR,
    capital_usd_per_gpu_hour,
    network_usd_per_gpu_hour,
    owned_capex_usd_per_gpu_hour,
    owned_opex_usd_per_gpu_hour,
    support_usd_per_gpu_hour,
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


def test_owned_tco_rates_are_formulas_of_named_inputs():
    """Network, support and cost of capital per owned GPU-hour: formulas of the capex, life, support
    fraction, cost of capital and network capex cells; the network capex left to its default is a
    formula of the capex (10%), labelled as the default. Their values are what the run billed."""
    runs = priced_runs()
    book = build_price_book(runs)
    cells = {c.name: c for c in book.cells}
    owned = runs[-1]
    pricing = owned.scenario.pools[0].pricing
    assert isinstance(pricing, OwnedPricing) and pricing.network_capex_usd_per_gpu is None
    capex, life = "gpus_capex_usd_per_gpu", "gpus_lifetime_years"
    network, support, rate = ("gpus_network_capex_usd_per_gpu", "gpus_support_fraction_per_year",
                              "gpus_cost_of_capital_per_year")  # fmt: skip
    assert cells[network].formula == f"=0.1*{capex}" and cells[network].value == 2500.0
    assert "default" in cells[network].label and "10% of capex" in cells[network].label
    assert (cells[support].formula, cells[support].value, cells[rate].formula, cells[rate].value) == (None, 0.05, None, 0.08)
    expected = {
        "network_usd_per_gpu_hour": (f"={network}/({life}*hours_per_year)", network_usd_per_gpu_hour(pricing)),
        "support_usd_per_gpu_hour": (f"={capex}*{support}/hours_per_year", support_usd_per_gpu_hour(pricing)),
        "capital_usd_per_gpu_hour": (f"=({capex}+{network})/2*{rate}/hours_per_year", capital_usd_per_gpu_hour(pricing)),
    }  # fmt: skip
    billing = owned.billing
    for key, (formula, value) in expected.items():
        cell = cells[book.name_for("owned", "gpus", key)]
        assert (cell.name, cell.formula, cell.unit) == (f"gpus_{key}", formula, "$/GPU-hour")
        assert cell.value == value == float(billing.loc[billing["price_key"] == key, "unit_price_usd"].iloc[0])
    assert cells["gpus_capital_usd_per_gpu_hour"].value == pytest.approx(27500 / 2 * 0.08 / HOURS_PER_YEAR, rel=1e-15)
    for rented in runs[:3]:  # none of these cells
        assert not book.has(rented.label, "gpus", "support_usd_per_gpu_hour")


def test_tco_inputs_shared_where_runs_agree_and_a_given_network_is_an_input():
    data = minimal_scenario_dict()
    owned = {"kind": "owned", "capex_usd_per_gpu": 25000, "lifetime_years": 5}
    data["plans"] = [
        {"name": "a", "set": {"pools.gpus.pricing": owned}},
        {"name": "b", "set": {"pools.gpus.pricing": {**owned, "support_fraction_per_year": 0.1}}},
        {"name": "c", "set": {"pools.gpus.pricing": {**owned, "network_capex_usd_per_gpu": 4000}}},
    ]
    s = validate_scenario_data(data)
    runs = [PricedRun(p, scenario_for_plan(s, p), run(s, plan=p, curve_provider=MM1).billing) for p in ("a", "b", "c")]
    book = build_price_book(runs)
    cells = {c.name: c for c in book.cells}
    # the support fraction differs: its cell and its rate per run; capex and life shared
    assert [book.name_for(r, "gpus", "support_usd_per_gpu_hour") for r in "ab"] == [
        "gpus_support_usd_per_gpu_hour_a", "gpus_support_usd_per_gpu_hour_b"]
    assert cells["gpus_support_usd_per_gpu_hour_b"].formula == (
        "=gpus_capex_usd_per_gpu*gpus_support_fraction_per_year_b/hours_per_year")
    assert cells["gpus_support_fraction_per_year_b"].value == 0.1
    assert book.name_for("a", "gpus", "capex_usd_per_gpu") == book.name_for("b", "gpus", "capex_usd_per_gpu")
    # c gives its network capex: an input cell (not the default formula), and its own rates
    given = cells[book.name_for("c", "gpus", "network_capex_usd_per_gpu")]
    assert (given.formula, given.value) == (None, 4000.0) and "default" not in given.label
    # the runs differ on the network capex (c's input): every run has its own network cell
    default = cells[book.name_for("a", "gpus", "network_capex_usd_per_gpu")]
    assert (default.name, default.formula) == ("gpus_network_capex_usd_per_gpu_a", "=0.1*gpus_capex_usd_per_gpu")
    assert book.name_for("a", "gpus", "network_usd_per_gpu_hour") == "gpus_network_usd_per_gpu_hour_a"
    rate_c = cells[book.name_for("c", "gpus", "capital_usd_per_gpu_hour")]
    assert given.name in rate_c.formula and rate_c.runs == ("c",)
    assert rate_c.value == pytest.approx((25000 + 4000) / 2 * 0.08 / HOURS_PER_YEAR, rel=1e-15)
    # without c, a and b agree on the network (the default of the same capex): shared cells
    book = build_price_book(runs[:2])
    cells = {c.name: c for c in book.cells}
    assert cells["gpus_network_capex_usd_per_gpu"].runs == ("a", "b")
    assert cells["gpus_capital_usd_per_gpu_hour"].runs == ("a", "b")
    assert cells["gpus_network_usd_per_gpu_hour"].runs == ("a", "b")
    assert book.name_for("b", "gpus", "support_usd_per_gpu_hour") == "gpus_support_usd_per_gpu_hour_b"
