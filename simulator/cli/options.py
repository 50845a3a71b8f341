"""What the commands share: consoles, option types, input-error handling, tables and formats.

Every command turns bad input into ``FILE:LINE: path: message`` lines on stderr and exit code 2,
and an output it cannot write into one line naming the path and exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from simulator.common.errors import ScenarioError
from simulator.common.files import OutputError

out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
OnDateOpt = Annotated[
    datetime | None,
    typer.Option("--on", formats=["%Y-%m-%d"], show_default=False,
                 help="Use the GPUs each pool has on this date, after its hardware refreshes "
                 "(default: the horizon start)."),
]  # fmt: skip
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Local Dask workers (default: one per core; 1: run in this process)."),
]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", help="Address of an existing Dask scheduler (tcp://host:8786).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or tables.")]
MonthsOpt = Annotated[
    int | None, typer.Option("--months", min=1, max=240, help="Shorten the horizon to this many months.")
]


@contextmanager
def user_errors() -> Iterator[None]:
    """Print input problems as ``FILE:LINE: path: message`` and exit 2; unwritable outputs exit 1."""
    try:
        yield
    except ScenarioError as error:
        for line in error.format().splitlines():
            err.print(line, markup=False)
        raise typer.Exit(2) from None
    except OutputError as error:
        err.print(str(error), markup=False)
        raise typer.Exit(1) from None


PlanOpt = Annotated[str | None, typer.Option("--plan", help="Use this plan of the scenario ('base' = as written).")]


def load(path: Path, on: datetime | None = None, plan: str | None = None) -> Any:
    """The validated scenario (its ``plan``, when named); with ``on``, its pools as in force
    on that date."""
    from simulator.economics.refresh import scenario_at
    from simulator.scenario.loading import load_scenario, scenario_for_plan

    with user_errors():
        scenario = load_scenario(path)
        if plan is not None:
            scenario = scenario_for_plan(scenario, plan)
    return scenario if on is None else scenario_at(scenario, on.date())


def print_json(data: Any) -> None:
    """JSON on stdout, plain (no colour codes) so it can be piped; NaN/inf as null (valid JSON)."""
    from simulator.common.files import finite

    typer.echo(json.dumps(finite(data), indent=2, default=str, allow_nan=False))


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        t.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[str(c) for c in row])
    return t


def progress(quiet: bool) -> Progress:
    """A progress display on a terminal; silent with --quiet or when output is not a TTY."""
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        disable=quiet or not sys.stderr.isatty(), transient=True,
    )  # fmt: skip


def usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.0f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


# ---------------------------------------------------------------------- Dask (sweep, optimize, run --replications)


def bar(quiet: bool) -> Progress:
    """A progress bar on stderr; silent with --quiet or when stderr is not a terminal."""
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err, disable=quiet or not sys.stderr.isatty(), transient=True,
    )  # fmt: skip


def build_curves(scenarios: list[Any], quiet: bool) -> None:
    """Build the latency curves that runs of these (plan-applied) scenarios need, in parallel
    processes, with a bar that counts them (the runs then read them from the cache)."""
    from simulator.fleet import projection

    if projection.default_curve_provider is not projection.ENGINE_CURVE_PROVIDER:
        return  # a stand-in provider (tests): nothing to build
    from simulator.results.runner import prefetch_curves

    with bar(quiet) as shown:
        task = shown.add_task("latency curves", total=None)
        prefetch_curves(scenarios, on_built=lambda done, total: shown.update(task, completed=done, total=total))


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
