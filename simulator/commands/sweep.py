"""CLI: ``fleetsim sweep`` (grids of plans on Dask), ``fleetsim optimize`` (the cheapest plan meeting
every SLO), and the Monte Carlo output of ``fleetsim run --replications N``."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from simulator.cli import JsonOpt, ScenarioArg, app, err, load, out, print_json, table, user_errors
from simulator.commands.run import MonthsOpt, QuietOpt, pct, usd

WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Local Dask workers (default: one per core; 1: run in this process)."),
]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", help="Address of an existing Dask scheduler (tcp://host:8786).")
]
ReplicationsOpt = Annotated[
    int | None,
    typer.Option("--replications", min=1, help="Monte Carlo replications per plan (uncertain inputs drawn)."),
]
PlanOpt = Annotated[str | None, typer.Option("--plan", help="Start from this plan ('base' = as written).")]


# ---------------------------------------------------------------------- shared plumbing


def bar(quiet: bool) -> Progress:
    """A progress bar on stderr; silent with --quiet or when stderr is not a terminal."""
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err, disable=quiet or not sys.stderr.isatty(), transient=True,
    )  # fmt: skip


def execution(workers: int | None, scheduler: str | None) -> Any:
    """The Execution of --workers / --scheduler (exit 2 when both are given)."""
    from simulator.sweep.runner import Execution

    if workers is not None and scheduler is not None:
        err.print("give --workers or --scheduler, not both", markup=False)
        raise typer.Exit(2)
    return Execution(workers=workers, scheduler=scheduler)


@contextmanager
def cluster_errors(scheduler: str | None) -> Iterator[None]:
    """A scheduler that cannot be reached is exit 1 with one line, not a traceback."""
    try:
        yield
    except (OSError, TimeoutError) as error:
        where = f"the Dask scheduler at {scheduler}" if scheduler else "the local Dask cluster"
        err.print(f"cannot use {where}: {error}", markup=False)
        raise typer.Exit(1) from None


def prepared(scenario_path: Path, plan: str | None, months: int | None) -> Any:
    """The scenario (a plan of it, horizon shortened), or exit 2."""
    from simulator.loading import scenario_for_plan
    from simulator.sweep.runner import with_months

    loaded = load(scenario_path)
    with user_errors():
        return with_months(scenario_for_plan(loaded, plan), months)


def text_table(title: str, columns: list[str], rows: list[list[Any]], numeric: tuple[int, ...] = ()) -> Any:
    """A table with text left-aligned and the ``numeric`` columns right-aligned."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        t.add_column(column, justify="right" if i in numeric else "left")
    for row in rows:
        t.add_row(*[str(c) for c in row])
    return t


def _ms(value: Any) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.0f}"


# ---------------------------------------------------------------------- sweep


@app.command("sweep")
def sweep_command(
    scenario: ScenarioArg,
    grid: Annotated[Path, typer.Option("--grid", help="Grid YAML: dotted paths -> lists of values.")],
    output: Annotated[Path, typer.Option("--out", "-o", help="Parquet file of the rows (one per plan x replication).")],
    report: Annotated[Path | None, typer.Option("--report", help="Also write an xlsx report here.")] = None,
    replications: ReplicationsOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    plan: PlanOpt = None,
    months: MonthsOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run every combination of a grid's overrides (x replications) on Dask; write the rows.

    Example: fleetsim sweep scenarios/chat-assistant.yaml --grid grid.yaml -o sweep.parquet
    """
    from simulator.sweep.grid import expand, load_grid
    from simulator.sweep.runner import Executor, sweep, write_parquet
    from simulator.sweep.workbook import write_sweep_workbook

    base = prepared(scenario, plan, months)
    with user_errors():
        parsed = load_grid(grid, base)
    plans = expand(parsed)
    n = replications or parsed.replications
    runs = len(plans) * (n or 1)
    started = time.perf_counter()
    with bar(quiet) as progress, cluster_errors(scheduler), Executor(execution(workers, scheduler)) as executor:
        task = progress.add_task(f"sweep: {len(plans)} plans", total=runs)
        frame = sweep(base, plans, n, executor, on_done=lambda _row: progress.advance(task))
    write_parquet(frame, output)
    if report is not None:
        write_sweep_workbook(frame, report)
    elapsed = time.perf_counter() - started
    if as_json:
        print_json(sweep_json(frame, output, report, elapsed))
    elif not quiet:
        for t in sweep_tables(frame, n):
            out.print(t)
        written = f"{output}" + (f", {report}" if report is not None else "")
        out.print(f"{len(frame)} runs ({int((frame['status'] == 'ok').sum())} ok) in {elapsed:.1f} s; wrote {written}")


def sweep_json(frame: Any, output: Path, report: Path | None, elapsed_s: float) -> dict[str, Any]:
    """Counts, the Pareto front and the errors of a sweep."""
    from simulator.sweep.montecarlo import summaries

    front = frame[frame["pareto"]].drop_duplicates("plan_id")
    replicated = len(frame) and frame.groupby("plan_id").size().max() > 1
    return {
        "plans": int(frame["plan_id"].nunique()),
        "runs": len(frame),
        "ok": int((frame["status"] == "ok").sum()),
        "errors": int((frame["status"] != "ok").sum()),
        "elapsed_s": elapsed_s,
        "output": str(output),
        "report": str(report) if report is not None else None,
        "pareto": [{"plan_id": int(r["plan_id"]), "plan": r["plan"], "total_cost_usd": r["total_cost_usd"],
                    "slo_attainment_min": r["slo_attainment_min"], "meets_slo": bool(r["meets_slo"])}
                   for _, r in front.sort_values("total_cost_usd").iterrows()],
        "failed": [{"plan_id": int(r["plan_id"]), "plan": r["plan"], "replication": int(r["replication"]),
                    "error": r["error"]} for _, r in frame[frame["status"] != "ok"].iterrows()],
        "ranges": summaries(frame) if replicated else None,
    }


def sweep_tables(frame: Any, replications: int | None) -> list[Any]:
    """The Pareto front (and failures) as rich tables."""
    ok = frame[frame["status"] == "ok"]
    front = ok[ok["pareto"]].groupby(["plan_id", "plan"], sort=False)
    ranked = sorted(front, key=lambda item: item[1]["total_cost_usd"].median())
    rows = []
    for (_, label), g in ranked:
        cost = g["total_cost_usd"]
        spread = f" ({usd(cost.quantile(0.1))}-{usd(cost.quantile(0.9))})" if replications else ""
        rows.append([label, usd(cost.median()) + spread, pct(g["slo_attainment_min"].mean()),
                     "yes" if g["meets_slo"].astype(bool).all() else "NO"])  # fmt: skip
    cost_label = "lifetime spend P50 (P10-P90)" if replications else "lifetime spend"
    tables = [text_table("Pareto front: lifetime spend vs SLO attainment (worst workload)",
                         ["plan", cost_label, "SLO attainment", "meets every SLO"], rows, (1, 2))]  # fmt: skip
    failed = frame[frame["status"] != "ok"].drop_duplicates("plan_id")
    if len(failed):
        rows = [[r["plan"], r["error"]] for _, r in failed.iterrows()]
        tables.append(text_table("Failed plans", ["plan", "error"], rows))
    return tables


# ---------------------------------------------------------------------- optimize


@app.command("optimize")
def optimize_command(
    scenario: ScenarioArg,
    search: Annotated[
        Path | None, typer.Option("--search", help="Grid YAML of plans to search (default: a space derived from the scenario).")
    ] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the winning plans: entry (YAML) here.")] = None,
    name: Annotated[str, typer.Option("--name", help="Name of the plan entry written.")] = "optimized",
    gpus: Annotated[
        str | None, typer.Option("--gpus", help="Comma-separated catalog GPUs to try (default: h100-sxm,h200,b200).")
    ] = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    months: MonthsOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Find the cheapest plan that meets every workload's SLO with no unserved requests.

    Searches GPU type, tensor parallelism, dtype and how capacity is bought (or the plans of
    --search). Prints the winner, the runners-up and why cheaper plans failed, and the winner
    as a plans: entry to paste into the scenario. Exit 1 when no plan meets every SLO.

    Example: fleetsim optimize scenarios/chat-assistant.yaml --out plan.yaml
    """
    from simulator.loading import dump_yaml
    from simulator.report.atomic import write_text_atomic
    from simulator.sweep.grid import expand, load_grid
    from simulator.sweep.optimize import optimize
    from simulator.sweep.runner import Executor

    base = prepared(scenario, None, months)
    plans = None
    if search is not None:
        with user_errors():
            plans = expand(load_grid(search, base))
    gpu_list = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    started = time.perf_counter()
    with bar(quiet) as progress, cluster_errors(scheduler), Executor(execution(workers, scheduler)) as executor:
        current: dict[str, Any] = {}

        def on_stage(description: str, total: int) -> None:
            if "task" in current:
                progress.remove_task(current["task"])
            current["task"] = progress.add_task(f"optimize: {description}", total=total)

        result = optimize(base, executor, plans, gpu_list, on_stage=on_stage,
                          on_done=lambda _row: progress.advance(current["task"]))  # fmt: skip
    elapsed = time.perf_counter() - started
    entry = result.plan_entry(name)
    text = dump_yaml({"plans": [entry]}) if entry is not None else None
    if out_file is not None and text is not None:
        write_text_atomic(out_file, text)
    if as_json:
        print_json(result.to_dict() | {"elapsed_s": elapsed, "plan_entry": entry})
    elif not quiet:
        print_optimize(result, elapsed, entry, out_file)
    if entry is None:
        raise typer.Exit(1)


def print_optimize(result: Any, elapsed_s: float, entry: dict[str, Any] | None, out_file: Path | None) -> None:
    """Winner, runners-up, cheaper plans that failed and the plan entry, as tables."""
    from simulator.loading import dump_yaml

    data = result.to_dict()
    out.print(f"{data['scenario']}: searched {data['plans_evaluated']} plans"
              + (f" and {data['curves']} latency curves" if data["curves"] else "") + f" in {elapsed_s:.0f} s")  # fmt: skip
    winner, base = data["winner"], data["as_written"]
    rows = []
    if winner is not None:
        rows.append(["WINNER", winner["plan"], usd(winner["total_cost_usd"]), pct(winner["slo_attainment_min"]), "yes"])
    for r in data["runners_up"]:
        delta = r["total_cost_usd"] - winner["total_cost_usd"] if winner else 0.0
        rows.append(["runner-up", r["plan"], f"{usd(r['total_cost_usd'])} (+{usd(delta)})",
                     pct(r["slo_attainment_min"]), "yes"])  # fmt: skip
    if base is not None:
        rows.append(["as written", base["plan"], usd(base["total_cost_usd"]), pct(base["slo_attainment_min"]),
                     "yes" if base["meets_slo"] else "NO"])  # fmt: skip
    columns = ["", "plan", "lifetime spend", "SLO attainment", "meets SLO"]
    out.print(text_table("Cheapest plans meeting every SLO", columns, rows, (2, 3)))
    failures = [[f["plan"], usd(f["total_cost_usd"]), "; ".join(f["reasons"])] for f in data["cheaper_failures"]]
    if failures:
        more = data["cheaper_failures_total"] - len(failures)
        title = "Cheaper plans that fail" + (f" (cheapest {len(failures)}; {more} more)" if more > 0 else "")
        out.print(text_table(title, ["plan", "lifetime spend", "why"], failures, (1,)))
    invalid = data["invalid_plans"] + [
        {"plan": f"{d['pool']}={d['gpu']} {d['option'] or ''}".strip(), "error": d["reason"]} for d in data["dropped_options"]
    ]
    if invalid:
        shown = invalid[:8]
        title = f"Options that could not run ({len(invalid)}" + (f", first {len(shown)})" if len(invalid) > len(shown) else ")")
        out.print(text_table(title, ["option", "why"], [[i["plan"], i["error"]] for i in shown]))
    if entry is None:
        out.print("no plan meets every SLO with no unserved requests")
        return
    if not entry["set"]:
        out.print("the scenario as written is the cheapest plan found that meets every SLO")
    else:
        out.print(f"Paste into the scenario's plans: (then: fleetsim run SCENARIO --plan {entry['name']}):")
        out.print(dump_yaml({"plans": [entry]}).rstrip(), markup=False)
    if out_file is not None:
        out.print(f"wrote {out_file}")


# ---------------------------------------------------------------------- run --replications


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

    from simulator.report.atomic import write_text_atomic
    from simulator.sweep.montecarlo import replicate
    from simulator.sweep.runner import Executor, with_months, write_parquet

    base = with_months(scenario, months)
    with bar(quiet) as progress, user_errors(), cluster_errors(scheduler), \
            Executor(execution(workers, scheduler)) as executor:  # fmt: skip
        task = progress.add_task(f"{replications} replications", total=replications * len(plans))
        frame, ranges = replicate(base, plans, replications, executor, on_done=lambda _r: progress.advance(task))
    shown = ranges[0] if len(ranges) == 1 else ranges
    if out_dir is not None:
        write_parquet(frame, out_dir / "replications.parquet")
        write_text_atomic(out_dir / "montecarlo.json", json.dumps(shown, indent=2, default=str) + "\n")
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
