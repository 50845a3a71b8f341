"""The FOCUS export against the FOCUS 1.2 column rules, and against the cash and accrual views.

The FinOps Foundation's validator (PyPI focus_validator 1.0.0) checks FOCUS 1.0 only and pins
numpy < 2 and pandas < 3, so it cannot be installed beside this project; the rules below are
the 1.2 specification's own (FOCUS_Spec, tag v1.2, specification/columns/*.md): presence,
types, nullability, allowed values, and the cross-column rules.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from simulator.report.focus import COLUMNS, FOCUS_COLUMNS, focus_csv, focus_table
from simulator.results.runner import run
from simulator.scenario.loading import load_scenario
from tests.conftest import ROOT
from tests.synthetic import mm1_provider

MANDATORY = ["BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
             "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodEnd",
             "ChargePeriodStart", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost",
             "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory",
             "ServiceName"]  # fmt: skip
NOT_NULL = ["BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart",
            "ChargeCategory", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost", "EffectiveCost",
            "InvoiceIssuerName", "ListCost", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
            "ChargeFrequency"]  # fmt: skip
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
FREQUENCIES = {"One-Time", "Recurring", "Usage-Based"}
SERVICE_CATEGORIES = {"AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
                      "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
                      "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
                      "Storage", "Web", "Other"}  # fmt: skip
AI_SUBCATEGORIES = {"AI Platforms", "Bots", "Generative AI", "Machine Learning", "Natural Language Processing",
                    "Other (AI and Machine Learning)"}  # fmt: skip
UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

CASES = [("lifecycle", "base"), ("chat-assistant", "owned-hardware"), ("enterprise-rag", "base"),
         ("buy-vs-rent", "reserved-3y"), ("training-lab", "base")]  # fmt: skip


def _run(name: str, plan: str, **update):
    scenario = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    if update:
        scenario = scenario.model_copy(update=update)
    return run(scenario, plan=plan, curve_provider=mm1_provider(2.0, 3000))


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}:{c[1]}")
def case(request):
    result = _run(*request.param)
    return result, focus_table(result)


def test_totals_are_the_cash_and_the_accrual_views_to_the_cent(case):
    result, focus = case
    assert focus["BilledCost"].sum() == pytest.approx(result.summary["cash_flow"]["total_usd"], abs=0.005)
    assert focus["EffectiveCost"].sum() == pytest.approx(result.summary["total_cost_usd"], abs=0.005)
    for category in ("inference", "training", "idle"):
        rows = focus[focus["x_category"] == category]
        assert rows["EffectiveCost"].sum() == pytest.approx(result.summary[f"{category}_cost_usd"], abs=0.005)
    # the CSV keeps the totals (money to 1e-6)
    csv = pd.read_csv(io.StringIO(focus_csv(focus)))
    assert csv["BilledCost"].sum() == pytest.approx(result.summary["cash_flow"]["total_usd"], abs=0.005)
    assert csv["EffectiveCost"].sum() == pytest.approx(result.summary["total_cost_usd"], abs=0.005)


def test_workload_and_job_rows_add_up_to_their_summary_costs(case):
    result, focus = case
    for name, workload in result.summary["workloads"].items():
        mine = focus[focus["x_workload"] == name]
        assert mine["EffectiveCost"].sum() == pytest.approx(workload["cost_usd"], rel=1e-9, abs=0.005)
    for name, job in result.summary["training_jobs"].items():
        mine = focus[focus["x_job"] == name]
        assert mine["EffectiveCost"].sum() == pytest.approx(job["cost_usd"], rel=1e-9, abs=0.005)


def test_columns_follow_the_focus_1_2_rules(case):
    _, focus = case
    frame = pd.read_csv(io.StringIO(focus_csv(focus)), keep_default_na=False, na_values=[""])
    assert list(frame.columns) == COLUMNS
    assert set(MANDATORY) <= set(FOCUS_COLUMNS)
    assert all(c in FOCUS_COLUMNS or c.startswith("x_") for c in frame.columns)  # custom columns: x_
    for column in NOT_NULL:
        assert frame[column].notna().all(), column
    assert frame["ChargeClass"].isna().all()  # no corrections in a projection
    assert set(frame["ChargeCategory"]) <= CHARGE_CATEGORIES
    assert set(frame["ChargeFrequency"]) <= FREQUENCIES
    assert set(frame["ServiceCategory"]) <= SERVICE_CATEGORIES
    assert set(frame["ServiceSubcategory"].dropna()) <= AI_SUBCATEGORIES
    assert frame["BillingCurrency"].str.fullmatch(r"[A-Z]{3}").all()
    for column in ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd"):
        assert frame[column].map(lambda v: bool(UTC.match(v))).all(), column
    start, end = (pd.to_datetime(frame[c]) for c in ("BillingPeriodStart", "BillingPeriodEnd"))
    assert (end > start).all()
    charge_start, charge_end = (pd.to_datetime(frame[c]) for c in ("ChargePeriodStart", "ChargePeriodEnd"))
    assert (charge_end > charge_start).all() and (charge_start >= start).all() and (charge_end <= end).all()
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "PricingQuantity"):
        assert np.isfinite(frame[column].astype(float)).all(), column
    # PricingUnit is null exactly when PricingQuantity is; neither null for Usage or Purchase
    assert (frame["PricingQuantity"].isna() == frame["PricingUnit"].isna()).all()
    assert frame["PricingQuantity"].notna().all()
    # unit prices: non-negative, and unit price x quantity = the cost
    for price, cost in (("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "ContractedCost")):
        assert (frame[price] >= 0).all()
        np.testing.assert_allclose(frame[price] * frame["PricingQuantity"], frame[cost], rtol=1e-6, atol=1e-4)
    purchases = frame[frame["ChargeCategory"] == "Purchase"]
    assert (purchases["EffectiveCost"] == 0).all()  # amortised through the usage rows
    assert (purchases["ChargeFrequency"] != "Usage-Based").all()
    usage = frame[frame["ChargeCategory"] == "Usage"]
    assert (usage["BilledCost"] <= usage["EffectiveCost"] + 1e-6).all()  # cash part of an accrual
    assert frame["x_plan"].notna().all() and frame["x_pool"].notna().all()


def test_owned_purchases_and_residual_sales_are_purchase_rows():
    result = _run("lifecycle", "base")
    focus = focus_table(result)
    purchases = focus[focus["ChargeCategory"] == "Purchase"]
    cash = result.summary["cash_flow"]
    assert purchases.loc[purchases["BilledCost"] > 0, "BilledCost"].sum() == pytest.approx(cash["purchases_usd"])
    sales = purchases[purchases["BilledCost"] < 0]
    assert -sales["BilledCost"].sum() == pytest.approx(cash["residual_sales_usd"])
    assert cash["residual_sales_usd"] == pytest.approx(64 * 8000)  # lifecycle sells 64 H100s at $8,000
    assert (sales["PricingQuantity"] == -64).all()
    # the refresh day: the sale and the B200 purchase are charged from 2028-06-01
    assert set(pd.to_datetime(sales["ChargePeriodStart"]).dt.strftime("%Y-%m-%d")) == {"2028-06-01"}


def test_a_currency_converts_every_money_column_at_its_rate():
    from simulator.scenario.schema import Currency

    usd = focus_table(_run("buy-vs-rent", "owned"))
    eur = focus_table(_run("buy-vs-rent", "owned", currency=Currency(code="EUR", usd_rate=0.92)))
    assert set(eur["BillingCurrency"]) == {"EUR"}
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice"):
        np.testing.assert_allclose(eur[column], usd[column] * 0.92, rtol=1e-12)
    np.testing.assert_array_equal(eur["PricingQuantity"], usd["PricingQuantity"])
    assert "EUR" in eur["ChargeDescription"].iloc[0]
