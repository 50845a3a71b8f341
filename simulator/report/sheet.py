"""A thin layer over an XlsxWriter worksheet: named formats, blanks for missing numbers,
formulas written with their cached results, column widths fitted to what was written, and the
page setup every sheet of the finance workbook shares.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from xlsxwriter.utility import quote_sheetname, xl_rowcol_to_cell
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

#: Format name -> XlsxWriter format properties.
FORMATS: dict[str, dict[str, Any]] = {
    "title": {"bold": True, "font_size": 14},
    "note": {"italic": True, "font_color": "#555555"},
    "group": {"bold": True, "bg_color": "#D9E1F2", "border": 1, "align": "center"},
    "header": {
        "bold": True,
        "bg_color": "#EDEDED",
        "border": 1,
        "text_wrap": True,
        "valign": "top",
    },
    "header_sim": {
        "bold": True,
        "bg_color": "#FCE4D6",
        "border": 1,
        "text_wrap": True,
        "valign": "top",
    },
    "header_formula": {
        "bold": True,
        "bg_color": "#E2EFDA",
        "border": 1,
        "text_wrap": True,
        "valign": "top",
    },
    "text": {},
    "wrap": {"text_wrap": True, "valign": "top"},
    "bold": {"bold": True},
    # money in the report's currency (whole units, negatives in parentheses); see money_formats
    "usd": {"num_format": "$#,##0;($#,##0)"},
    "usd_bold": {"num_format": "$#,##0;($#,##0)", "bold": True, "top": 1},
    "usd_per_m": {"num_format": "$#,##0.000;($#,##0.000)"},
    "usd_price": {"num_format": "$#,##0.00####"},  # a US-dollar price as the scenario gives it
    "pct": {"num_format": "0.0%"},
    "pp": {"num_format": '+0.0" pp";-0.0" pp";0.0" pp"'},  # percentage points (a difference of shares)
    "share": {"num_format": "0.00%"},
    "tokens_m": {"num_format": '#,##0.0,," M"'},  # millions (each trailing comma divides by 1,000)
    "tokens_b": {"num_format": '#,##0.00,,," B"'},  # billions
    "int": {"num_format": "#,##0"},
    "num": {"num_format": "#,##0.0"},
    "num_bold": {"num_format": "#,##0.0", "bold": True, "top": 1},
    "num3": {"num_format": "#,##0.000"},
    "general": {"num_format": "General"},
    "month": {"num_format": "yyyy-mm", "align": "left"},
    "date": {"num_format": "yyyy-mm-dd", "align": "left"},
    "datetime": {"num_format": "yyyy-mm-dd hh:mm", "align": "left"},
    # the one input style: blue on yellow, unlocked (every sheet is protected, without a password)
    "input_usd": {
        "num_format": "$#,##0.00####",
        "font_color": "#0000FF",
        "bg_color": "#FFF2CC",
        "border": 1,
        "locked": False,
    },
    "input_num": {
        "num_format": "#,##0.00####",
        "font_color": "#0000FF",
        "bg_color": "#FFF2CC",
        "border": 1,
        "locked": False,
    },
    "input_pct": {
        "num_format": "0.00%",
        "font_color": "#0000FF",
        "bg_color": "#FFF2CC",
        "border": 1,
        "locked": False,
    },
    "derived_usd": {"num_format": "$#,##0.00####", "border": 1},
    "total_label": {"bold": True, "top": 1},
    "diff": {"italic": True, "font_color": "#9C0006"},  # a simulated input that differs between runs
    "bad": {"bg_color": "#F8CBAD"},
}


#: Formats of money in the report's currency: their values are US dollars times its rate.
MONEY_FORMATS = ("usd", "usd_bold", "usd_per_m")


@dataclass(frozen=True)
class ReportCurrency:
    """The currency money is shown in: code, symbol, units per US dollar (1 for USD)."""

    code: str = "USD"
    sign: str = "$"
    usd_rate: float = 1.0


def money_formats(sign: str) -> dict[str, dict[str, Any]]:
    """The money formats with the currency's symbol (quoted unless it is '$')."""
    symbol = sign if sign == "$" else '"' + sign.replace('"', "") + '"'
    return {name: {**FORMATS[name], "num_format": FORMATS[name]["num_format"].replace("$", symbol)}
            for name in MONEY_FORMATS}  # fmt: skip


def add_formats(workbook: Workbook, currency: ReportCurrency | None = None) -> dict[str, Any]:
    """Create the shared formats on ``workbook`` (money with ``currency``'s symbol)."""
    props = FORMATS | money_formats((currency or ReportCurrency()).sign)
    return {name: workbook.add_format(p) for name, p in props.items()}


def missing(value: Any) -> bool:
    """True for None, NaN, NaT and pandas NA (written as blank cells)."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    if isinstance(value, float | np.floating):
        return not math.isfinite(float(value))
    return False


def cell_ref(sheet: str | None, row: int, col: int, absolute: bool = False) -> str:
    """A1 reference, sheet-qualified when ``sheet`` is given."""
    ref = xl_rowcol_to_cell(row, col, row_abs=absolute, col_abs=absolute)
    return f"{quote_sheetname(sheet)}!{ref}" if sheet else ref


def _display_width(value: Any, fmt: str) -> int:
    """Characters a value takes in a format (rough, for column widths)."""
    if isinstance(value, bool):
        return 5
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        if fmt.startswith(("usd", "input_usd", "derived_usd")):
            return len(f"${v:,.2f}") + (4 if fmt.endswith("price") or "input" in fmt else 0)
        if fmt in ("pct",):
            return 7
        if fmt in ("share", "num3"):
            return len(f"{v:,.3f}")
        return len(f"{v:,.1f}")
    if isinstance(value, dt.datetime | pd.Timestamp):
        return 16 if fmt == "datetime" else 10
    if isinstance(value, dt.date):
        return 10
    return max((len(line) for line in str(value).splitlines()), default=0)


class Sheet:
    """One worksheet with its formats; tracks column widths as cells are written."""

    def __init__(self, workbook: Workbook, name: str, formats: dict[str, Any]) -> None:
        self.name = name
        self.workbook = workbook
        self.ws: Worksheet = workbook.add_worksheet(name)
        self.formats = formats
        self.widths: dict[int, int] = {}
        self.fixed: dict[int, float] = {}
        self._headers: list[tuple[int, int, str]] = []
        self._groups: list[tuple[int, int, str]] = []
        self.print_options: PrintOptions = getattr(workbook, "print_options", PrintOptions())
        self.currency: ReportCurrency = getattr(workbook, "report_currency", ReportCurrency())

    def formats_num(self, fmt: str) -> str:
        """The number format string of a named money format in the report's currency."""
        return money_formats(self.currency.sign)[fmt]["num_format"]

    def _money(self, value: Any, fmt: str) -> Any:
        """A US-dollar figure in the report's currency (other values unchanged)."""
        if fmt in MONEY_FORMATS and self.currency.usd_rate != 1.0 and isinstance(value, int | float | np.number) \
                and not isinstance(value, bool | np.bool_):
            return float(value) * self.currency.usd_rate
        return value

    def set_width(self, first: int, last: int, width: float) -> None:
        """Fix the width of columns ``first``..``last`` (overrides fitting)."""
        for col in range(first, last + 1):
            self.fixed[col] = width

    def _track(self, col: int, width: int) -> None:
        self.widths[col] = max(self.widths.get(col, 0), width)

    def write(self, row: int, col: int, value: Any, fmt: str = "text", fit: bool = True) -> None:
        """Write a number, text, date, bool or blank (None/NaN) with a named format (money
        formats: a US-dollar value, shown in the report's currency)."""
        f = self.formats[fmt]
        value = self._money(value, fmt)
        if missing(value):
            self.ws.write_blank(row, col, None, f)
            return
        if fit:
            self._track(col, _display_width(value, fmt))
        if isinstance(value, bool | np.bool_):
            self.ws.write_string(row, col, "yes" if value else "no", f)
        elif isinstance(value, int | float | np.integer | np.floating):
            self.ws.write_number(row, col, float(value), f)
        elif isinstance(value, pd.Timestamp):
            self.ws.write_datetime(row, col, value.to_pydatetime(warn=False), f)
        elif isinstance(value, dt.datetime | dt.date):
            self.ws.write_datetime(row, col, value, f)
        else:
            self.ws.write_string(row, col, str(value), f)

    def formula(self, row: int, col: int, formula: str, value: Any, fmt: str = "usd") -> None:
        """A formula with its cached result (so readers without recalculation see numbers; money
        formats: the US-dollar result, cached in the report's currency)."""
        value = self._money(value, fmt)
        cached: Any = 0 if missing(value) else value
        if isinstance(cached, bool | np.bool_):
            cached = "TRUE" if cached else "FALSE"
        elif isinstance(cached, np.integer | np.floating):
            cached = float(cached)
        self.ws.write_formula(row, col, formula, self.formats[fmt], cached)
        if not missing(value):
            self._track(col, _display_width(value, fmt))

    def header(self, row: int, col: int, labels: list[str], fmt: str = "header") -> None:
        """Column headers (wrapped; widths fitted to the longest word, at most 22 characters)."""
        for i, label in enumerate(labels):
            self.ws.write_string(row, col + i, label, self.formats[fmt])
            self._track(col + i, min(max((len(w) for w in label.split()), default=4) + 1, 22))
            self._headers.append((row, col + i, label))

    def group(self, row: int, first: int, last: int, label: str) -> None:
        """A label spanning columns ``first``..``last`` (merged when more than one)."""
        if last > first:
            self.ws.merge_range(row, first, row, last, label, self.formats["group"])
        else:
            self.ws.write_string(row, first, label, self.formats["group"])
        self._groups.append((first, last, label))

    def chart(self, options: dict[str, Any]) -> Any:
        """A new chart of this sheet's workbook (insert it with ``self.ws.insert_chart``)."""
        return self.workbook.add_chart(options)

    def title(self, text: str, note: str | None = None) -> None:
        """Title in A1 and an explanatory note in A2 (neither widens column A)."""
        self.ws.write_string(0, 0, text, self.formats["title"])
        if note:
            self.ws.write_string(1, 0, note, self.formats["note"])

    def finish(
        self,
        header_rows: int,
        frozen_cols: int = 0,
        min_width: int = 8,
        max_width: int = 48,
    ) -> None:
        """Column widths, header row heights, frozen header pane and landscape page setup."""
        widths = {col: min(max(w + 2, min_width), max_width) for col, w in self.widths.items()}
        widths |= self.fixed
        for first, last, label in self._groups:
            _widen_for(widths, first, last, len(label) + 2, min_width)
        for col, width in sorted(widths.items()):
            self.ws.set_column(col, col, width)
        lines: dict[int, int] = {}
        for row, col, label in self._headers:
            needed = wrapped_lines(label, widths.get(col, min_width) - 1)
            lines[row] = max(lines.get(row, 1), needed)
        for row, count in lines.items():
            if count > 1:
                self.ws.set_row(row, 15 * count)
        if header_rows or frozen_cols:
            self.ws.freeze_panes(header_rows, frozen_cols)
        protect(self.ws)
        page_setup(self.ws, header_rows, sum(widths.values()), self.print_options, frozen_cols)


def protect(ws: Worksheet) -> None:
    """Protect the sheet without a password: only the input cells (unlocked) take edits; cells
    can still be selected, columns resized, and tables sorted and filtered."""
    ws.protect("", {"format_columns": True, "format_rows": True, "sort": True, "autofilter": True,
                    "select_locked_cells": True, "select_unlocked_cells": True})  # fmt: skip


def _widen_for(
    widths: dict[int, float], first: int, last: int, needed: int, min_width: int
) -> None:
    """Widen columns first..last evenly until together they are ``needed`` characters wide."""
    cols = range(first, last + 1)
    have = sum(widths.get(c, min_width) for c in cols)
    if have >= needed:
        return
    extra = (needed - have) / len(cols)
    for c in cols:
        widths[c] = widths.get(c, min_width) + extra


def wrapped_lines(text: str, width: float) -> int:
    """Lines ``text`` takes when word-wrapped at ``width`` characters."""
    count, used = 1, 0
    for word in text.split():
        if used and used + 1 + len(word) > width:
            count, used = count + 1, len(word)
        else:
            used += (1 if used else 0) + len(word)
    return count


@dataclass(frozen=True)
class PrintOptions:
    """How sheets print: the paper, and the footer's left text (the scenarios' names)."""

    paper: str = "a4"  #: "a4" or "letter"
    footer: str = "fleetsim report"


#: xlsxwriter's paper codes.
PAPER_CODES = {"a4": 9, "letter": 1}
#: Characters of column width that print legibly across one landscape page (about 9-pt text).
CHARACTERS_PER_PAGE = 170


def page_setup(ws: Worksheet, header_rows: int, width_chars: float = 0.0, options: PrintOptions | None = None,
               frozen_cols: int = 0) -> None:  # fmt: skip
    """Landscape on the chosen paper; as many pages wide as the columns need to stay legible
    (one for most sheets; a wide Billing spreads over several, its first columns repeated);
    header rows repeated on every page; a footer with the scenarios, the sheet and 'page N of M'."""
    options = options or PrintOptions()
    ws.set_landscape()
    pages_wide = max(1, math.ceil(width_chars / CHARACTERS_PER_PAGE))
    ws.fit_to_pages(pages_wide, 0)
    ws.set_paper(PAPER_CODES[options.paper])
    footer = options.footer.replace("&", "&&")
    ws.set_footer(f"&L{footer}&C&A&RPage &P of &N")
    if header_rows:
        ws.repeat_rows(0, header_rows - 1)
    if pages_wide > 1 and frozen_cols:
        ws.repeat_columns(0, frozen_cols - 1)
