"""``fleetsim run --replications N``: Monte Carlo ranges of each plan, as tables or JSON.

The replications themselves run in the sweep layer (:func:`simulator.sweep.montecarlo.replicate`);
this module only shows them and has the files written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from simulator.cli.options import (
    bar,
    cluster_errors,
    execution,
    out,
    pct,
    print_json,
    table,
    usd,
    user_errors,
)


def run_replications(
    scenario: Any,
    plans: list[str],
    replications: int,
    *,
    as_json: bool = False,
    quiet: bool = False,
    months: int | None = None,
    out_dir: Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> None:
    """``fleetsim run --replications N``: ranges across replications, as tables or JSON.

    With ``out_dir``: replications.parquet (one row per plan x replication) and montecarlo.json.
    """
    import json

    from simulator.common.files import write_atomic
    from simulator.sweep.montecarlo import replicate
    from simulator.sweep.runner import Executor, with_months, write_parquet

    base = with_months(scenario, months)
    with bar(quiet) as progress, user_errors(), cluster_errors(scheduler), \
            Executor(execution(workers, scheduler)) as executor:  # fmt: skip
        task = progress.add_task(f"{replications} replications", total=replications * len(plans))
        frame, ranges = replicate(base, plans, replications, executor, on_done=lambda _r: progress.advance(task))
    shown = ranges[0] if len(ranges) == 1 else ranges
    if out_dir is not None:
        with user_errors():
            write_parquet(frame, out_dir / "replications.parquet")
            write_atomic(out_dir / "montecarlo.json", json.dumps(shown, indent=2, default=str) + "\n")
    if as_json:
        print_json(shown)
        return
    if not quiet:
        for summary in ranges:
            out.print(replication_table(summary))
        if out_dir is not None:
            out.print(f"wrote {out_dir}/")


def replication_table(summary: dict[str, Any]) -> Any:
    """One plan's ranges: P10/P50/P90 across replications, mean and the 90% CI of the mean."""
    def cells(label: str, s: dict[str, Any], fmt: Any) -> list[str]:
        ci = "-" if s["ci90_low"] is None else f"{fmt(s['ci90_low'])} - {fmt(s['ci90_high'])}"
        return [label, fmt(s["p10"]), fmt(s["p50"]), fmt(s["p90"]), fmt(s["mean"]), ci]

    rows = [cells("lifetime spend", summary["total_cost_usd"], usd)]
    for key, label in (("inference_cost_usd", "  inference"), ("training_cost_usd", "  training"),
                       ("idle_cost_usd", "  idle (paid, unused)")):  # fmt: skip
        rows.append(cells(label, summary[key], usd))
    rows += [cells(f"  {fy}", s, usd) for fy, s in summary["cost_by_fiscal_year_usd"].items()]
    for name, w in summary["workloads"].items():
        rows.append(cells(f"{name}: TTFT p95 ms", w["ttft_p95_ms"], _ms))
        rows.append(cells(f"{name}: TPOT p95 ms", w["tpot_p95_ms"], _ms))
        rows.append(cells(f"{name}: SLO attainment", w["slo_attainment"], pct))
        rows.append(cells(f"{name}: unserved requests", w["unserved_requests"], _ms))
        met = w["slo_met_share"]
        rows.append([f"{name}: share of replications meeting the SLO", "", "", "", pct(met), ""])
    n, failed = summary["replications"], summary["failed"]
    inputs = ", ".join(summary.get("uncertain_inputs", [])) or "none (training luck only)"
    title = (f"{summary.get('scenario', '')} / plan {summary['plan']}: {n} replications"
             + (f" ({failed} failed)" if failed else "") + f"; uncertain inputs: {inputs}")  # fmt: skip
    return table(title, ["figure", "P10", "P50", "P90", "mean", "90% CI of the mean"], rows)


def _ms(value: Any) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.0f}"
