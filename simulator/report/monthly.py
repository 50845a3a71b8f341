"""The Billing and Monthly sheets of one run: where every cost is a live formula.

Billing: one row per line item per month (long format, each line's months together): pool, line
item, who it is paid for (category), the billed quantity (simulated: GPU-hours, kWh, ...), the
named price (Assumptions sheet) and the cost = quantity x that price; beside it a pivot of the
totals per line item.

Monthly: months as rows; spend by category, by pool, by pool and category (sums of Billing cost
cells), by workload, training job and idle (a pool-and-category cost times the share of it the
simulation attributed to the workload or job that month, by GPU-time), the total (SUM of the
categories) and the cumulative total. Shares are simulated and fixed, so per-workload and per-job
columns always add up to the total, even after a price is changed.

A workload's retrieval stage bills as a pool-less group ``retrieval:<workload>`` (queries and
hours at their named prices, inference category); on Monthly it has its own pool-and-category
column and its own "retrieval" column beside the workloads, and is in no pool's column. Every
other pipeline stage (:mod:`simulator.economics.stages`) bills the same way as ``<stage>:<workload>``,
with a column per workload and stage kind (moderation, tool, custom).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from xlsxwriter.utility import xl_col_to_name

from simulator.economics.stages import STAGE_ENTITY_KINDS
from simulator.report.prices import PriceBook
from simulator.report.sheet import Sheet, cell_ref
from simulator.scenario.schema import Scenario

HEADER_ROWS = 4  # title, note, group labels, column headers
DATA_ROW = HEADER_ROWS  # first month's row (0-based)
CATEGORIES = ("inference", "training", "idle")
ENTITY_KINDS = ("workload", *STAGE_ENTITY_KINDS, "deployment", "training_job", "idle", "unattributed")
ENTITY_GROUPS = {
    "workload": "Inference by workload",
    "retrieval": "Retrieval by workload",
    "moderation": "Moderation by workload",
    "tool": "Tool calls by workload",
    "custom": "Pipeline stages by workload",
    "deployment": "Inference, no workload",
    "training_job": "Training by job",
    "idle": "Idle",
    "unattributed": "Unattributed",
}
KIND_CATEGORY = {"workload": "inference", **dict.fromkeys(STAGE_ENTITY_KINDS, "inference"), "deployment": "inference",
                 "training_job": "training", "idle": "idle"}  # fmt: skip


def month_dates(labels: list[str]) -> list[dt.date]:
    """'2027-01' -> date(2027, 1, 1)."""
    return [dt.date(int(m[:4]), int(m[5:7]), 1) for m in labels]


def fiscal_year(month: dt.date, start_month: int) -> str:
    """FY label of a month: the fiscal year is named by the calendar year it ends in."""
    return f"FY{month.year + (1 if start_month > 1 and month.month >= start_month else 0)}"


#: Billing's columns (long format).
BILLING_HEADERS = ["Month", "Pool", "Line item", "Paid for", "Unit", "Quantity (simulated)", "Price (named cell)",
                   "Unit price", "Cost"]  # fmt: skip
QTY_COL, PRICE_NAME_COL, PRICE_COL, COST_COL = 5, 6, 7, 8
PIVOT_COL = COST_COL + 2  # the totals per line item, right of the long table


@dataclass(frozen=True)
class BillingColumn:
    """One billed quantity of a pool (line item x category): its months' rows on Billing."""

    pool: str
    line_item: str
    unit: str
    price_key: str
    category: str
    price_name: str
    price: float
    quantity: np.ndarray  # per month
    first_row: int  # Billing row of its first month (its months follow)
    cash_price: float = 0.0  # the part of the price paid as it accrues (cash view)
    fx: str = ""  # '*<exchange rate name>' when the report's currency is not USD

    @property
    def cost(self) -> np.ndarray:
        return self.quantity * self.price

    def qty_ref(self, month: int, sheet: str | None = None) -> str:
        """Reference to its quantity of month index ``month`` on Billing."""
        return cell_ref(sheet, self.first_row + month, QTY_COL)

    def cost_ref(self, month: int, sheet: str | None = None) -> str:
        """Reference to its cost of month index ``month`` on Billing."""
        return cell_ref(sheet, self.first_row + month, COST_COL)


@dataclass
class MonthlyLayout:
    """Where the Monthly sheet of a run put things, and the cached values of its columns."""

    sheet: str
    months: list[dt.date]
    fiscal_years: list[str]
    col_total: int = 2
    col_cumulative: int = 3
    col_category: dict[str, int] = field(default_factory=dict)
    col_pool: dict[str, int] = field(default_factory=dict)
    col_entity: dict[tuple[str, str], int] = field(default_factory=dict)
    col_pool_category: dict[tuple[str, str], int] = field(default_factory=dict)
    values: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def total_row(self) -> int:
        return DATA_ROW + len(self.months)

    def total_ref(self, col: int) -> str:
        """Absolute, sheet-qualified reference to a column's total cell."""
        return cell_ref(self.sheet, self.total_row, col, absolute=True)

    def total_value(self, col: int) -> float:
        return float(self.values[col].sum())

    def month_ref(self, i: int, col: int) -> str:
        return cell_ref(self.sheet, DATA_ROW + i, col, absolute=True)

    def fiscal_year_range(self, label: str) -> tuple[int, int]:
        """First and last row (0-based) of a fiscal year's months (contiguous by construction)."""
        rows = [DATA_ROW + i for i, fy in enumerate(self.fiscal_years) if fy == label]
        return rows[0], rows[-1]


# ---------------------------------------------------------------------- Billing


def billing_columns(
    billing: pd.DataFrame, months: list[str], book: PriceBook, run: str
) -> list[BillingColumn]:
    """Billing columns with a non-zero quantity in some month, in the simulator's order."""
    if billing.empty:
        return []
    out: list[BillingColumn] = []
    for (pool, item), rows in billing.groupby(["pool", "line_item"], sort=False):
        used = [c for c in CATEGORIES if (rows.loc[rows["category"] == c, "quantity"] != 0).any()]
        first = rows.iloc[0]
        cash_price = _cash_price(rows)
        for category in used:
            per_month = rows[rows["category"] == category].groupby("month")["quantity"].sum()
            quantity = per_month.reindex(months, fill_value=0.0).to_numpy(dtype=float)
            out.append(BillingColumn(
                pool=str(pool), line_item=str(item), unit=str(first["unit"]),
                price_key=str(first["price_key"]), category=category,
                price_name=book.name_for(run, str(pool), str(first["price_key"])),
                price=float(first["unit_price_usd"]), quantity=quantity,
                first_row=DATA_ROW + len(out) * len(months), cash_price=cash_price, fx=book.fx(run),
            ))  # fmt: skip
    return out


def _cash_price(rows: pd.DataFrame) -> float:
    """The cash part of a line's unit price (all of it when the billing has no cash column)."""
    price = float(rows.iloc[0]["unit_price_usd"])
    if "cash_usd" not in rows.columns:
        return price
    nonzero = rows[rows["quantity"] != 0]
    if nonzero.empty:
        return price
    row = nonzero.iloc[0]
    ratio = float(row["cash_usd"]) / float(row["quantity"])
    return price if abs(ratio - price) <= 1e-12 * max(1.0, abs(price)) else ratio


def write_billing(
    sheet: Sheet, run: str, months: list[dt.date], columns: list[BillingColumn]
) -> None:
    """One row per line item per month: quantity (simulated) x named price = cost; then the
    total, and the totals per line item to the right."""
    sheet.title(
        f"Billing - {run}: one row per line item per month: quantity (simulated) x named price = cost",
        "Orange header: simulated quantities. Green: the named price (Assumptions) and the cost formula; "
        "change a price on the Assumptions sheet and they recompute. Right: totals per line item.",
    )
    sheet.header(3, 0, BILLING_HEADERS[:QTY_COL])
    sheet.header(3, QTY_COL, [BILLING_HEADERS[QTY_COL]], "header_sim")
    sheet.header(3, PRICE_NAME_COL, BILLING_HEADERS[PRICE_NAME_COL:], "header_formula")
    n = len(months)
    for c in columns:
        unit = {"GPU-hour": "GPU-hours", "hour": "hours"}.get(c.unit, c.unit)
        for i, month in enumerate(months):
            row = c.first_row + i
            sheet.write(row, 0, month, "month")
            sheet.write(row, 1, c.pool)
            sheet.write(row, 2, c.line_item)
            sheet.write(row, 3, c.category)
            sheet.write(row, 4, unit)
            sheet.write(row, QTY_COL, c.quantity[i], "num")
            sheet.write(row, PRICE_NAME_COL, c.price_name)
            sheet.formula(row, PRICE_COL, f"={c.price_name}", c.price, "derived_usd")
            sheet.formula(row, COST_COL, f"={c.qty_ref(i)}*{c.price_name}{c.fx}", c.cost[i], "usd")
    last = DATA_ROW + n * len(columns)
    sheet.write(last, 0, "Total", "total_label")
    total = sum((c.cost.sum() for c in columns), 0.0)
    letter = xl_col_to_name(COST_COL)
    sheet.formula(last, COST_COL, f"=SUM({letter}{DATA_ROW + 1}:{letter}{last})", total, "usd_bold")
    _billing_pivot(sheet, columns, n)
    # names are references, not reading: a fixed width keeps a row's price and cost on its page
    sheet.set_width(PRICE_NAME_COL, PRICE_NAME_COL, 30)
    sheet.set_width(PRICE_COL, PRICE_COL, 15)


def _billing_pivot(sheet: Sheet, columns: list[BillingColumn], n: int) -> None:
    """Totals per line item (pool, line, who it is paid for): quantity and cost, sums of its rows."""
    headers = ["Pool", "Line item", "Paid for", "Quantity", "Cost"]
    sheet.group(2, PIVOT_COL, PIVOT_COL + len(headers) - 1, "Totals per line item (sums of the rows at left)")
    sheet.header(3, PIVOT_COL, headers[:3])
    sheet.header(3, PIVOT_COL + 3, headers[3:4], "header_sim")
    sheet.header(3, PIVOT_COL + 4, headers[4:], "header_formula")
    for k, c in enumerate(columns):
        row = DATA_ROW + k
        sheet.write(row, PIVOT_COL, c.pool)
        sheet.write(row, PIVOT_COL + 1, c.line_item)
        sheet.write(row, PIVOT_COL + 2, c.category)
        last = c.first_row + n - 1
        for col, source, value, fmt in ((PIVOT_COL + 3, QTY_COL, c.quantity.sum(), "num"),
                                        (PIVOT_COL + 4, COST_COL, c.cost.sum(), "usd")):  # fmt: skip
            top, bottom = cell_ref(None, c.first_row, source), cell_ref(None, last, source)
            sheet.formula(row, col, f"=SUM({top}:{bottom})", value, fmt)
    total_row = DATA_ROW + len(columns)
    sheet.write(total_row, PIVOT_COL, "Total", "total_label")
    letter = xl_col_to_name(PIVOT_COL + 4)
    sheet.formula(total_row, PIVOT_COL + 4, f"=SUM({letter}{DATA_ROW + 1}:{letter}{total_row})",
                  sum((c.cost.sum() for c in columns), 0.0), "usd_bold")


# ---------------------------------------------------------------------- Monthly


@dataclass
class _Entity:
    kind: str
    name: str
    category: str
    cost: dict[str, np.ndarray]  # pool -> per month (simulated, at the run's prices)
    gpu_hours: dict[str, np.ndarray]

    @property
    def label(self) -> str:
        if self.kind == "idle":
            return "idle (paid, unused)" if self.name == "(unused)" else f"idle {self.name}"
        if self.kind in STAGE_ENTITY_KINDS:  # a workload's pipeline stages of one kind
            return f"{self.name} {self.kind if self.kind != 'custom' else 'stages'}"
        if self.kind == "deployment":
            return (
                f"{self.name} (deployment)"
                if not self.name.startswith("(")
                else f"inference {self.name}"
            )
        return self.name


def _entities(monthly: pd.DataFrame, months: list[str]) -> list[_Entity]:
    if monthly.empty:
        return []
    found: dict[tuple[str, str], _Entity] = {}
    for (kind, name, pool, category), rows in monthly.groupby(
        ["entity_kind", "entity", "pool", "category"], sort=False
    ):
        key = (str(kind), str(name))
        entity = found.setdefault(key, _Entity(key[0], key[1], str(category), {}, {}))
        per = rows.groupby("month")[["cost_usd", "gpu_hours"]].sum().reindex(months, fill_value=0.0)
        entity.cost[str(pool)] = per["cost_usd"].to_numpy(dtype=float)
        entity.gpu_hours[str(pool)] = per["gpu_hours"].to_numpy(dtype=float)
    order = {k: i for i, k in enumerate(ENTITY_KINDS)}
    return sorted(found.values(), key=lambda e: order.get(e.kind, len(order)))


def attribution_share(cost: np.ndarray, hours: np.ndarray, cost_total: np.ndarray, hours_total: np.ndarray,
                      members: int | np.ndarray) -> np.ndarray:
    """A member's share of its group's cost: by cost, else by
    GPU-hours where the group cost nothing, else equal among its ``members``; elementwise. The rule of
    the Monthly sheet's split and the FOCUS export's."""
    by_cost = np.abs(cost_total) > 1e-12
    by_hours = ~by_cost & (hours_total > 0)
    return np.where(by_cost, cost / np.where(by_cost, cost_total, 1.0),
                    np.where(by_hours, hours / np.where(by_hours, hours_total, 1.0), 1.0 / members))  # fmt: skip


def _shares(members: list[_Entity], pool: str, n: int) -> list[np.ndarray]:
    """Each entity's share of a pool-and-category cost per month (:func:`attribution_share`)."""
    cost = np.array([m.cost.get(pool, np.zeros(n)) for m in members])
    hours = np.array([m.gpu_hours.get(pool, np.zeros(n)) for m in members])
    return list(attribution_share(cost, hours, cost.sum(axis=0), hours.sum(axis=0), len(members)))


def write_monthly(
    sheet: Sheet,
    run: str,
    scenario: Scenario,
    monthly: pd.DataFrame,
    billing_sheet: str,
    columns: list[BillingColumn],
    months: list[str],
    fiscal_name: str | None = None,
) -> MonthlyLayout:
    """The Monthly sheet of a run (see the module docstring); returns its layout. ``fiscal_name``:
    the named cell of the fiscal year's first month (the fiscal-year column is then a formula)."""
    dates = month_dates(months)
    n = len(months)
    layout = MonthlyLayout(
        sheet.name, dates, [fiscal_year(d, scenario.fiscal_year_start_month) for d in dates]
    )
    sheet.title(
        f"Monthly spend - {run} (scenario {scenario.name})",
        "Green headers: formulas (Billing quantity x named price, then sums). Orange headers: "
        "simulated shares that split a pool's cost among workloads and jobs (by GPU-time).",
    )
    # pool-and-category columns, then everything that refers to them
    pc_keys = list(dict.fromkeys((c.pool, c.category) for c in columns))
    pools = [p.name for p in scenario.pools]
    entities = _entities(monthly, months)
    entities += _unattributed(pc_keys, entities, n)
    col = 4
    layout.col_category = {c: col + i for i, c in enumerate(CATEGORIES)}
    col += len(CATEGORIES)
    layout.col_pool = {p: col + i for i, p in enumerate(pools)}
    col += len(pools)
    col_pc = {k: col + i for i, k in enumerate(pc_keys)}
    layout.col_pool_category = col_pc
    col += len(pc_keys)
    layout.col_entity = {(e.kind, e.name): col + i for i, e in enumerate(entities)}
    col += len(entities)

    pc_values = {
        k: sum((c.cost for c in columns if (c.pool, c.category) == k), np.zeros(n)) for k in pc_keys
    }
    _pc_block(sheet, layout, billing_sheet, columns, col_pc, pc_values)
    _sum_block(
        sheet,
        layout,
        layout.col_category,
        {c: [col_pc[k] for k in pc_keys if k[1] == c] for c in CATEGORIES},
        pc_values,
        col_pc,
        "Spend by category",
    )
    _sum_block(
        sheet,
        layout,
        layout.col_pool,
        {p: [col_pc[k] for k in pc_keys if k[0] == p] for p in pools},
        pc_values,
        col_pc,
        "By pool",
    )
    _entity_block(sheet, layout, entities, col_pc, pc_values, col)
    _total_columns(sheet, layout)
    _month_column(sheet, layout, fiscal_name)
    _stacked_chart(sheet, layout, run)
    sheet.finish(HEADER_ROWS, frozen_cols=1)
    return layout


def _unattributed(pc_keys: list[tuple[str, str]], entities: list[_Entity], n: int) -> list[_Entity]:
    """A catch-all entity for any pool-and-category cost no workload/job/idle row claims."""
    claimed = {(pool, e.category) for e in entities for pool in e.cost}
    return [
        _Entity(
            "unattributed", f"{pool} {category}", category, {pool: np.ones(n)}, {pool: np.ones(n)}
        )
        for pool, category in pc_keys
        if (pool, category) not in claimed
    ]


def _pc_block(sheet, layout, billing_sheet, columns, col_pc, pc_values) -> None:
    for (pool, category), col in col_pc.items():
        sheet.header(3, col, [f"{pool} {category}"], "header_formula")
        members = [c for c in columns if (c.pool, c.category) == (pool, category)]
        for i in range(len(layout.months)):
            formula = "=" + "+".join(c.cost_ref(i, billing_sheet) for c in members)
            sheet.formula(DATA_ROW + i, col, formula, pc_values[(pool, category)][i])
        layout.values[col] = pc_values[(pool, category)]
        _column_total(sheet, layout, col)
    if col_pc:
        sheet.group(2, min(col_pc.values()), max(col_pc.values()), "By pool and category")


def _sum_block(
    sheet,
    layout,
    targets: dict[str, int],
    sources: dict[str, list[int]],
    pc_values,
    col_pc,
    group: str,
) -> None:
    """Columns that add pool-and-category columns of the same row."""
    by_col = {col: key for key, col in col_pc.items()}
    n = len(layout.months)
    for key, col in targets.items():
        sheet.header(3, col, [key], "header_formula")
        values = sum((pc_values[by_col[s]] for s in sources[key]), np.zeros(n))
        for i in range(n):
            row = DATA_ROW + i
            formula = "=" + ("+".join(cell_ref(None, row, s) for s in sources[key]) or "0")
            sheet.formula(row, col, formula, values[i])
        layout.values[col] = values
        _column_total(sheet, layout, col)
    sheet.group(2, min(targets.values()), max(targets.values()), group)


def _entity_block(
    sheet, layout, entities: list[_Entity], col_pc, pc_values, share_col: int
) -> None:
    """Workload/job/idle columns = sum over pools of share x pool-and-category cost."""
    n = len(layout.months)
    members: dict[tuple[str, str], list[_Entity]] = {}
    for e in entities:
        for pool in e.cost:
            if (pool, e.category) in col_pc:
                members.setdefault((pool, e.category), []).append(e)
    share_cols: dict[tuple[str, str, str], int] = {}
    share_values: dict[tuple[str, str, str], np.ndarray] = {}
    for (pool, category), group in members.items():
        if len(group) < 2:
            continue
        for e, share in zip(group, _shares(group, pool, n), strict=True):
            share_cols[(e.kind, e.name, pool)] = share_col + len(share_cols)
            share_values[(e.kind, e.name, pool)] = share
    for e in entities:
        col = layout.col_entity[(e.kind, e.name)]
        sheet.header(3, col, [e.label], "header_formula")
        pools = [p for p in e.cost if (p, e.category) in col_pc]
        values = np.zeros(n)
        for i in range(n):
            row, terms = DATA_ROW + i, []
            for pool in pools:
                pc = cell_ref(None, row, col_pc[(pool, e.category)])
                key = (e.kind, e.name, pool)
                terms.append(
                    f"{cell_ref(None, row, share_cols[key])}*{pc}" if key in share_cols else pc
                )
                values[i] += pc_values[(pool, e.category)][i] * (
                    share_values[key][i] if key in share_cols else 1.0
                )
            sheet.formula(row, col, "=" + ("+".join(terms) or "0"), values[i])
        layout.values[col] = values
        _column_total(sheet, layout, col)
    for kind in ENTITY_KINDS:
        cols = [layout.col_entity[(e.kind, e.name)] for e in entities if e.kind == kind]
        if cols:
            sheet.group(2, min(cols), max(cols), ENTITY_GROUPS[kind])
    for (kind, name, pool), col in share_cols.items():
        label = next(e.label for e in entities if (e.kind, e.name) == (kind, name))
        sheet.header(
            3, col, [f"{label}: share of {pool} {KIND_CATEGORY.get(kind, '')} $"], "header_sim"
        )
        category = KIND_CATEGORY.get(kind, "")
        for i in range(n):  # blank where the pool spent nothing that month (the share is moot)
            moot = abs(pc_values.get((pool, category), np.ones(n))[i]) <= 1e-12
            sheet.write(DATA_ROW + i, col, None if moot else share_values[(kind, name, pool)][i], "share")
    if share_cols:
        sheet.group(
            2, min(share_cols.values()), max(share_cols.values()), "Attribution shares (simulated)"
        )


def _total_columns(sheet: Sheet, layout: MonthlyLayout) -> None:
    n = len(layout.months)
    cats = sorted(layout.col_category.values())
    total = sum((layout.values[c] for c in cats), np.zeros(n))
    sheet.header(3, layout.col_total, ["Total"], "header_formula")
    sheet.header(3, layout.col_cumulative, ["Cumulative"], "header_formula")
    first, last = xl_col_to_name(cats[0]), xl_col_to_name(cats[-1])
    for i in range(n):
        row = DATA_ROW + i
        sheet.formula(row, layout.col_total, f"=SUM({first}{row + 1}:{last}{row + 1})", total[i])
        here = cell_ref(None, row, layout.col_total)
        prev = f"{cell_ref(None, row - 1, layout.col_cumulative)}+" if i else ""
        sheet.formula(row, layout.col_cumulative, f"={prev}{here}", total[: i + 1].sum())
    layout.values[layout.col_total] = total
    layout.values[layout.col_cumulative] = np.cumsum(total)
    _column_total(sheet, layout, layout.col_total)
    sheet.group(2, layout.col_total, layout.col_cumulative, "All spend")


def _month_column(sheet: Sheet, layout: MonthlyLayout, fiscal_name: str | None = None) -> None:
    """Months, and their fiscal year: a formula of the named start month when there is one."""
    sheet.header(3, 0, ["Month"])
    sheet.header(3, 1, ["Fiscal year"])
    for i, (month, fy) in enumerate(zip(layout.months, layout.fiscal_years, strict=True)):
        sheet.write(DATA_ROW + i, 0, month, "month")
        if fiscal_name is None:
            sheet.write(DATA_ROW + i, 1, fy)
            continue
        day = cell_ref(None, DATA_ROW + i, 0)
        sheet.formula(DATA_ROW + i, 1, f'="FY"&(YEAR({day})+IF(AND({fiscal_name}>1,MONTH({day})>={fiscal_name}),1,0))',
                      fy, "text")  # fmt: skip
    sheet.write(layout.total_row, 0, "Total", "total_label")


def _column_total(sheet: Sheet, layout: MonthlyLayout, col: int) -> None:
    name = xl_col_to_name(col)
    formula = f"=SUM({name}{DATA_ROW + 1}:{name}{layout.total_row})"
    sheet.formula(layout.total_row, col, formula, layout.values[col].sum(), "usd_bold")


def _stacked_chart(sheet: Sheet, layout: MonthlyLayout, run: str) -> None:
    """Stacked columns of monthly spend by category, below the table."""
    chart = sheet.chart({"type": "column", "subtype": "stacked"})
    first, last = DATA_ROW, layout.total_row - 1
    colours = {"inference": "#4472C4", "training": "#ED7D31", "idle": "#A5A5A5"}
    for category, col in layout.col_category.items():
        chart.add_series({
            "name": [sheet.name, 3, col],
            "categories": [sheet.name, first, 0, last, 0],
            "values": [sheet.name, first, col, last, col],
            "fill": {"color": colours[category]},
            "gap": 40,
        })  # fmt: skip
    chart.set_title({"name": f"Monthly spend by category - {run}"})
    chart.set_x_axis({"name": "Month", "date_axis": True, "num_format": "yyyy-mm", "major_unit": max(1, len(layout.months) // 12),
                      "major_unit_type": "months"})  # fmt: skip
    chart.set_y_axis(
        {"name": f"Spend ({sheet.currency.code})", "num_format": sheet.formats_num("usd"),
         "major_gridlines": {"visible": True}}
    )
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 960, "height": 420})
    sheet.ws.insert_chart(layout.total_row + 2, 0, chart)
