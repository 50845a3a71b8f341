"""Write a run's tables into a directory: summary.json, every table as CSV and/or Parquet, and
its charges in the FinOps FOCUS 1.2 layout (``focus.csv`` / ``focus.parquet``, see
:mod:`simulator.report.focus`).

In the files, ``month`` is a date (the month's first day); CSV money columns (``*usd*``) are
rounded to the cent and other decimals to 6 places (the Parquet files keep full precision).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args

import pandas as pd

from simulator.common.files import finite, write_atomic
from simulator.report.focus import focus_csv, focus_table
from simulator.results.result import Result

#: The tables of a run, by file stem.
TABLES = ("monthly", "hourly", "latency", "jobs", "deployments_hourly", "billing", "cashflow")
FileFormat = Literal["csv", "parquet", "both"]
FILE_FORMATS: tuple[str, ...] = get_args(FileFormat)


def write_result_files(
    result: Result, out_dir: str | Path, within: str | Path | None = None, formats: FileFormat = "both"
) -> list[Path]:
    """Write summary.json and each table of :data:`TABLES` (as ``<table>.csv`` and/or
    ``<table>.parquet``) into ``out_dir``, never outside ``within`` (default: ``out_dir``)."""
    out = Path(out_dir)
    root = out if within is None else Path(within)
    written = []

    def write(name: str, content: Any) -> None:
        path = out / name
        write_atomic(path, content, within=root)
        written.append(path)

    write("summary.json", json.dumps(finite(result.summary), indent=2, default=str, allow_nan=False) + "\n")
    tables = [(name, file_table(getattr(result, name)), csv_text) for name in TABLES]
    if result.scenario is not None:
        tables.append(("focus", focus_table(result), focus_csv))
    for name, table, to_csv in tables:
        if formats in ("csv", "both"):
            write(f"{name}.csv", to_csv(table))
        if formats in ("parquet", "both"):
            write(f"{name}.parquet", lambda path, t=table: t.to_parquet(path, index=False))
    return written


def file_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as written: ``month`` ('2027-01') as the month's first day (a date)."""
    if "month" in frame.columns and pd.api.types.is_string_dtype(frame["month"]):
        frame = frame.assign(month=pd.to_datetime(frame["month"] + "-01").dt.date)
    return frame


def csv_text(frame: pd.DataFrame) -> str:
    """CSV with money to the cent and other decimals to 6 places (no 13204.799999999886)."""
    rounded = frame.copy()
    for column in rounded.columns:
        if pd.api.types.is_float_dtype(rounded[column]):
            rounded[column] = rounded[column].round(2 if "usd" in column else 6)
    return rounded.to_csv(index=False)
