"""The Cash flow sheet of one run: when money leaves and comes back, beside the accrual view.

Months as rows (see :mod:`simulator.economics.cashflow` for the rules):

- **paid as incurred**: every Billing cost that is paid as it accrues (a reference to its cost
  cell), and for owned GPU-hours the operations overhead alone (quantity x capex x opex / hours
  per year, by named cells); depreciation, network depreciation, the cost of capital and
  write-offs are accrual charges and are not here;
- per owned pool: **GPUs bought** (simulated) x the named capex and network capex, **GPUs sold**
  at a refresh x the named residual value (an inflow, negative);
- **net cash**, cumulative, the **accrual** spend of the Monthly sheet beside it, and the
  difference.

Below the table: the net present value at the named discount rate, ``NPV(monthly rate, net
cash)`` with monthly rate = (1 + yearly rate)^(1/12) - 1, each month's cash taken as paid at its
end (a spreadsheet's NPV convention). Every figure is a formula of named inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from xlsxwriter.utility import xl_col_to_name

from simulator.economics.cashflow import monthly_rate, npv_usd
from simulator.report.monthly import DATA_ROW, HEADER_ROWS, BillingColumn, MonthlyLayout
from simulator.report.prices import HOURS_PER_YEAR_NAME, OWNED_KEY, PriceBook
from simulator.report.sheet import Sheet, cell_ref


@dataclass
class CashLayout:
    """Where the Cash flow sheet put its totals (for the Summary)."""

    sheet: str
    total_row: int
    col_net: int
    npv_cell: tuple[int, int]
    total_value: float
    npv_value: float
    capital_cols: dict[str, list[int]] = field(default_factory=dict)  # kind -> columns of its cash
    capital_values: dict[str, float] = field(default_factory=dict)  # kind -> its total
    incurred_col: int = 1
    incurred_value: float = 0.0

    def total_ref(self, col: int) -> str:
        return cell_ref(self.sheet, self.total_row, col, absolute=True)


def write_cashflow(
    sheet: Sheet, run: str, cashflow: pd.DataFrame, columns: list[BillingColumn], billing_sheet: str,
    monthly: MonthlyLayout, book: PriceBook, discount_name: str, discount_rate: float,
) -> CashLayout:  # fmt: skip
    """The sheet (see the module docstring); returns where its totals are."""
    months = monthly.months
    n = len(months)
    labels = [f"{m:%Y-%m}" for m in months]
    sheet.title(
        f"Cash flow - {run}: capex when paid, opex as incurred, residual sales as inflows",
        "Green headers: formulas of the named prices (Assumptions) and Billing's quantities. "
        "Orange: simulated GPUs bought and sold. Accrual = the Monthly total (depreciation instead of capex).",
    )
    sheet.header(3, 0, ["Month"])
    col = 1
    incurred_col = col
    col += 1
    capital = cashflow[cashflow["kind"] != "usage"] if len(cashflow) else cashflow
    capital_groups = list(dict.fromkeys(zip(capital["pool"], capital["line_item"], capital["kind"], capital["price_key"],
                                            strict=True))) if len(capital) else []  # fmt: skip
    capital_cols: list[tuple[tuple[str, str, str, str], int, int]] = []
    for key in capital_groups:
        capital_cols.append((key, col, col + 1))
        col += 2
    net_col, cumulative_col, accrual_col, diff_col = col, col + 1, col + 2, col + 3

    incurred = np.zeros(n)
    for i in range(n):
        sheet.write(DATA_ROW + i, 0, months[i], "month")
        terms: list[str] = []
        for c in columns:
            cash_price = c.cash_price
            if cash_price == 0:
                continue
            if cash_price == c.price:
                terms.append(c.cost_ref(i, billing_sheet))
            else:
                terms.append(_opex_term(book, run, c, c.qty_ref(i, billing_sheet)))
            incurred[i] += c.quantity[i] * cash_price
        sheet.formula(DATA_ROW + i, incurred_col, "=" + ("+".join(terms) or "0"), incurred[i], "usd")
    sheet.header(3, incurred_col, ["paid as incurred (usage, power, opex)"], "header_formula")

    net = incurred.copy()
    kind_totals: dict[str, list[int]] = {}
    kind_values: dict[str, float] = {}
    column_totals: dict[int, float] = {}
    for (pool, line, kind, key), qty_col, cash_col in capital_cols:
        rows = capital[(capital["pool"] == pool) & (capital["line_item"] == line)]
        per = rows.groupby("month")[["quantity", "cash_usd"]].sum().reindex(labels, fill_value=0.0)
        price = float(rows["unit_price_usd"].iloc[0])
        name = book.name_for(run, pool, key) if book.has(run, pool, key) else None
        unit = "GPUs sold" if kind == "sale" else "GPUs bought"
        sheet.header(3, qty_col, [f"{pool}: {unit}"], "header_sim")
        sheet.header(3, cash_col, [f"{pool}: {line.replace('_', ' ')}"], "header_formula")
        for i in range(n):
            quantity = float(per["quantity"].iloc[i])
            sheet.write(DATA_ROW + i, qty_col, quantity, "num")
            qty = cell_ref(None, DATA_ROW + i, qty_col)
            # sale quantities are negative: cash = quantity x price is the inflow
            sheet.formula(DATA_ROW + i, cash_col, f"={qty}*{name or repr(price)}{book.fx(run)}", quantity * price, "usd")
            net[i] += quantity * price
        column_totals[cash_col] = float((per["quantity"] * price).sum())
        kind_totals.setdefault(kind, []).append(cash_col)
        kind_values[kind] = kind_values.get(kind, 0.0) + column_totals[cash_col]
    for i in range(n):
        row = DATA_ROW + i
        parts = [cell_ref(None, row, incurred_col)] + [cell_ref(None, row, c) for _, _, c in capital_cols]
        sheet.formula(row, net_col, "=" + "+".join(parts), net[i], "usd")
        previous = f"{cell_ref(None, row - 1, cumulative_col)}+" if i else ""
        sheet.formula(row, cumulative_col, f"={previous}{cell_ref(None, row, net_col)}", net[: i + 1].sum(), "usd")
        accrual = float(monthly.values[monthly.col_total][i])
        sheet.formula(row, accrual_col, "=" + monthly.month_ref(i, monthly.col_total), accrual, "usd")
        sheet.formula(row, diff_col, f"={cell_ref(None, row, net_col)}-{cell_ref(None, row, accrual_col)}",
                      net[i] - accrual, "usd")  # fmt: skip
    sheet.header(3, net_col, ["net cash out"], "header_formula")
    sheet.header(3, cumulative_col, ["cumulative cash out"], "header_formula")
    sheet.header(3, accrual_col, ["accrual spend (Monthly total)"], "header_formula")
    sheet.header(3, diff_col, ["cash - accrual"], "header_formula")
    if capital_cols:
        sheet.group(2, capital_cols[0][1], capital_cols[-1][2], "Owned hardware bought and sold")
    sheet.group(2, net_col, diff_col, "Net")

    total_row = DATA_ROW + n
    sheet.write(total_row, 0, "Total", "total_label")
    accrual_total = float(monthly.values[monthly.col_total].sum())
    totals = {incurred_col: incurred.sum(), **column_totals, net_col: net.sum(), accrual_col: accrual_total,
              diff_col: net.sum() - accrual_total}  # fmt: skip
    for c, value in totals.items():
        letter = xl_col_to_name(c)
        sheet.formula(total_row, c, f"=SUM({letter}{DATA_ROW + 1}:{letter}{total_row})", value, "usd_bold")

    npv_row = total_row + 2
    rate = monthly_rate(discount_rate)
    net_letter = xl_col_to_name(net_col)
    sheet.write(npv_row, 0, "Net present value of the net cash", "bold")
    npv = npv_usd(net, discount_rate)
    sheet.formula(npv_row, net_col, f"=NPV((1+{discount_name})^(1/12)-1,{net_letter}{DATA_ROW + 1}:{net_letter}{total_row})",
                  npv, "usd_bold")  # fmt: skip
    sheet.write(npv_row + 1, 0, f"at the discount rate (named {discount_name}) per year; monthly rate", "note")
    sheet.formula(npv_row + 1, net_col, f"=(1+{discount_name})^(1/12)-1", rate, "pct")
    sheet.write(npv_row + 2, 0, "Each month's cash is discounted as paid at the month's end (the NPV function's "
                "convention). Owned GPUs still held at the end keep their book value: the cash view has paid for "
                "them, the accrual view not yet.", "note")  # fmt: skip
    sheet.set_width(0, 0, 12)  # months; the notes below may run across
    sheet.finish(HEADER_ROWS, frozen_cols=1)
    return CashLayout(sheet.name, total_row, net_col, (npv_row, net_col), float(net.sum()), npv,
                      kind_totals, kind_values, incurred_col, float(incurred.sum()))  # fmt: skip


def _opex_term(book: PriceBook, run: str, c: BillingColumn, qty: str) -> str:
    """The cash part of owned GPU-hours: quantity x capex x opex / hours per year (named cells
    of the same GPU era), or quantity x the cash price where the rate is not a formula."""
    suffix = c.price_key.removeprefix(OWNED_KEY)
    capex_key, opex_key = "capex_usd_per_gpu" + suffix, "opex_fraction_per_year" + suffix
    if c.price_key.startswith(OWNED_KEY) and book.has(run, c.pool, capex_key) and book.has(run, c.pool, opex_key):
        return (f"{qty}*{book.name_for(run, c.pool, capex_key)}*{book.name_for(run, c.pool, opex_key)}"
                f"/{HOURS_PER_YEAR_NAME}{c.fx}")  # fmt: skip
    return f"{qty}*{c.cash_price!r}{c.fx}"
