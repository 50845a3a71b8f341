"""Scale-out: parameter sweeps, Monte Carlo replications and the plan optimizer, on Dask.

- :mod:`~simulator.sweep.grid`: grid files (dotted paths -> values) and their expansion.
- :mod:`~simulator.sweep.tasks`: the per-plan task a worker runs, one flat row per run.
- :mod:`~simulator.sweep.runner`: serial and Dask execution, :func:`sweep`, Parquet output.
- :mod:`~simulator.sweep.pareto`: the cost / SLO-attainment Pareto front.
- :mod:`~simulator.sweep.montecarlo`: replications of uncertain inputs, P10/P50/P90 and CIs.
- :mod:`~simulator.sweep.optimize`: the cheapest plan meeting every SLO.
- :mod:`~simulator.sweep.workbook`: the sweep's xlsx report.

May import every layer up to ``report``; only the CLI imports it.
"""

from __future__ import annotations

from simulator.sweep.grid import Grid, PlanSpec, expand, load_grid, parse_grid
from simulator.sweep.runner import Execution, Executor, sweep, write_parquet
from simulator.sweep.tasks import CurveSource, TaskSpec, run_task

__all__ = [
    "CurveSource",
    "Execution",
    "Executor",
    "Grid",
    "PlanSpec",
    "TaskSpec",
    "expand",
    "load_grid",
    "parse_grid",
    "run_task",
    "sweep",
    "write_parquet",
]
