"""Running many plans: in this process, on a local Dask cluster, or on an existing one.

:class:`Executor` runs :class:`~simulator.sweep.tasks.TaskSpec` s and returns their rows in task
order, whatever order the workers finish in, so a sweep gives the same rows serially and on any
cluster. On Dask:

- a :class:`distributed.LocalCluster` with one single-threaded worker process per core by
  default (``workers=N`` for N), or the cluster at ``scheduler`` (an address);
- the latency curves a batch needs are built first, each once, as tasks of their own (when the
  on-disk cache is on); plan tasks wait for the curves they use and then find them on disk;
- a worker that dies mid-task has its task re-run elsewhere (the scheduler's allowed failures,
  and ``retries``); a task that still cannot finish becomes a row with ``status: error``.

The rows of :func:`sweep` (one per plan x replication) hold ``plan_id``, ``plan`` (a label of
the overrides), ``replication``, ``seed`` (the run's), ``status`` (ok/error), ``error``, the
override values (``set.<path>``; ``alt.<group>`` for named alternatives) and the summary figures:
``total_cost_usd``, ``inference_cost_usd``, ``training_cost_usd``, ``idle_cost_usd``,
``fy.<FY>.cost_usd``, ``workload.<name>.<figure>`` (attainment, p95 TTFT/TPOT, unserved, $ per
1M tokens...), ``pool.<name>.<figure>`` (peak GPUs...), ``slo_attainment_min`` (the worst
workload's attainment, unserved requests counted as misses), ``meets_slo`` (every workload met
its SLO with no request unserved for lack of capacity, and its target still with too-long ones
as misses) and ``pareto`` (see :mod:`simulator.sweep.pareto`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from simulator.common.errors import ScenarioError
from simulator.scenario.paths import scenario_data
from simulator.scenario.schema import Scenario
from simulator.sweep.grid import PlanSpec, apply_overrides, problems_text
from simulator.sweep.pareto import mark_pareto
from simulator.sweep.tasks import (
    ENGINE_CURVES,
    CurveSource,
    TaskSpec,
    build_curves,
    cache_env,
    current_cache_dir,
    routed_pairs,
    run_task,
)

Row = dict[str, Any]
OnDone = Callable[[Row], None]

#: Seconds to wait for an existing scheduler to answer.
CONNECT_TIMEOUT_S = 15

#: Columns every sweep row has, first, in this order.
HEAD_COLUMNS = ["plan_id", "plan", "replication", "seed", "status", "error"]


@dataclass(frozen=True)
class Execution:
    """Where tasks run: a local cluster of ``workers`` processes (None: one per core), the
    cluster at ``scheduler``, or this process (``in_process``; by default when ``workers=1``)."""

    workers: int | None = None  # local cluster size; None: one worker per core
    scheduler: str | None = None  # address of an existing Dask scheduler
    retries: int = 2  # extra attempts of a task whose attempt raised on the worker
    in_process: bool | None = None  # None: when workers == 1 and no scheduler

    @property
    def serial(self) -> bool:
        if self.in_process is not None:
            return self.in_process
        return self.scheduler is None and self.workers == 1


class Executor:
    """Runs tasks; a context manager that owns the Dask client (and local cluster) it starts."""

    def __init__(self, execution: Execution = Execution(), task: Callable[..., Row] = run_task) -> None:
        self.execution = execution
        self.task = task
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Shut down the client and any local cluster this executor started."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    @property
    def client(self) -> Any:
        """The Dask client, started on first use."""
        if self._client is None:
            import dask
            from distributed import Client, LocalCluster

            if self.execution.scheduler is not None:
                self._client = Client(self.execution.scheduler, timeout=CONNECT_TIMEOUT_S)
            else:
                workers = self.execution.workers or os.cpu_count() or 1
                with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment()}):
                    self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                 dashboard_address=None, silence_logs=logging.ERROR)  # fmt: skip
                self._client = Client(self._cluster)
        return self._client

    # ------------------------------------------------------------------ running

    def run(self, tasks: list[TaskSpec], on_done: OnDone | None = None, prebuild: bool = True) -> list[Row]:
        """Rows of ``tasks``, in task order. ``prebuild``: build shared curves first (Dask)."""
        if not tasks:
            return []
        if self.execution.serial:
            rows = []
            for spec in tasks:
                rows.append(self.task(spec))
                if on_done is not None:
                    on_done(rows[-1])
            return rows
        return self._run_dask(tasks, on_done, prebuild)

    def _run_dask(self, tasks: list[TaskSpec], on_done: OnDone | None, prebuild: bool) -> list[Row]:
        from distributed import as_completed

        client = self.client
        builds = self._submit_curve_builds(tasks) if prebuild else {}
        futures = {}
        for index, spec in enumerate(tasks):
            after = builds.get(spec.plan_id)
            future = client.submit(self.task, spec, after, pure=False, retries=self.execution.retries)
            futures[future] = index
        rows: list[Row | None] = [None] * len(tasks)
        for future in as_completed(list(futures)):
            index = futures[future]
            try:
                row = future.result()
            except Exception as err:  # noqa: BLE001 - a lost task is a failed plan, not a failed sweep
                spec = tasks[index]
                row = {"plan_id": spec.plan_id, "replication": spec.replication, "seed": None,
                       "status": "error", "error": f"worker failed: {type(err).__name__}: {err}"}  # fmt: skip
            rows[index] = row
            future.release()
            if on_done is not None:
                on_done(row)
        return [r for r in rows if r is not None]

    def _submit_curve_builds(self, tasks: list[TaskSpec]) -> dict[int, Any]:
        """Submit one build per missing cached curve; map plan_id -> the futures it waits for."""
        jobs = curve_jobs(tasks)
        if not jobs:
            return {}
        futures = {
            key: self.client.submit(build_curves, data, [pair], curves, cache_dir, pure=False, priority=10,
                                    retries=self.execution.retries)
            for key, (data, pair, curves, cache_dir, _) in jobs.items()
        }
        waits: dict[int, list[Any]] = {}
        for key, (*_, plan_ids) in jobs.items():
            for plan_id in plan_ids:
                waits.setdefault(plan_id, []).append(futures[key])
        return waits

    def build(self, jobs: list[tuple[dict[str, Any], list[tuple[str, str]]]], curves: Any,
              on_done: OnDone | None = None) -> list[Row]:  # fmt: skip
        """Build curves of (scenario data, pairs) jobs; each job's capacities or error."""
        cache_dir = current_cache_dir()
        if self.execution.serial:
            out = []
            for data, pairs in jobs:
                out.append(build_curves(data, pairs, curves, cache_dir))
                if on_done is not None:
                    on_done(out[-1])
            return out
        from distributed import as_completed

        futures = {self.client.submit(build_curves, data, pairs, curves, cache_dir, pure=False,
                                      retries=self.execution.retries): i
                   for i, (data, pairs) in enumerate(jobs)}  # fmt: skip
        out_rows: list[Row] = [{} for _ in jobs]
        for future in as_completed(list(futures)):
            try:
                out_rows[futures[future]] = future.result()
            except Exception as err:  # noqa: BLE001
                out_rows[futures[future]] = {"capacity": {}, "error": f"worker failed: {err}"}
            if on_done is not None:
                on_done(out_rows[futures[future]])
        return out_rows


def curve_jobs(tasks: list[TaskSpec]) -> dict[str, tuple[dict[str, Any], tuple[str, str], Any, str | None, list[int]]]:
    """Curves the tasks need that are not on disk yet: key -> (data, pair, source, dir, plan_ids).

    Only for engine curves with the disk cache on; each plan's curves as written (replications
    whose sampled inputs change a curve build their own).
    """
    from simulator.inference.curve import DEFAULT_SETTINGS, QUICK_SETTINGS, cache_dir, curve_key
    from simulator.scenario.checks import validate_scenario_data

    jobs: dict[str, tuple[dict[str, Any], tuple[str, str], Any, str | None, list[int]]] = {}
    seen: set[int] = set()
    for spec in tasks:
        if spec.plan_id in seen or not isinstance(spec.curves, CurveSource):
            continue
        seen.add(spec.plan_id)
        with cache_env(spec.cache_dir):
            directory = cache_dir()
        if directory is None:
            return {}
        scenario = validate_scenario_data(spec.scenario, None, "curves")
        source = spec.curves.pinned(scenario.seed)
        settings = QUICK_SETTINGS if source.quick else DEFAULT_SETTINGS
        for dep_name, wl_name in dict.fromkeys(routed_pairs(scenario)):
            dep, wl = scenario.deployment(dep_name), scenario.workload(wl_name)
            key = curve_key(scenario, dep, wl, source.seed, settings)
            if key in jobs:
                jobs[key][4].append(spec.plan_id)
            elif not (directory / f"{key}.npz").is_file():
                jobs[key] = (spec.scenario, (dep_name, wl_name), source, spec.cache_dir, [spec.plan_id])
    return jobs


# ---------------------------------------------------------------------- sweeps


def replication_seeds(seed: int, n: int) -> list[np.random.SeedSequence]:
    """The seed sequences of ``n`` replications: ``SeedSequence(seed).spawn(n)``."""
    return np.random.SeedSequence(seed).spawn(n)


def plan_tasks(
    base: Scenario,
    plans: list[PlanSpec],
    replications: int | None,
    curves: Any = ENGINE_CURVES,
) -> tuple[list[TaskSpec], dict[int, Row]]:
    """Tasks for every valid plan x replication, and error rows for plans that fail validation.

    ``replications`` None: one run per plan as written; N: N sampled replications per plan, with
    the same seed sequences for every plan (common random numbers across plans).
    """
    seeds = replication_seeds(base.seed, replications) if replications else [None]
    cache = current_cache_dir()
    tasks: list[TaskSpec] = []
    invalid: dict[int, Row] = {}
    for plan in plans:
        try:
            variant = apply_overrides(base, plan.overrides, plan.label)
        except ScenarioError as err:
            invalid[plan.plan_id] = {"status": "error", "error": problems_text(err), "seed": None}
            continue
        data = scenario_data(variant)
        for r, seed in enumerate(seeds):
            tasks.append(TaskSpec(plan.plan_id, r, data, seed, curves, cache))
    return tasks, invalid


def sweep(
    base: Scenario,
    plans: list[PlanSpec],
    replications: int | None = None,
    executor: Executor | None = None,
    curves: Any = ENGINE_CURVES,
    on_done: OnDone | None = None,
) -> pd.DataFrame:
    """Run every plan (x replication); one row per plan x replication, Pareto front marked."""
    tasks, invalid = plan_tasks(base, plans, replications, curves)
    own = executor is None
    executor = executor or Executor(Execution())
    try:
        rows = executor.run(tasks, on_done)
    finally:
        if own:
            executor.close()
    n = replications or 1
    for plan_id, row in invalid.items():
        for r in range(n):
            rows.append({"plan_id": plan_id, "replication": r} | row)
            if on_done is not None:
                on_done(rows[-1])
    return mark_pareto(rows_frame(rows, plans))


def rows_frame(rows: list[Row], plans: list[PlanSpec]) -> pd.DataFrame:
    """Rows with their plan's label and override columns, sorted by plan then replication."""
    by_id = {p.plan_id: p for p in plans}
    full = [{"plan": by_id[r["plan_id"]].label} | by_id[r["plan_id"]].columns | r for r in rows]
    frame = pd.DataFrame(full)
    if frame.empty:
        return pd.DataFrame(columns=HEAD_COLUMNS)
    frame = frame.sort_values(["plan_id", "replication"], kind="stable").reset_index(drop=True)
    override_cols = [c for c in frame.columns if c.startswith(("set.", "alt."))]
    rest = [c for c in frame.columns if c not in HEAD_COLUMNS and c not in override_cols]
    return frame[HEAD_COLUMNS + override_cols + rest]


def write_parquet(frame: pd.DataFrame, target: str | Path) -> Path:
    """Write the sweep rows as Parquet, atomically (temp file + rename)."""
    from simulator.common.files import write_atomic

    write_atomic(target, lambda tmp: frame.to_parquet(tmp, index=False))
    return Path(target)


def with_months(scenario: Scenario, months: int | None) -> Scenario:
    """The scenario with its horizon shortened to ``months`` (None: as written)."""
    if months is None:
        return scenario
    horizon = scenario.horizon.model_copy(update={"months": months})
    return scenario.model_copy(update={"horizon": horizon})


def worker_environment() -> dict[str, Any]:
    """What Dask's nanny sets in each local worker before it starts: its defaults (one BLAS
    and OpenMP thread) without ``MALLOC_TRIM_THRESHOLD_=65536``, which makes glibc hand every
    freed hourly array back to the kernel (mmap/munmap on each): workers ran the same tasks
    about 2x slower than this process with it."""
    import dask

    from simulator.inference.curve import THREAD_VARIABLES

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    for name in THREAD_VARIABLES:
        environ.setdefault(name, 1)
    return environ
