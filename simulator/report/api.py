"""The report writers for a notebook or script: Results in, files out.

    import simulator
    from simulator.report import write_workbook, write_plots

    base = simulator.run(simulator.load_scenario("scenarios/chat-assistant.yaml"))
    write_workbook(base, "chat.xlsx")

Each function takes one :class:`~simulator.results.result.Result`, a list of them (labelled by
plan, or ``scenario:plan`` when they come from several scenarios) or a dict of label -> Result,
and writes atomically (a temp file, then a rename: never a partial file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from simulator.report.files import write_result_files
from simulator.report.runs import ReportRun
from simulator.results.compare import run_label
from simulator.results.result import Result

Results = Result | Sequence[Result] | Mapping[str, Result]


def report_runs(results: Results) -> list[ReportRun]:
    """The results as labelled report runs (labels made unique with '#2', '#3'...)."""
    if isinstance(results, Result):
        pairs: list[tuple[str | None, Result]] = [(None, results)]
    elif isinstance(results, Mapping):
        pairs = [(str(label), r) for label, r in results.items()]
    else:
        pairs = [(None, r) for r in results]
    if not pairs:
        raise ValueError("no results to report")
    for _, result in pairs:
        if not isinstance(result, Result):
            raise TypeError(f"expected a simulator Result, got {type(result).__name__}")
    several = len({r.summary["scenario"] for _, r in pairs}) > 1
    runs: list[ReportRun] = []
    for label, result in pairs:
        if result.scenario is None:
            raise ValueError("this Result does not carry its scenario: make it with simulator.run()")
        name = label or run_label(result.summary, several)
        unique, i = name, 2
        while unique in {r.label for r in runs}:
            unique, i = f"{name}#{i}", i + 1
        runs.append(ReportRun(unique, result.scenario, result, result.curves))
    return runs


def write_workbook(results: Results, path: str | Path, paper: str = "a4") -> Path:
    """The finance workbook (.xlsx) of ``results``, as ``fleetsim report`` writes it (``paper``:
    "a4" or "letter", for printing)."""
    from simulator.report.workbook import write_workbook as write

    return write(path, report_runs(results), paper)


def write_plots(results: Results, directory: str | Path) -> list[Path]:
    """Every PNG plot of ``results`` into ``directory`` (as ``fleetsim report --plots``)."""
    from simulator.report.plots import write_plots as write

    return write(report_runs(results), directory)


def write_html(results: Results, path: str | Path) -> Path:
    """The interactive, self-contained HTML report of ``results`` (as ``fleetsim report --html``)."""
    from simulator.report.html import write_html as write

    return write(path, report_runs(results))


def write_focus(results: Results, path: str | Path) -> Path:
    """The runs' charges in the FinOps FOCUS 1.2 layout (.csv or .parquet), as ``fleetsim report --focus``."""
    from simulator.report.focus import write_focus as write

    return write(path, [r.result for r in report_runs(results)])


def write_files(result: Result, directory: str | Path) -> list[Path]:
    """One run's files (summary.json, monthly/hourly/latency/... tables) into ``directory``, as
    ``fleetsim run --out`` writes them for one plan."""
    return write_result_files(result, directory)


def plot_monthly_spend(result: Result, path: str | Path) -> Path:
    """Monthly spend by category of one run (PNG)."""
    from simulator.report.plots import plot_monthly_spend as plot

    return plot(report_runs(result)[0], path)


def plot_cumulative_spend(results: Results, path: str | Path) -> Path:
    """Cumulative spend of several runs on one chart (PNG)."""
    from simulator.report.plots import plot_cumulative_spend as plot

    return plot(report_runs(results), path)


def plot_utilisation_heatmap(result: Result, pool: str, path: str | Path) -> Path:
    """A pool's utilisation by hour of day and month (PNG)."""
    from simulator.report.plots import plot_utilisation_heatmap as plot

    return plot(report_runs(result)[0], pool, path)


def plot_training_gantt(result: Result, path: str | Path) -> Path:
    """The training jobs' runs over time (PNG)."""
    from simulator.report.plots import plot_training_gantt as plot

    return plot(report_runs(result)[0], path)
