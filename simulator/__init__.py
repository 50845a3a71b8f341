"""fleetsim: cost and capacity planning simulator for machine-learning GPU fleets.

Python API (the CLI is a thin layer over these):

- ``load_scenario(path)`` -> validated :class:`~simulator.scenario.schema.Scenario`
- ``run(scenario, plan=None, seed=None)`` -> :class:`~simulator.results.result.Result`
- ``serve(scenario, deployment, ...)`` runs the inference engine alone
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

from simulator.common.errors import Problem, ScenarioError

if TYPE_CHECKING:
    from simulator.results.result import Result
    from simulator.scenario.loading import load_scenario, scenario_for_plan
    from simulator.scenario.schema import Scenario

#: Loaded on first use, so that ``import simulator`` (and ``fleetsim --help``) stays light.
_LAZY = {"load_scenario": "simulator.scenario.loading", "scenario_for_plan": "simulator.scenario.loading",
         "Scenario": "simulator.scenario.schema"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


def run(scenario: Scenario, plan: str | None = None, seed: int | None = None, **kwargs: Any) -> Result:
    """Run a scenario (or one of its plans); see :func:`simulator.results.runner.run`.

    Imported on first use, so that ``import simulator`` (and ``fleetsim --help``) does not load
    pandas and the projection.
    """
    from simulator.results.runner import run as _run

    return _run(scenario, plan=plan, seed=seed, **kwargs)


def serve(*args, **kwargs):
    """Run the inference engine alone; see :func:`simulator.inference.serve`."""
    from simulator.inference import serve as _serve

    return _serve(*args, **kwargs)

__all__ = ["Problem", "Scenario", "ScenarioError", "__version__", "load_scenario", "run", "scenario_for_plan", "serve"]
