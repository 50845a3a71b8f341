"""CLI: ``fleetsim validate`` (check a scenario file) and ``fleetsim schema`` (its JSON Schema)."""

from __future__ import annotations

from typing import Any

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
        f"{len(loaded.workloads)} workloads, {len(loaded.training_jobs)} training jobs, "
        f"{len(loaded.plans)} plans)"
    )


@app.command()
def schema() -> None:
    """Print the scenario file's JSON Schema (for editor autocompletion)."""
    from simulator.scenario.schema import Scenario

    print_json(Scenario.model_json_schema(by_alias=True))
