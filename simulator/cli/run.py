"""CLI: ``fleetsim run`` — the lifetime projection of a scenario (each plan)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    JsonOpt,
    MonthsOpt,
    QuietOpt,
    ScenarioArg,
    build_curves,
    err,
    load,
    out,
    pct,
    print_json,
    progress,
    table,
    usd,
    user_errors,
)


def run_plans(scenario: Any, plans: list[str], quiet: bool, months: int | None = None) -> list[Any]:
    """Run each plan with a progress line; input errors exit 2. ``months`` shortens the horizon."""
    from simulator.results.runner import run

    if months is not None:
        horizon = scenario.horizon.model_copy(update={"months": months})
        scenario = scenario.model_copy(update={"horizon": horizon})
    results = []
    with user_errors():
        from simulator.scenario.loading import scenario_for_plan

        build_curves([scenario_for_plan(scenario, plan) for plan in plans], quiet)
    with progress(quiet) as bar, user_errors():
        task = bar.add_task("running", total=len(plans))
        for plan in plans:
            bar.update(task, description=f"plan {plan}: simulating")
            results.append(run(scenario, plan=plan))
            bar.advance(task)
    return results


def summary_tables(summary: dict[str, Any]) -> list[Any]:
    """Compact rich tables of one summary."""
    head = table(
        f"{summary['scenario']} / plan {summary['plan']}: {summary['horizon_months']} months "
        f"from {summary['horizon_start']}",
        ["figure", "value"],
        [
            ["total cost", usd(summary["total_cost_usd"])],
            ["  inference", usd(summary["inference_cost_usd"])],
            ["  training", usd(summary["training_cost_usd"])],
            ["  idle (paid, unused)", usd(summary["idle_cost_usd"])],
            ["GPU-hours billed", f"{summary['gpu_hours_billed']:,.0f}"],
            ["GPU-hours busy", f"{summary['gpu_hours_busy']:,.0f}"],
            ["energy", f"{summary['energy_kwh']:,.0f} kWh"],
        ]
        + [[f"  {fy}", usd(v)] for fy, v in summary["cost_by_fiscal_year_usd"].items()]
        + _cash_rows(summary.get("cash_flow")),
    )
    workloads = table(
        "Workloads",
        ["workload", "requests", "unserved", "TTFT p95 ms", "TPOT p95 ms", "SLO attained",
         "cost", "$/1M marginal", "$/1M all-in", "API baseline"],
        [
            [name, f"{w['requests']:,.0f}", f"{w['unserved_requests']:,.0f}",
             _ms(w["ttft_p95_ms"]), _ms(w["tpot_p95_ms"]),
             f"{pct(w['slo_attainment'])} ({'met' if w['slo_met'] else 'MISSED'})",
             usd(w["cost_usd"]), _money(w["cost_per_million_tokens_usd"]),
             _money(w.get("all_in_cost_per_million_tokens_usd")), usd(w["api_baseline_cost_usd"])]
            for name, w in summary["workloads"].items()
        ],
    )  # fmt: skip
    jobs = table(
        "Training jobs",
        ["job", "runs", "first start", "last finish", "GPU-hours", "lost", "failures", "cost", "deadline"],
        [
            [name, j["runs"], (j["first_start"] or "-")[:10], (j["last_finish"] or "not finished")[:16],
             f"{j['gpu_hours']:,.0f}", f"{j['gpu_hours_lost']:,.0f}", j["failures"], usd(j["cost_usd"]),
             "MISSED" if j["deadline_missed"] else (j["deadline"] or "-")]
            for name, j in summary["training_jobs"].items()
        ],
    )  # fmt: skip
    pools = table(
        "Pools",
        ["pool", "GPU", "pricing", "peak GPUs", "utilisation", "cost"],
        [[name, p["gpu"], p["pricing"], f"{p['peak_gpus']:,.0f}", pct(p["mean_utilization"]), usd(p["cost_usd"])]
         for name, p in summary["pools"].items()],
    )  # fmt: skip
    return [head, workloads] + ([jobs] if summary["training_jobs"] else []) + [pools] + _region_tables(summary)


def _region_tables(summary: dict[str, Any]) -> list[Any]:
    """Regions and outages (scenarios with regions only)."""
    if "regions" not in summary:
        return []
    regions = table(
        "Regions",
        ["region", "UTC offset h", "GPU-hours", "cost", "hours down", "requests served", "of them from elsewhere"],
        [[name, f"{r['utc_offset_hours']:+g}", f"{r['gpu_hours_billed']:,.0f}", usd(r["cost_usd"]),
          f"{r['hours_down']:,.1f}", f"{r['requests_served']:,.0f}", f"{r['requests_served_from_other_regions']:,.0f}"]
         for name, r in summary["regions"].items()],
    )  # fmt: skip
    if not summary.get("region_outages"):
        return [regions]
    outages = table(
        "Region outages",
        ["outage", "region", "start (UTC)", "hours", "served elsewhere", "unserved", "SLO attained"],
        [[o["name"], o["region"], o["start"][:16], f"{o['hours']:g}", f"{o['requests_served_in_other_regions']:,.0f}",
          f"{o['unserved_requests']:,.0f}", pct(o["slo_attainment"])]
         for o in summary["region_outages"]],
    )  # fmt: skip
    return [regions, outages]


def _cash_rows(cash: dict[str, Any] | None) -> list[list[str]]:
    """The cash view's lines (when the summary has one): cash out, purchases, NPV."""
    if not cash:
        return []
    rows = [["cash out (capex when paid)", usd(cash["total_usd"])]]
    if cash["purchases_usd"]:
        rows.append(["  owned hardware bought", usd(cash["purchases_usd"])])
    if cash["residual_sales_usd"]:
        rows.append(["  residual sales (inflow)", usd(cash["residual_sales_usd"])])
    rows.append([f"  NPV at {cash['discount_rate_per_year']:.1%}/yr", usd(cash["npv_usd"])])
    if cash["owned_book_value_at_end_usd"]:
        rows.append(["  book value owned at the end", usd(cash["owned_book_value_at_end_usd"])])
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.3f}"


@app.command("run")
def run_command(
    scenario: ScenarioArg,
    plan: Annotated[str | None, typer.Option("--plan", help="Plan name ('base' = as written).")] = None,
    all_plans: Annotated[bool, typer.Option("--all-plans", help="Run the base and every plan.")] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write OUT/<plan>/summary.json, monthly.csv, ... (OUT replaced as a whole).")
    ] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    months: MonthsOpt = None,
    replications: Annotated[
        int | None,
        typer.Option("--replications", min=1, help="Monte Carlo: N runs drawing the uncertain inputs."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Dask workers for --replications (1: in process).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace what --out holds, even files this run would not write.")
    ] = False,
    fail_on_slo_miss: Annotated[
        bool, typer.Option("--fail-on-slo-miss", help="Exit 1 when any workload misses its SLO (for CI).")
    ] = False,
    file_format: Annotated[
        str, typer.Option("--format", help="Tables in --out as csv, parquet or both.")
    ] = "both",
) -> None:
    """Project spend, latency and utilisation over the scenario's horizon.

    Writes OUT/<plan>/summary.json and its tables (monthly, hourly, latency, jobs,
    deployments_hourly, billing; as CSV and Parquet, or --format) for each plan run (and
    OUT/compare.json for several); OUT is replaced as a whole. Example: fleetsim run scenarios/chat-assistant.yaml
    --out out/chat
    """
    import json

    from simulator.common.files import write_atomic, write_folder_atomic
    from simulator.report.files import FILE_FORMATS, finite, write_result_files
    from simulator.results.runner import plan_names

    if file_format not in FILE_FORMATS:
        err.print(f"--format: expected {', '.join(FILE_FORMATS[:-1])} or {FILE_FORMATS[-1]}, got {file_format!r}",
                  markup=False)  # fmt: skip
        raise typer.Exit(2)
    loaded = load(scenario)
    plans = plan_names(loaded) if all_plans else [plan or "base"]
    if replications is not None:
        from simulator.cli.replications import run_replications

        run_replications(loaded, plans, replications, as_json=as_json, quiet=quiet, months=months,
                         out_dir=out_dir, workers=workers)  # fmt: skip
        return
    results = run_plans(loaded, plans, quiet, months)
    for result in results if not as_json else []:  # --json carries them in each summary
        for warning in result.summary.get("warnings", []):
            err.print(f"warning: plan {result.summary['plan']}: {warning}", markup=False)
    if out_dir is not None:

        def fill(staging: Path) -> None:
            for result in results:  # OUT/<plan>/..., whatever the number of plans
                write_result_files(result, staging / result.summary["plan"], within=staging,
                                   formats=file_format)  # type: ignore[arg-type]
            if len(results) > 1:
                from simulator.results.compare import compare

                comparison = compare([r.summary for r in results]).to_dict()
                write_atomic(staging / "compare.json", json.dumps(finite(comparison), indent=2, default=str) + "\n")

        with user_errors():  # the previous outputs, or the new ones: never a mix
            write_folder_atomic(out_dir, fill, others="drop" if force else "refuse")
    if as_json:
        print_json([r.summary for r in results])  # one shape: a list, one summary per plan
        return
    if not quiet:
        for result in results:
            for t in summary_tables(result.summary):
                out.print(t)
    if out_dir is not None:
        err.print(f"wrote {out_dir}/ ({', '.join(r.summary['plan'] + '/' for r in results)})", markup=False)
    if fail_on_slo_miss:
        missed = [f"{r.summary['plan']}: {name}" for r in results
                  for name, w in r.summary["workloads"].items() if not w["slo_met"]]  # fmt: skip
        if missed:
            err.print(f"SLO missed ({'; '.join(missed)})", markup=False)
            raise typer.Exit(1)


@app.command("compare")
def compare_command(
    scenarios: Annotated[list[Path], typer.Argument(help="One scenario (its plans) or several files.")],
    plans: Annotated[
        str | None, typer.Option("--plans", help="Comma-separated plan names (default: base + all).")
    ] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Compare fleet plans side by side: spend, $/1M tokens, peak GPUs, SLO, deltas.

    Examples: fleetsim compare scenarios/chat-assistant.yaml;
    fleetsim compare a.yaml b.yaml --json
    """
    summaries = [r.summary for r in run_comparison(scenarios, plans, quiet)]
    from simulator.results.compare import compare

    comparison = compare(summaries)
    if as_json:
        print_json(comparison.to_dict())
        return
    out.print(comparison_table(comparison))


def run_comparison(scenarios: list[Path], plans: str | None, quiet: bool) -> list[Any]:
    """Run the chosen plans of one scenario, or the base of each of several files."""
    from simulator.results.runner import plan_names

    if len(scenarios) == 1:
        loaded = load(scenarios[0])
        chosen = [p.strip() for p in plans.split(",")] if plans else plan_names(loaded)
        return run_plans(loaded, chosen, quiet)
    results = []
    for path in scenarios:
        loaded = load(path)
        chosen = [p.strip() for p in plans.split(",")] if plans else ["base"]
        results += run_plans(loaded, chosen, quiet)
    return results


def comparison_table(comparison: Any) -> Any:
    """Rich table: metrics as rows, runs as columns, deltas against the first run."""
    from simulator.results.compare import Comparison

    assert isinstance(comparison, Comparison)
    columns = ["metric"] + [
        f"{run}{' ★ cheapest meeting SLO' if run == comparison.recommended else ''}"
        for run in comparison.runs
    ]
    rows = []
    for metric in comparison.metrics:
        deltas = comparison.deltas(metric)
        cells = [metric.label]
        for i, value in enumerate(metric.values):
            text = format_value(value, metric.unit)
            if i > 0 and deltas[i] is not None and metric.unit not in ("date",):
                text += f" ({format_delta(deltas[i], metric.unit)})"
            cells.append(text)
        rows.append(cells)
    rows.append(["meets every SLO"] + ["yes" if ok else "NO" for ok in comparison.meets_slo])
    return table("Plans compared (deltas vs the first)", columns, rows)


def format_value(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    match unit:
        case "usd":
            return usd(value)
        case "usd_per_million":
            return _money(value)
        case "fraction":
            return pct(value)
        case "date":
            return str(value)[:10]
        case "rps":
            return f"{value:,.2f}"
        case _:
            return f"{value:,.0f}"


def format_delta(delta: float, unit: str) -> str:
    sign = "+" if delta >= 0 else "-"
    if unit == "fraction":
        return f"{sign}{abs(delta) * 100:.1f} pt"
    return f"{sign}{format_value(abs(delta), unit)}"
