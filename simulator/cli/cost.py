"""CLI: ``fleetsim cost``, the cost model's figures for one replica."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import (
    JsonOpt,
    OnDateOpt,
    PlanOpt,
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
    deployment: Annotated[
        str | None, typer.Option("--deployment", "-d", help="Deployment name (serving figures).")
    ] = None,
    job: Annotated[
        str | None, typer.Option("--job", "-j", help="Training job name (layout and step-time figures).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Decode batch size (running requests).", min=1)] = 32,
    context: Annotated[int, typer.Option(help="Context tokens per request.", min=1)] = 2000,
    prompt: Annotated[
        int | None, typer.Option(help="Prompt tokens for the prefill figure (default: context).")
    ] = None,
    on: OnDateOpt = None,
    plan: PlanOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cost-model figures: one serving replica (--deployment: iteration times, tokens/s, $ per 1M
    tokens) or one training job (--job: its layout, step-time breakdown, MFU and goodput).

    Examples: fleetsim cost scenarios/chat-assistant.yaml --deployment chat-70b --batch 32;
    fleetsim cost scenarios/training-lab.yaml --job pretrain-70b
    """
    if (deployment is None) == (job is None):
        raise typer.BadParameter("give exactly one of --deployment or --job")
    loaded = load(scenario, on, plan)
    if job is not None:
        from simulator.training.plan import job_figures

        with user_errors():
            figures = job_figures(loaded, job)
        title = f"Cost model: training job {job}"
    else:
        from simulator.inference.replica_cost import replica_cost_figures

        with user_errors():
            figures = replica_cost_figures(loaded, deployment, batch, context, prompt or context)
        title = f"Cost model: {deployment} (batch {batch}, context {context})"
    if as_json:
        print_json(figures)
        return
    rows = [[key.replace("_", " "), _fmt_number(value)] for key, value in figures.items()]
    out.print(table(title, ["figure", "value"], rows))


def _fmt_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
