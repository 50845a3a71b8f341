"""Layer 4, the training engine: a job-level DES of training runs sharing GPU pools.

``simulate_training(scenario, available_gpus_by_pool, rng) -> TrainingResult`` is the entry point
(the fleet projection calls it); :mod:`~simulator.training.engine` documents queueing, capacity and
horizon semantics, :mod:`~simulator.training.plan` releases, deadlines and defaults, and
:mod:`~simulator.training.jobs` the checkpoint/failure/restart runtime model.

Its imports stay below the engines (``common``, ``catalog``, ``perf``, ``scenario``, ``economics``);
the inference engine is its sibling and is never imported here.
"""

from __future__ import annotations

from simulator.training.engine import TrainingEngine, simulate_training
from simulator.training.jobs import DEFAULT_FAILURES_PER_GPU_DAY, RunOutcome, RunSpec, simulate_run
from simulator.training.result import TrainingResult

__all__ = [
    "DEFAULT_FAILURES_PER_GPU_DAY",
    "RunOutcome",
    "RunSpec",
    "TrainingEngine",
    "TrainingResult",
    "simulate_run",
    "simulate_training",
]
