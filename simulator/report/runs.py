"""What the workbook and plots are made from: one entry per run (plan of a scenario file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.results.result import Result
from simulator.scenario.schema import Scenario


@dataclass(frozen=True)
class ReportRun:
    """One run: its label (plan name, or ``scenario:plan`` across files), the plan-applied
    scenario it ran, its Result, and the latency curves it used ((deployment, workload) -> curve,
    optional: only the latency plots need them)."""

    label: str
    scenario: Scenario
    result: Result
    curves: dict[tuple[str, str], Any] = field(default_factory=dict)
