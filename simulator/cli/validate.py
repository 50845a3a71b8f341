"""CLI: ``fleetsim validate`` (check a scenario file) and ``fleetsim schema`` (its JSON Schema)."""

from __future__ import annotations

from simulator.cli.app import app
from simulator.cli.options import ScenarioArg, err, load, out, print_json, user_errors


@app.command()
def validate(scenario: ScenarioArg) -> None:
    """Check a scenario file: schema, catalog names, cross-references, memory fit."""
    loaded = load(scenario)
    from simulator.scenario.checks import commitment_warnings
    from simulator.scenario.loading import scenario_for_plan

    with user_errors():
        plans = [("base", loaded)] + [(p.name, scenario_for_plan(loaded, p.name)) for p in loaded.plans]
    for name, planned in plans:
        for warning in commitment_warnings(planned):
            err.print(f"{scenario}: warning: plan {name}: {warning}", markup=False)
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
