"""The cash view of a run beside its accrual view: when money leaves (and comes back).

The accrual (amortised) view is the billing's: owned GPUs cost their depreciation every hour
they are in place, a refresh writes off the book value left. The cash view pays:

- every usage line as it accrues, except the parts that are accrual charges only
  (:attr:`simulator.economics.pricing.LineItem.cash_price_usd`): depreciation, network
  depreciation, the cost of capital (the return the money could earn elsewhere, which the
  discount rate accounts for instead) and refresh write-offs;
- owned GPUs and their network in the hour they arrive (capex, "purchase");
- retired GPUs sold at a refresh as an inflow at their residual value ("sale").

Over a GPU's whole life both views agree on what was spent (capex - residual); within a horizon
they differ by the book value still owned at its end, which the cash view has paid and the
accrual view has not yet charged. Reserved commitments are paid hourly in both views (no
upfront payment is modelled).

NPV discounts the cash of each month as paid at the month's end (the convention of a
spreadsheet's NPV function) at the monthly rate equivalent to the yearly discount rate.
"""

from __future__ import annotations

import numpy as np

from simulator.economics.pricing import CapitalLine, PoolCost
from simulator.economics.refresh import Era
from simulator.scenario.schema import OwnedPricing

SALE_LINE = "residual_sale"
RESIDUAL_KEY = "residual_usd_per_gpu"


def era_capital(era: Era, cost: PoolCost, hours: int) -> list[CapitalLine]:
    """The era's purchases (named and keyed for its GPU after a refresh) and, when a refresh
    retires its owned GPUs within the horizon, their sale at the residual value."""
    retired = era.next_step is not None and isinstance(era.pool.pricing, OwnedPricing) and era.end_hour < hours
    out = []
    for line in cost.capital:
        out.append(CapitalLine(
            f"{line.name} ({era.pool.gpu})" if era.step is not None else line.name, line.kind, line.unit,
            line.price_key + era.suffix, line.unit_price_usd, line.quantity, line.life_hours,
            era.end_hour if retired else None,
        ))  # fmt: skip
    if retired and cost.owned_gpus and era.next_step is not None:
        sold = np.zeros(hours)
        sold[era.end_hour] = float(cost.owned_gpus)
        out.append(CapitalLine(sale_line_name(era), "sale", "GPU", sale_key(era),
                               era.next_step.residual_usd_per_gpu, sold))  # fmt: skip
    return out


def sale_key(era: Era) -> str:
    """Price key of the residual value per GPU at the refresh ending ``era`` (which must have one),
    e.g. 'residual_usd_per_gpu_h100-sxm_2028_06_01'."""
    assert era.next_step is not None
    return f"{RESIDUAL_KEY}_{era.pool.gpu}_{era.next_step.from_date:%Y_%m_%d}"


def sale_line_name(era: Era) -> str:
    """Cash line of the retired GPUs' sale, e.g. 'residual_sale h100-sxm 2028-06-01'."""
    assert era.next_step is not None
    return f"{SALE_LINE} {era.pool.gpu} {era.next_step.from_date:%Y-%m-%d}"


def monthly_rate(discount_rate_per_year: float) -> float:
    """The monthly rate that compounds to the yearly one."""
    return (1.0 + discount_rate_per_year) ** (1.0 / 12.0) - 1.0


def npv_usd(cash_by_month: np.ndarray, discount_rate_per_year: float) -> float:
    """Net present value at the horizon's start of monthly cash flows paid at each month's end
    (as a spreadsheet's NPV(rate, values) computes it)."""
    rate = monthly_rate(discount_rate_per_year)
    months = np.arange(1, len(cash_by_month) + 1)
    return float((np.asarray(cash_by_month, dtype=float) / (1.0 + rate) ** months).sum())
