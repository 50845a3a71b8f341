"""What the training engine returns: per-run records and hourly occupancy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Columns of :attr:`TrainingResult.runs`, in order. Times are datetimes (NaT when not reached);
#: hours and GPU-hours are floats; ``gpu_hours_lost`` = checkpoint + rework + restart.
RUN_COLUMNS: dict[str, str] = {
    "pool": "str",
    "job": "str",
    "run": "int64",
    "status": "str",  # "finished", "running" (at the horizon end) or "queued"
    "queued_at": "datetime64[ns]",
    "started_at": "datetime64[ns]",
    "finished_at": "datetime64[ns]",
    "gpus": "int64",
    "mfu": "float64",
    "layout": "str",  # parallel layout the speed comes from (simulator.perf.training)
    "checkpoint_interval_hours": "float64",  # compute between checkpoints (Young-Daly by default)
    "flops": "float64",
    "compute_hours": "float64",  # failure-free compute time of the run (work / (GPUs x peak x MFU))
    "wall_hours": "float64",  # hours held: start to finish, or to the horizon end
    "gpu_hours": "float64",  # gpus x wall_hours
    "gpu_hours_useful": "float64",
    "gpu_hours_lost": "float64",
    "gpu_hours_checkpoint": "float64",
    "gpu_hours_rework": "float64",
    "gpu_hours_restart": "float64",
    "goodput": "float64",  # useful / held GPU-hours (NaN for a run that never started)
    "failures": "int64",
    "preemptions": "int64",
    "deadline": "datetime64[ns]",
    "deadline_missed": "boolean",  # <NA> when unfinished and the deadline is after the horizon
}

#: Columns of :attr:`TrainingResult.events`.
EVENT_COLUMNS: dict[str, str] = {
    "time": "datetime64[ns]",
    "hour": "float64",  # hours since the horizon start
    "pool": "str",
    "job": "str",
    "run": "int64",
    "event": "str",  # release, start, failure, preemption, finish
    "gpus": "int64",
}


def frame(records: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    """A DataFrame with exactly ``columns`` (in order, with their dtypes), also when empty."""
    data = {name: [r[name] for r in records] for name in columns}
    out = pd.DataFrame(data, columns=list(columns))
    return out.astype(columns)


def _empty_events() -> pd.DataFrame:
    return frame([], EVENT_COLUMNS)


@dataclass(frozen=True)
class TrainingResult:
    """Training runs over the horizon.

    runs: one row per released job run, columns :data:`RUN_COLUMNS` (jobs that have no run in
        the horizon have no rows).
    gpus_held_by_pool: per pool of the scenario, shape (hours,), GPUs held by training in each
        hour, hour-averaged (a run starting at 10:30 adds half its GPUs to the 10:00 hour).
    gpus_held_by_job: per training job of the scenario (all runs summed), shape (hours,).
    events: the event log in time order (ties in simulation order), columns
        :data:`EVENT_COLUMNS`.
    """

    runs: pd.DataFrame
    gpus_held_by_pool: dict[str, np.ndarray]
    gpus_held_by_job: dict[str, np.ndarray]
    events: pd.DataFrame = field(default_factory=_empty_events)
