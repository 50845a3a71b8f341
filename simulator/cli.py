"""The ``fleetsim`` command line: a thin typer layer over the Python API.

Every command turns bad input into ``FILE:LINE: path: message`` lines on stderr and exit code 2,
never a traceback.
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
from rich.table import Table

from simulator import __version__
from simulator.errors import ScenarioError

app = typer.Typer(
    name="fleetsim",
    help=(
        "Cost and capacity planning simulator for ML GPU fleets.\n\n"
        "Examples:\n\n"
        "  fleetsim run scenarios/chat-assistant.yaml --out out/chat\n\n"
        "  fleetsim compare scenarios/buy-vs-rent.yaml\n\n"
        "  fleetsim report scenarios/lifecycle.yaml -o report.xlsx --plots plots\n\n"
        "  fleetsim validate scenarios/chat-assistant.yaml\n\n"
        "  fleetsim cost scenarios/chat-assistant.yaml --deployment chat-70b --batch 32"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Browse the bundled catalog of GPUs and models.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

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


def _version(value: bool) -> None:
    if value:
        out.print(f"fleetsim {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Cost and capacity planning simulator for ML GPU fleets."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Print input problems as ``FILE:LINE: path: message`` and exit 2."""
    try:
        yield
    except ScenarioError as error:
        for line in error.format().splitlines():
            err.print(line, markup=False)
        raise typer.Exit(2) from None


def load(path: Path, on: datetime | None = None) -> Any:
    """The validated scenario; with ``on``, its pools as in force on that date."""
    from simulator.loading import load_scenario
    from simulator.refresh import scenario_at

    with user_errors():
        scenario = load_scenario(path)
    return scenario if on is None else scenario_at(scenario, on.date())


def print_json(data: Any) -> None:
    """JSON on stdout, plain (no colour codes) so it can be piped."""
    typer.echo(json.dumps(data, indent=2, default=str))


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        t.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[str(c) for c in row])
    return t


# ---------------------------------------------------------------------- validate, schema


@app.command()
def validate(scenario: ScenarioArg) -> None:
    """Check a scenario file: schema, catalog names, cross-references, memory fit."""
    loaded = load(scenario)
    from simulator.loading import scenario_for_plan

    with user_errors():
        for plan in loaded.plans:
            scenario_for_plan(loaded, plan.name)
    out.print(
        f"{scenario}: ok ({len(loaded.pools)} pools, {len(loaded.deployments)} deployments, "
        f"{len(loaded.workloads)} workloads, {len(loaded.training_jobs)} training jobs, "
        f"{len(loaded.plans)} plans)"
    )


@app.command()
def schema() -> None:
    """Print the scenario file's JSON Schema (for editor autocompletion)."""
    from simulator.scenario import Scenario

    print_json(Scenario.model_json_schema(by_alias=True))


# ---------------------------------------------------------------------- catalog


@catalog_app.command("gpus")
def catalog_gpus(as_json: JsonOpt = False) -> None:
    """Bundled GPUs with their specs and typical prices."""
    from simulator.catalog import bundled_catalog

    gpus = bundled_catalog().gpus.values()
    if as_json:
        print_json([g.model_dump() for g in gpus])
        return

    def fmt(value: float | None, pattern: str = "{:g}") -> str:
        return "-" if value is None else pattern.format(value)

    rows = [
        [g.name, fmt(g.bf16_tflops), fmt(g.fp8_tflops), fmt(g.hbm_gib), fmt(g.hbm_tb_per_s),
         fmt(g.interconnect_gb_per_s), fmt(g.tdp_w), fmt(g.usd_per_gpu_hour_on_demand, "{:.2f}"),
         fmt(g.usd_per_gpu_hour_reserved, "{:.2f}"), fmt(g.capex_usd, "{:,.0f}")]
        for g in gpus
    ]  # fmt: skip
    columns = ["gpu", "bf16 TFLOP/s", "fp8 TFLOP/s", "HBM GiB", "HBM TB/s", "link GB/s",
               "TDP W", "$/h on-demand", "$/h reserved", "capex $"]  # fmt: skip
    out.print(table("Bundled GPUs (dense peaks)", columns, rows))


@catalog_app.command("models")
def catalog_models(as_json: JsonOpt = False) -> None:
    """Bundled model presets with their shapes."""
    from simulator.catalog import bundled_catalog
    from simulator.perf.memory import kv_bytes_per_token

    models = bundled_catalog().models.values()
    if as_json:
        print_json([m.model_dump() for m in models])
        return
    rows = [
        [m.name, f"{m.parameters / 1e9:.1f}", f"{m.active / 1e9:.1f}", m.layers, m.hidden_size,
         f"{m.heads}/{m.kv_heads}", m.experts or "-",
         f"{kv_bytes_per_token(m, 'bf16') / 1024:.0f}", m.max_context_tokens]
        for m in models
    ]  # fmt: skip
    columns = ["model", "params B", "active B", "layers", "hidden", "heads/kv", "experts",
               "KV KiB/token bf16", "max context"]  # fmt: skip
    out.print(table("Bundled models", columns, rows))


# ---------------------------------------------------------------------- cost


@app.command()
def cost(
    scenario: ScenarioArg,
    deployment: Annotated[str, typer.Option("--deployment", "-d", help="Deployment name.")],
    batch: Annotated[int, typer.Option(help="Decode batch size (running requests).", min=1)] = 32,
    context: Annotated[int, typer.Option(help="Context tokens per request.", min=1)] = 2000,
    prompt: Annotated[
        int | None, typer.Option(help="Prompt tokens for the prefill figure (default: context).")
    ] = None,
    on: OnDateOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cost-model figures for one replica: iteration times, tokens/s and $ per 1M tokens."""
    from simulator.costing import replica_cost_figures

    loaded = load(scenario, on)
    with user_errors():
        figures = replica_cost_figures(loaded, deployment, batch, context, prompt or context)
    if as_json:
        print_json(figures)
        return
    rows = [[key.replace("_", " "), _fmt_number(value)] for key, value in figures.items()]
    out.print(table(f"Cost model: {deployment} (batch {batch}, context {context})", ["figure", "value"], rows))


def _fmt_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)






# Commands of the other areas register themselves on ``app`` when imported.
from simulator.commands import calibrate, report, run, serve, sweep  # noqa: F401
