"""What a worker does: run one plan (one replication) and return one flat row of figures.

Tasks are plain picklable objects: the plan's *validated* scenario as plain data
(:func:`~simulator.scenario.loading.scenario_data`), the replication's seed sequence, the curve source and
the curve-cache directory (passed explicitly, so workers on other machines or started before the
variable was set use the same on-disk cache). Results come back as small dicts. A task never
raises for a bad plan: the row says ``status: error`` and why.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.common.errors import ScenarioError
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.schema import Scenario

#: The environment variable of the on-disk latency-curve cache (see simulator.inference.curve).
CACHE_ENV = "FLEETSIM_CACHE_DIR"

#: Requests fewer than this over the whole horizon count as "no unserved requests".
UNSERVED_TOLERANCE = 1.0


@dataclass(frozen=True)
class CurveSource:
    """Latency curves from the inference engine (cached in memory and on disk).

    ``seed``: the seed the curves are simulated with; None uses the scenario's. Replications pin
    it to the plan's own seed, so that they differ in their sampled inputs and training luck, not
    in curve noise, and share the cached curves. ``quick``: shorter simulations (tests).
    """

    seed: int | None = None
    quick: bool = False

    def pinned(self, seed: int) -> CurveSource:
        """The same source with the curve seed fixed (unless already fixed)."""
        return self if self.seed is not None else CurveSource(seed, self.quick)

    def __call__(self, scenario: Scenario, deployment: str, workload: str) -> Any:
        from simulator.inference import deployment_curve

        return deployment_curve(scenario, deployment, workload, seed=self.seed, quick=self.quick)


#: Engine curves as the scenario asks for them (the default curve source).
ENGINE_CURVES = CurveSource()


@dataclass(frozen=True)
class CapacitySource:
    """Capacities per replica (req/s) alone, searched without the curves' load grids: what a
    screening pass that only ranks options needs (see :func:`~simulator.inference.curve.deployment_capacity`)."""

    seed: int | None = None
    quick: bool = True

    def __call__(self, scenario: Scenario, deployment: str, workload: str) -> float:
        from simulator.inference.curve import deployment_capacity

        return deployment_capacity(scenario, deployment, workload, seed=self.seed, quick=self.quick)


@dataclass(frozen=True)
class TaskSpec:
    """One run: a plan's validated scenario data, and how to draw its replication.

    ``seed`` None: run the scenario as written (uncertain inputs at their means, the scenario's
    seed). Otherwise the replication's :class:`numpy.random.SeedSequence`: its first child draws
    the uncertain inputs, its second gives the run's seed (training failures, pre-emptions).
    """

    plan_id: int
    replication: int
    scenario: dict[str, Any]
    seed: np.random.SeedSequence | None = None
    curves: Any = ENGINE_CURVES  # or any picklable (scenario, deployment, workload) -> curve
    cache_dir: str | None = None  # FLEETSIM_CACHE_DIR for the worker (None: leave as it is)


@contextmanager
def cache_env(cache_dir: str | None) -> Iterator[None]:
    """Set FLEETSIM_CACHE_DIR for the duration of a task (restored afterwards)."""
    if cache_dir is None:
        yield
        return
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = cache_dir
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = previous


def current_cache_dir() -> str | None:
    """The client's FLEETSIM_CACHE_DIR, to hand to workers."""
    return os.environ.get(CACHE_ENV)


def run_task(spec: TaskSpec, after: Any = None) -> dict[str, Any]:
    """Run one plan x replication; return its row (never raises for a bad plan).

    ``after`` is ignored: it lets a scheduler order this task after the curve builds it needs.
    """
    row: dict[str, Any] = {"plan_id": spec.plan_id, "replication": spec.replication}
    try:
        with cache_env(spec.cache_dir):
            scenario, run_seed, provider = prepare(spec)
            from simulator.results.runner import run

            result = run(scenario, seed=run_seed, curve_provider=provider)
    except ScenarioError as err:
        return row | {"seed": None, "status": "error", "error": _one_line(err)}
    except Exception as err:  # noqa: BLE001 - a failed plan is recorded, the sweep goes on
        return row | {"seed": None, "status": "error", "error": f"{type(err).__name__}: {err}"}
    return row | {"seed": run_seed, "status": "ok", "error": None} | summary_row(result.summary)


def prepare(spec: TaskSpec) -> tuple[Scenario, int, Callable[..., Any]]:
    """The scenario to run (sampled for a replication), its run seed and curve provider."""
    from simulator.scenario.loading import sample_scenario

    scenario = validate_scenario_data(spec.scenario, None, f"plan {spec.plan_id}")
    provider = spec.curves
    if spec.seed is None:
        return scenario, scenario.seed, provider
    inputs, run_stream = children(spec.seed, 2)
    sampled = sample_scenario(scenario, np.random.default_rng(inputs))
    if isinstance(provider, CurveSource):
        provider = provider.pinned(scenario.seed)
    return sampled, int(run_stream.generate_state(1)[0]), provider


def children(sequence: np.random.SeedSequence, n: int) -> list[np.random.SeedSequence]:
    """``sequence.spawn(n)`` without its side effect: the same children however often asked
    (``spawn`` counts the children already made, so a sequence shared by tasks in one process
    would give each a different stream)."""
    return [
        np.random.SeedSequence(sequence.entropy, spawn_key=(*sequence.spawn_key, i), pool_size=sequence.pool_size)
        for i in range(n)
    ]


def _one_line(err: ScenarioError) -> str:
    return "; ".join(f"{p.dotted()}: {p.message}" for p in err.problems)


# ---------------------------------------------------------------------- curve builds


def build_curves(
    scenario: dict[str, Any], pairs: list[tuple[str, str]], curves: Any, cache_dir: str | None
) -> dict[str, Any]:
    """Build (or load) the curves of ``(deployment, workload)`` pairs into the shared cache.

    Returns each pair's capacity per replica (req/s under the SLO), or the error that stopped it.
    ``curves`` gives a curve per pair, or (a :class:`CapacitySource`) the capacity alone.
    """
    out: dict[str, Any] = {"capacity": {}, "error": None}
    try:
        with cache_env(cache_dir):
            variant = validate_scenario_data(scenario, None, "curve build")
            for deployment, workload in pairs:
                curve = curves(variant, deployment, workload)
                capacity = curve if isinstance(curve, float) else curve.capacity_per_replica
                out["capacity"][f"{deployment}/{workload}"] = float(capacity)
    except ScenarioError as err:
        out["error"] = _one_line(err)
    except Exception as err:  # noqa: BLE001 - reported, never fatal
        out["error"] = f"{type(err).__name__}: {err}"
    return out


def routed_pairs(scenario: Scenario) -> list[tuple[str, str]]:
    """Every (deployment, workload) pair that needs a latency curve."""
    return [(r.deployment, w.name) for w in scenario.workloads for r in w.routes]


# ---------------------------------------------------------------------- rows


def summary_row(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary figures of one run as one flat row (column names in the module docstring
    of :mod:`simulator.sweep.runner`)."""
    row: dict[str, Any] = {
        key: summary[key]
        for key in ("total_cost_usd", "inference_cost_usd", "training_cost_usd", "idle_cost_usd",
                    "gpu_hours_billed", "gpu_hours_busy", "energy_kwh")
    }  # fmt: skip
    for year, cost in summary["cost_by_fiscal_year_usd"].items():
        row[f"fy.{year}.cost_usd"] = cost
    attainments, meets = [], True
    for name, w in summary["workloads"].items():
        for key in ("requests", "unserved_requests", "slo_attainment", "slo_attainment_target", "slo_met",
                    "ttft_p50_ms", "ttft_p95_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p95_ms", "tpot_p99_ms",
                    "cost_usd", "cost_per_million_tokens_usd", "all_in_cost_usd",
                    "all_in_cost_per_million_tokens_usd"):  # fmt: skip
            row[f"workload.{name}.{key}"] = w[key]
        too_long = w.get("unserved_too_long_requests", 0.0)
        row[f"workload.{name}.unserved_too_long_requests"] = too_long
        attainment = effective_attainment(w)
        attainments.append(attainment)
        # Requests past the model's context are refused by any capacity: they count against the
        # attainment target (as misses), not as demand the plan left unserved.
        meets = (meets and bool(w["slo_met"]) and capacity_unserved(w) < UNSERVED_TOLERANCE
                 and attainment >= w["slo_attainment_target"])  # fmt: skip
    for name, p in summary["pools"].items():
        for key in ("gpu", "pricing", "peak_gpus", "mean_utilization", "cost_usd"):
            row[f"pool.{name}.{key}"] = p[key]
    for name, j in summary["training_jobs"].items():
        row[f"job.{name}.cost_usd"] = j["cost_usd"]
        row[f"job.{name}.deadline_missed"] = j["deadline_missed"]
    row["slo_attainment_min"] = min(attainments) if attainments else 1.0
    row["meets_slo"] = meets
    return row


def capacity_unserved(workload: dict[str, Any]) -> float:
    """Requests a workload's plan left unserved for lack of capacity (too-long ones excluded)."""
    return max(workload["unserved_requests"] - workload.get("unserved_too_long_requests", 0.0), 0.0)


def effective_attainment(workload: dict[str, Any]) -> float:
    """Share of the workload's GPU-bound requests that met the SLO, unserved ones counting as
    misses (1.0 for a workload with no such requests)."""
    served = workload.get("requests_served")
    if served is None:
        served = workload["requests"] - workload.get("requests_cache_hits", 0.0) - workload["unserved_requests"]
    unserved = workload["unserved_requests"]
    if served + unserved <= 0:
        return 1.0
    attained = workload["slo_attainment"] or 0.0
    return float(attained * served / (served + unserved))
