"""The main job as a function: ``run(scenario, plan, seed)`` -> :class:`~simulator.results.result.Result`."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from simulator.fleet.projection import (
    CurveProvider,
    curve_requests,
    default_curve_provider,
    project,
)
from simulator.results.result import Result, build_result
from simulator.scenario.loading import scenario_for_plan
from simulator.scenario.schema import Scenario


def run(
    scenario: Scenario,
    plan: str | None = None,
    seed: int | None = None,
    curve_provider: CurveProvider = default_curve_provider,
) -> Result:
    """Project a scenario (one plan of it) over its horizon.

    ``seed`` defaults to the scenario's; training failures draw from a stream spawned from it, so
    plans compared with the same seed see the same failure luck.
    """
    variant = scenario_for_plan(scenario, plan)
    if seed is not None:
        variant = variant.model_copy(update={"seed": seed})
    training_stream = np.random.SeedSequence(variant.seed).spawn(2)[1]
    curves: dict[tuple[str, str], Any] = {}
    projection = project(variant, np.random.default_rng(training_stream), recording(curve_provider, curves))
    return dataclasses.replace(build_result(projection, plan or "base"), curves=curves)


def recording(provider: CurveProvider, store: dict[tuple[str, str], Any]) -> CurveProvider:
    """A curve provider that keeps every curve it hands out in ``store`` (the latency plots
    reuse them). After a pool's hardware refresh a deployment has one curve per GPU: the later
    ones are kept as '<deployment> (<gpu>)'."""
    first_gpu: dict[str, str] = {}

    def record(scenario: Scenario, deployment: str, workload: str) -> Any:
        curve = provider(scenario, deployment, workload)
        gpu = scenario.pool(scenario.deployment(deployment).pool).gpu
        label = deployment if first_gpu.setdefault(deployment, gpu) == gpu else f"{deployment} ({gpu})"
        store[(label, workload)] = curve
        return curve

    return record


def plan_names(scenario: Scenario) -> list[str]:
    """'base' followed by the scenario's plans."""
    return ["base"] + [p.name for p in scenario.plans]


def prefetch_curves(
    scenarios: list[Scenario], *, workers: int | None = None, on_built: Any = None
) -> int:  # fmt: skip
    """Build every latency curve the runs of ``scenarios`` (plan-applied) will need, each once
    and in parallel processes (see :func:`simulator.inference.curve.prefetch`); returns how
    many were built (0: all cached)."""
    from simulator.inference.curve import prefetch

    wanted = [request for scenario in scenarios for request in curve_requests(scenario)]
    return prefetch(wanted, workers=workers, on_built=on_built)
