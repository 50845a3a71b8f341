"""CLI: ``fleetsim sweep`` (grids of plans on Dask) and ``fleetsim optimize`` (the cheapest plan
meeting every SLO)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    JsonOpt,
    MonthsOpt,
    QuietOpt,
    ScenarioArg,
    SchedulerOpt,
    WorkersOpt,
    bar,
    cluster_errors,
    execution,
    load,
    out,
    pct,
    print_json,
    usd,
    user_errors,
)

ReplicationsOpt = Annotated[
    int | None,
    typer.Option("--replications", min=1, help="Monte Carlo replications per plan (uncertain inputs drawn)."),
]
PlanOpt = Annotated[str | None, typer.Option("--plan", help="Start from this plan ('base' = as written).")]


# ---------------------------------------------------------------------- shared plumbing


def prepared(scenario_path: Path, plan: str | None, months: int | None) -> Any:
    """The scenario (a plan of it, horizon shortened), or exit 2."""
    from simulator.scenario.loading import scenario_for_plan
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
    with user_errors():
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
    from simulator.common.files import write_atomic
    from simulator.scenario.loading import dump_yaml
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
        with user_errors():
            write_atomic(out_file, text)
    if as_json:
        print_json(result.to_dict() | {"elapsed_s": elapsed, "plan_entry": entry})
    elif not quiet:
        print_optimize(result, elapsed, entry, out_file)
    if entry is None:
        raise typer.Exit(1)


def print_optimize(result: Any, elapsed_s: float, entry: dict[str, Any] | None, out_file: Path | None) -> None:
    """Winner, runners-up, cheaper plans that failed and the plan entry, as tables."""
    from simulator.scenario.loading import dump_yaml

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
