"""The sweep's xlsx report: every row, the Pareto front and, with replications, the ranges.

Sheets: **Sweep** (one row per plan x replication, as in the Parquet file), **Pareto** (the front,
cheapest first), **Ranges** (with replications: per plan, P10/P50/P90 and the 90% CI of the mean
of lifetime spend, spend per fiscal year and each workload's p95 TTFT/TPOT). Written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from simulator.common.files import write_atomic
from simulator.sweep.montecarlo import summaries


def ranges_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per plan x figure with its spread across replications."""
    rows: list[dict[str, Any]] = []
    for summary in summaries(frame):
        figures: list[tuple[str, dict[str, Any]]] = [("lifetime spend $", summary["total_cost_usd"])]
        figures += [(f"spend {fy} $", s) for fy, s in summary["cost_by_fiscal_year_usd"].items()]
        for name, w in summary["workloads"].items():
            figures += [(f"{name}: TTFT p95 ms", w["ttft_p95_ms"]), (f"{name}: TPOT p95 ms", w["tpot_p95_ms"]),
                        (f"{name}: SLO attainment", w["slo_attainment"])]  # fmt: skip
        for label, s in figures:
            rows.append({"plan": summary["plan"], "figure": label, "replications": s["n"],
                         "p10": s["p10"], "p50": s["p50"], "p90": s["p90"], "mean": s["mean"],
                         "ci90_low": s["ci90_low"], "ci90_high": s["ci90_high"]})  # fmt: skip
    return pd.DataFrame(rows)


def write_sweep_workbook(frame: pd.DataFrame, target: str | Path) -> Path:
    """Write the sweep report to ``target`` (temp file + rename: never a partial file)."""
    front = frame[frame["pareto"]].sort_values("total_cost_usd", kind="stable")
    replicated = frame.groupby("plan_id").size().max() > 1 if len(frame) else False
    sheets = {"Sweep": frame, "Pareto": front}
    if replicated:
        sheets["Ranges"] = ranges_frame(frame)

    def write(tmp: Path) -> None:
        with pd.ExcelWriter(tmp, engine="xlsxwriter") as writer:
            for name, data in sheets.items():
                data.to_excel(writer, sheet_name=name, index=False, freeze_panes=(1, 0))
                sheet = writer.sheets[name]
                sheet.autofilter(0, 0, max(len(data), 1), max(len(data.columns) - 1, 0))
                sheet.autofit()

    write_atomic(target, write)
    return Path(target)
