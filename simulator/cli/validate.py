"""CLI: ``fleetsim validate`` (check a scenario file), ``fleetsim schema`` (its JSON Schema) and
``fleetsim init`` (start a new scenario from a template)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import JsonOpt, ScenarioArg, err, out, print_json, user_errors


@app.command()
def validate(scenario: ScenarioArg, as_json: JsonOpt = False) -> None:
    """Check a scenario file: schema, catalog names, cross-references, memory fit.

    Exit 0 when valid (warnings on stderr), 2 with FILE:LINE: path: message lines when not.
    With --json: {"valid", "problems": [{"file", "line", "path", "message"}], "warnings"} on
    stdout, the same exit codes. Example: fleetsim validate scenarios/chat-assistant.yaml --json
    """
    from simulator.common.errors import ScenarioError
    from simulator.scenario.checks import commitment_warnings
    from simulator.scenario.derived import is_derived
    from simulator.scenario.loading import load_scenario, scenario_for_plan

    def with_plans() -> list[tuple[str, Any]]:
        loaded = load_scenario(scenario)
        return [("base", loaded)] + [(p.name, scenario_for_plan(loaded, p.name)) for p in loaded.plans]

    if not as_json:
        with user_errors():
            plans = with_plans()
    else:
        try:
            plans = with_plans()
        except ScenarioError as error:
            problems = [{"file": error.source, "line": p.line, "path": p.dotted(), "message": p.message}
                        for p in error.problems]  # fmt: skip
            print_json({"valid": False, "problems": problems, "warnings": []})
            raise typer.Exit(2) from None
    loaded = plans[0][1]
    warnings = [f"plan {name}: {w}" for name, planned in plans for w in commitment_warnings(planned)]
    if as_json:
        print_json({"valid": True, "problems": [], "warnings": warnings})
        return
    for warning in warnings:
        err.print(f"{scenario}: warning: {warning}", markup=False)
    out.print(
        f"{scenario}: ok ({len(loaded.pools)} pools, {len(loaded.deployments)} deployments, "
        f"{sum(not is_derived(w.name) for w in loaded.workloads)} workloads, {len(loaded.training_jobs)} training jobs, "
        f"{len(loaded.plans)} plans)"
    )


@app.command()
def schema() -> None:
    """Print the scenario file's JSON Schema (for editor autocompletion and check-jsonschema).

    Example: fleetsim schema > fleetsim.schema.json
    """
    from simulator.scenario.json_schema import scenario_json_schema

    print_json(scenario_json_schema())


TEMPLATES = ("chat", "rag", "training", "lifecycle")


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Scenario file to write.", metavar="PATH")] = Path("scenario.yaml"),
    template: Annotated[
        str, typer.Option("--template", "-t", help=f"What to start from: {', '.join(TEMPLATES)}.")
    ] = "chat",
    force: Annotated[bool, typer.Option("--force", help="Replace PATH if it exists.")] = False,
) -> None:
    """Start a new scenario: a commented, valid file to edit, with its JSON Schema beside it.

    Writes PATH (refused if it exists, unless --force) and fleetsim.schema.json in the same
    folder, which the file's first line points editors at (YAML language server: completion and
    checks as you type). Templates: chat (one model, SLO, a reserved plan), rag (retrieval,
    prefix cache), training (owned cluster, deadline), lifecycle (launch after training, GPU
    refresh). Example: fleetsim init my-product.yaml --template rag
    """
    from importlib import resources

    from simulator.common.files import write_atomic
    from simulator.scenario.json_schema import (
        MODELINE,
        SCHEMA_FILE,
        SCHEMA_ID,
        scenario_json_schema,
    )

    if template not in TEMPLATES:
        err.print(f"--template: expected one of {', '.join(TEMPLATES)}, got {template!r}", markup=False)
        raise typer.Exit(2)
    if path.exists() and not force:
        err.print(f"{path} exists: choose another name, or --force to replace it", markup=False)
        raise typer.Exit(1)
    text = resources.files("simulator.scenario").joinpath("templates", f"{template}.yaml").read_text()
    schema_path = path.parent / SCHEMA_FILE
    # a schema file of ours is refreshed; someone else's file of that name is left alone
    ours = not schema_path.exists() or SCHEMA_ID in schema_path.read_text(errors="replace")
    with user_errors():
        write_atomic(path, f"{MODELINE}\n" + text.replace("FILE", str(path)))
        if ours:
            write_atomic(schema_path, json.dumps(scenario_json_schema(), indent=2) + "\n")
    also = f" and {schema_path}" if ours else f" ({schema_path} is not fleetsim's: left as it is)"
    err.print(f"wrote {path} (template {template}){also}", markup=False)
    err.print(f"next: edit it, then fleetsim validate {path}; fleetsim run {path} --out out/", markup=False)
