"""CLI: ``fleetsim report`` — the finance workbook (xlsx) and plots (PNG) of a scenario's plans."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import QuietOpt, build_curves, err, load, progress, user_errors
from simulator.common.files import OutputError


def _base_curve_provider() -> Any:
    """The engine's curve provider, looked up at call time (tests swap in a synthetic one)."""
    from simulator.fleet import projection

    return projection.default_curve_provider


def _chosen_plans(loaded: Any, plans: str | None, several_files: bool) -> list[str]:
    from simulator.results.runner import plan_names

    if plans:
        return [p.strip() for p in plans.split(",") if p.strip()]
    return ["base"] if several_files else plan_names(loaded)


def report_runs(scenarios: list[Path], plans: str | None, quiet: bool) -> list[Any]:
    """Run the chosen plans of one scenario (default: base + every plan), or of several files
    (default: base of each), as :class:`~simulator.report.runs.ReportRun` (labelled as the
    notebook API labels them); input errors exit 2."""
    from simulator.report.api import report_runs as labelled
    from simulator.results.runner import run
    from simulator.scenario.loading import scenario_for_plan

    loaded = [load(path) for path in scenarios]
    with user_errors():  # every plan checked before anything runs
        jobs = [(scenario, plan, scenario_for_plan(scenario, plan))
                for scenario in loaded for plan in _chosen_plans(scenario, plans, len(scenarios) > 1)]  # fmt: skip
    with user_errors():
        build_curves([variant for _, _, variant in jobs], quiet)
    results = []
    with progress(quiet) as bar, user_errors():
        task = bar.add_task("running", total=len(jobs))
        for scenario, plan, _ in jobs:
            bar.update(task, description=f"{scenario.name}, plan {plan}: simulating")
            results.append(run(scenario, plan=plan, curve_provider=_base_curve_provider()))
            bar.advance(task)
    return labelled(results)


def _fail(message: str, code: int = 2) -> None:
    """One line on stderr; exit 2 for a usage error, 1 for a runtime or I/O error."""
    err.print(message, markup=False)
    raise typer.Exit(code)


@app.command("report")
def report_command(
    scenarios: Annotated[
        list[Path], typer.Argument(help="One scenario (its plans) or several scenario files.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Workbook to write (.xlsx).", show_default=False)
    ] = None,
    plans: Annotated[
        str | None,
        typer.Option("--plans", help="Comma-separated plan names (default: base + all plans)."),
    ] = None,
    plots: Annotated[
        Path | None, typer.Option("--plots", help="Also write PNG plots into this directory.")
    ] = None,
    paper: Annotated[str, typer.Option("--paper", help="Paper the workbook prints on: a4 or letter.")] = "a4",
    html_file: Annotated[
        Path | None,
        typer.Option("--html", help="Also (or only) write the interactive report: one self-contained .html file."),
    ] = None,
    focus_file: Annotated[
        Path | None,
        typer.Option("--focus", help="Also write every run's charges in the FinOps FOCUS 1.2 layout (.csv or .parquet)."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Write the finance workbook: summary, assumptions (named prices), monthly costs as live
    formulas, utilisation, latency & SLO, training jobs, plan comparison; optionally PNG plots.

    --focus writes the projected charges as a FOCUS 1.2 dataset (what cost tools ingest): BilledCost
    sums to the cash-flow total, EffectiveCost to the accrual (amortised) total.

    --html writes an interactive page (plotly, no network needed to view it): the summary, plan
    comparison, monthly spend, latency vs load and utilisation, to hover, zoom and filter by plan.

    Examples: fleetsim report scenarios/chat-assistant.yaml -o chat.xlsx --plots plots/;
    fleetsim report a.yaml b.yaml -o ab.xlsx; fleetsim report scenarios/chat-assistant.yaml --html chat.html;
    fleetsim report scenarios/lifecycle.yaml -o life.xlsx --focus life-focus.csv
    """
    from xlsxwriter.exceptions import XlsxWriterException

    from simulator.report.plots import write_plots
    from simulator.report.sheet import PAPER_CODES
    from simulator.report.workbook import write_workbook

    if paper not in PAPER_CODES:
        _fail(f"--paper: expected {' or '.join(PAPER_CODES)}, got {paper!r}")
    if output is None and html_file is None and focus_file is None:
        _fail("give what to write: the workbook (-o NAME.xlsx), the HTML report (--html NAME.html), "
              "the FOCUS export (--focus NAME.csv), or several")
    if output is not None and output.suffix.lower() != ".xlsx":
        _fail(f"{output}: the workbook must be an .xlsx file (use -o NAME.xlsx)")
    if focus_file is not None and focus_file.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"{focus_file}: the FOCUS export must be a .csv or .parquet file (use --focus NAME.csv)")
    if html_file is not None and html_file.suffix.lower() not in (".html", ".htm"):
        _fail(f"{html_file}: the HTML report must be an .html file (use --html NAME.html)")
    for target in (output, html_file, focus_file):
        if target is not None and target.exists() and target.is_dir():
            _fail(f"{target}: is a directory; give a file name")
    runs = report_runs(scenarios, plans, quiet)
    written: list[Path] = []
    with progress(quiet) as bar:
        bar.add_task("writing the report", total=None)
        try:
            if output is not None:
                write_workbook(output, runs, paper)
            if html_file is not None:
                from simulator.report.html import write_html

                write_html(html_file, runs)
            if focus_file is not None:
                from simulator.report.focus import write_focus

                write_focus(focus_file, [r.result for r in runs])
            if plots is not None:
                written = write_plots(runs, plots)
        except (OSError, OutputError, XlsxWriterException) as error:
            _fail(f"cannot write the report: {error}", code=1)
    if not quiet:
        for target in (output, html_file, focus_file):
            if target is not None:
                err.print(f"wrote {target} ({len(runs)} run(s): {', '.join(r.label for r in runs)})", markup=False)
        if plots is not None:
            err.print(f"wrote {len(written)} plots to {plots}/", markup=False)
