"""fleetsim: cost and capacity planning simulator for machine-learning GPU fleets.

Python API (the CLI is a thin layer over these):

- ``load_scenario(path)`` -> validated :class:`~simulator.scenario.Scenario`
"""

from __future__ import annotations

__version__ = "0.1.0"

from simulator.errors import Problem, ScenarioError
from simulator.loading import load_scenario, scenario_for_plan
from simulator.scenario import Scenario

__all__ = ["Problem", "Scenario", "ScenarioError", "__version__", "load_scenario", "scenario_for_plan"]
