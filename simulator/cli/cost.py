"""CLI: ``fleetsim cost``, the cost model's figures for one replica."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    JsonOpt,
    OnDateOpt,
    ScenarioArg,
    load,
    out,
    print_json,
    table,
    user_errors,
)


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
    from simulator.economics.costing import replica_cost_figures

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
