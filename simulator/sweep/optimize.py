"""``fleetsim optimize``: the cheapest plan that meets every workload's SLO over the horizon.

A plan *meets the SLO* when every workload's ``slo_met`` holds over the whole horizon, no
request went unserved for lack of capacity (:data:`~simulator.sweep.tasks.UNSERVED_TOLERANCE`)
and the attainment still meets its target with requests past the model's context counted as
misses (they are refused whatever the capacity).

With a grid (``--search``) every plan of the grid is run and the cheapest that meets the SLO
wins. Without one, the default space of :mod:`simulator.sweep.space` is searched in stages, so
that the expensive part, latency curves, is done once per (GPU, deployment, TP, dtype):

1. **screening**: the capacity per replica under the SLO of every deployment option on every
   candidate GPU, from short simulations and without the curves' load grids, in parallel; an option whose capacity is zero can
   never meet the SLO and is dropped; the others are ranked by $ per hour per req/s of capacity;
2. **hardware**: plans combining one of the :attr:`Optimizer.top_options` best options of each
   deployment (best summed rank first, at most :attr:`Optimizer.max_hardware_plans`), every
   serving pool bought on demand, plus the scenario as written; these run with full curves
   (built once each, in parallel, into the shared on-disk cache);
3. **buying**: for the cheapest hardware plans that meet the SLO, each pool's ways of buying
   (:func:`~simulator.sweep.space.pricing_options`), one pool at a time; pools are billed
   independently, so the cheapest way per pool is then combined and run once more.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from simulator.common.errors import ScenarioError
from simulator.scenario.paths import get_by_path, scenario_data
from simulator.scenario.schema import Scenario
from simulator.sweep import space
from simulator.sweep.grid import PlanSpec, apply_overrides
from simulator.sweep.runner import Executor, OnDone, sweep
from simulator.sweep.tasks import (
    ENGINE_CURVES,
    UNSERVED_TOLERANCE,
    CapacitySource,
    CurveSource,
    capacity_unserved,
    routed_pairs,
)

OnStage = Callable[[str, int], None]


@dataclass
class OptimizeResult:
    """Every plan evaluated (``frame``, with a ``stage`` column) and the choice among them."""

    scenario: Scenario
    frame: pd.DataFrame
    plans: dict[int, PlanSpec]
    base_id: int | None
    dropped_options: list[dict[str, Any]] = field(default_factory=list)
    curves: int = 0

    @property
    def feasible(self) -> pd.DataFrame:
        """Plans that ran and meet every SLO, cheapest first."""
        ok = self.frame[(self.frame["status"] == "ok") & self.frame["meets_slo"].astype(bool)]
        return ok.sort_values(["total_cost_usd", "plan_id"], kind="stable")

    @property
    def winner(self) -> dict[str, Any] | None:
        rows = self.feasible
        return None if rows.empty else rows.iloc[0].to_dict()

    def runners_up(self, n: int = 3) -> list[dict[str, Any]]:
        """The next cheapest plans meeting the SLO (distinct plans)."""
        rows = self.feasible.drop_duplicates("plan", keep="first")
        return [r.to_dict() for _, r in rows.iloc[1 : n + 1].iterrows()]

    def cheaper_failures(self, n: int = 5) -> tuple[list[dict[str, Any]], int]:
        """The cheapest plans (up to n) that cost less than the winner but fail, with reasons;
        and how many such plans there were in all."""
        winner = self.winner
        ran = self.frame[self.frame["status"] == "ok"]
        failed = ran[~ran["meets_slo"].astype(bool)]
        if winner is not None:
            failed = failed[failed["total_cost_usd"] < winner["total_cost_usd"]]
        failed = failed.sort_values("total_cost_usd", kind="stable").drop_duplicates("plan")
        rows = [r.to_dict() | {"reasons": failure_reasons(r.to_dict())} for _, r in failed.head(n).iterrows()]
        return rows, len(failed)

    def invalid(self) -> list[dict[str, Any]]:
        """Plans that could not run (validation errors), with their errors."""
        bad = self.frame[self.frame["status"] != "ok"].drop_duplicates("plan")
        return [{"plan": r["plan"], "error": r["error"]} for _, r in bad.iterrows()]

    def changes(self, plan_id: int) -> dict[str, Any]:
        """The plan's overrides that differ from the scenario as written."""
        plan = self.plans[plan_id]
        base = scenario_data(self.scenario)
        variant = scenario_data(apply_overrides(self.scenario, plan.overrides))
        out = {}
        for path, value in plan.overrides.items():
            if get_by_path(variant, path) != get_by_path(base, path):
                out[path] = value
        return out

    def plan_entry(self, name: str = "optimized") -> dict[str, Any] | None:
        """The winner as a ``plans:`` entry of the scenario file."""
        winner = self.winner
        if winner is None:
            return None
        months = self.scenario.horizon.months
        return {
            "name": name,
            "description": f"cheapest plan meeting every SLO found by fleetsim optimize: "
                           f"${winner['total_cost_usd']:,.0f} over {months} months",
            "set": self.changes(int(winner["plan_id"])),
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the winner, runners-up, cheaper failures, invalid plans, the plan entry."""
        base = self.frame[self.frame["plan_id"] == self.base_id] if self.base_id is not None else None
        failures, n_failures = self.cheaper_failures()
        winner = self.winner
        return {
            "scenario": self.scenario.name,
            "plans_evaluated": int(self.frame["plan"].nunique()),
            "curves": self.curves,
            "winner": brief(winner) | {"changes": self.changes(int(winner["plan_id"]))} if winner else None,
            "as_written": brief(base.iloc[0].to_dict()) if base is not None and len(base) else None,
            "runners_up": [brief(r) for r in self.runners_up()],
            "cheaper_failures": [brief(r) | {"reasons": r["reasons"]} for r in failures],
            "cheaper_failures_total": n_failures,
            "invalid_plans": self.invalid(),
            "dropped_options": self.dropped_options,
            "plan_entry": self.plan_entry(),
        }


def brief(row: dict[str, Any]) -> dict[str, Any]:
    """A row's headline figures."""
    out = {key: _plain(row.get(key)) for key in ("plan", "status", "total_cost_usd", "inference_cost_usd",
                                                  "training_cost_usd", "idle_cost_usd", "meets_slo",
                                                  "slo_attainment_min")}  # fmt: skip
    out["pools"] = {c.split(".")[1]: _plain(row[c]) for c in row if c.startswith("pool.") and c.endswith(".peak_gpus")}
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def failure_reasons(row: dict[str, Any]) -> list[str]:
    """Why a plan does not meet the SLO: which workload missed it or had unserved demand."""
    if row.get("status") != "ok":
        return [f"invalid: {row.get('error')}"]
    reasons = []
    for column in sorted(c for c in row if c.startswith("workload.") and c.endswith(".slo_met")):
        name = column[len("workload.") : -len(".slo_met")]
        attainment = _plain(row.get(f"workload.{name}.slo_attainment"))
        target = _plain(row.get(f"workload.{name}.slo_attainment_target"))
        too_long = _plain(row.get(f"workload.{name}.unserved_too_long_requests")) or 0.0
        unserved = capacity_unserved({"unserved_requests": _plain(row.get(f"workload.{name}.unserved_requests")) or 0.0,
                                      "unserved_too_long_requests": too_long})  # fmt: skip
        if not bool(row[column]):
            shown = "no requests served" if attainment is None else f"{attainment:.1%}"
            reasons.append(f"{name}: SLO attainment {shown} < target {target:.0%}")
        if unserved >= UNSERVED_TOLERANCE:
            reasons.append(f"{name}: {unserved:,.0f} requests unserved for lack of capacity")
        elif bool(row[column]) and too_long >= UNSERVED_TOLERANCE and not row.get("meets_slo", True):
            reasons.append(f"{name}: {too_long:,.0f} requests past the model's context, counted as SLO "
                           "misses, bring the attainment under its target")  # fmt: skip
    return reasons


# ---------------------------------------------------------------------- the search


class Optimizer:
    """Runs the search of the module docstring on an :class:`Executor`."""

    max_hardware_plans: int = 64  #: most plans of stage 2
    top_options: int = 4  #: best-ranked options per deployment and GPU combined in stage 2
    top_hardware: int = 3  #: hardware plans whose ways of buying are searched in stage 3

    def __init__(
        self,
        scenario: Scenario,
        executor: Executor,
        curves: Any = ENGINE_CURVES,
        on_stage: OnStage | None = None,
        on_done: OnDone | None = None,
    ) -> None:
        self.scenario = scenario
        self.executor = executor
        self.curves = curves
        self.on_stage = on_stage or (lambda _description, _total: None)
        self.on_done = on_done
        self.plans: dict[int, PlanSpec] = {}
        self.frames: list[pd.DataFrame] = []

    # ------------------------------------------------------------------ helpers

    def _plan(self, label: str, overrides: dict[str, Any]) -> PlanSpec:
        plan = PlanSpec(len(self.plans), label, overrides, {})
        self.plans[plan.plan_id] = plan
        return plan

    def _run(self, stage: str, plans: list[PlanSpec]) -> pd.DataFrame:
        self.on_stage(stage, len(plans))
        frame = sweep(self.scenario, plans, None, self.executor, self.curves, self.on_done)
        frame["stage"] = stage
        self.frames.append(frame)
        return frame

    def _result(self, base_id: int | None, dropped: list[dict[str, Any]], curves: int) -> OptimizeResult:
        frame = pd.concat(self.frames, ignore_index=True) if self.frames else pd.DataFrame()
        return OptimizeResult(self.scenario, frame, self.plans, base_id, dropped, curves)

    # ------------------------------------------------------------------ grid

    def search_grid(self, plans: list[PlanSpec]) -> OptimizeResult:
        """Run every plan of a grid; the cheapest meeting the SLO wins."""
        base = self._plan("as written", {})
        specs = [self._plan(p.label, p.overrides) for p in plans]
        self._run("grid", [base] + specs)
        return self._result(base.plan_id, [], 0)

    # ------------------------------------------------------------------ default space

    def search(self, gpus: list[str] | None = None) -> OptimizeResult:
        """The staged search of the default space."""
        pools = space.serving_pools(self.scenario)
        candidates, dropped, n_curves = self._curve_stage(pools, gpus)
        base = self._plan("as written", {})
        hardware = [self._plan(label, overrides) for label, overrides in self._hardware_plans(pools, candidates)]
        stage2 = self._run("hardware", [base] + hardware)
        ok = stage2[(stage2["status"] == "ok") & stage2["meets_slo"].astype(bool) & (stage2["plan_id"] != base.plan_id)]
        best = ok.sort_values(["total_cost_usd", "plan_id"], kind="stable").head(self.top_hardware)
        for _, row in best.iterrows():
            self._buying_stage(self.plans[int(row["plan_id"])], row.to_dict())
        return self._result(base.plan_id, dropped, n_curves)

    def _curve_stage(
        self, pools: list[Any], gpus: list[str] | None
    ) -> tuple[dict[tuple[str, str], dict[str, list[tuple[float, space.Option]]]], list[dict[str, Any]], int]:
        """Capacity of every option: {(pool, gpu): {deployment: [(score, option)]}}, dropped options."""
        jobs: list[tuple[dict[str, Any], list[tuple[str, str]]]] = []
        keys: list[tuple[str, str, space.Option]] = []
        dropped: list[dict[str, Any]] = []
        for pool in pools:
            deployments = [d for d in self.scenario.deployments if d.pool == pool.name]
            for gpu in space.candidate_gpus(self.scenario, pool, gpus):
                options = {d.name: space.deployment_options(self.scenario, pool, gpu, d) for d in deployments}
                unfit = [d for d, opts in options.items() if not opts]
                if unfit:
                    dropped.append({"pool": pool.name, "gpu": gpu, "option": None,
                                    "reason": f"{', '.join(unfit)} fits at no TP/dtype on {gpu}"})  # fmt: skip
                    continue
                od, _ = space.prices(self.scenario, pool, gpu)
                for dep in deployments:
                    for option in options[dep.name]:
                        others = [opts[0] for name, opts in options.items() if name != dep.name]
                        overrides = self._gpu_overrides(pool.name, gpu, od) | option.overrides()
                        for other in others:
                            overrides |= other.overrides()
                        try:
                            variant = apply_overrides(self.scenario, overrides)
                        except ScenarioError as err:
                            dropped.append({"pool": pool.name, "gpu": gpu, "option": option.label,
                                            "reason": "; ".join(p.message for p in err.problems)})  # fmt: skip
                            continue
                        pairs = [p for p in routed_pairs(variant) if p[0] == dep.name]
                        jobs.append((scenario_data(variant), pairs))
                        keys.append((pool.name, gpu, option))
        self.on_stage("screening", len(jobs))
        screen = CapacitySource(self.curves.seed) if isinstance(self.curves, CurveSource) else self.curves
        results = self.executor.build(jobs, screen, self.on_done)
        candidates: dict[tuple[str, str], dict[str, list[tuple[float, space.Option]]]] = {}
        for (pool_name, gpu, option), result in zip(keys, results, strict=True):
            capacity = min(result["capacity"].values(), default=0.0) if not result["error"] else 0.0
            if capacity <= 0:
                reason = result["error"] or "cannot meet the SLO at any load (capacity 0)"
                dropped.append({"pool": pool_name, "gpu": gpu, "option": option.label, "reason": reason})
                continue
            od, _ = space.prices(self.scenario, self.scenario.pool(pool_name), gpu)
            unit = option.gpus_per_replica(self.scenario.deployment(option.deployment))  # P + D: all GPUs
            score = unit * od / capacity  # $ per hour per req/s of capacity
            per_dep = candidates.setdefault((pool_name, gpu), {})
            per_dep.setdefault(option.deployment, []).append((score, option))
        for (pool_name, gpu), per_dep in list(candidates.items()):
            deployments = [d.name for d in self.scenario.deployments if d.pool == pool_name]
            if any(d not in per_dep for d in deployments):
                del candidates[(pool_name, gpu)]
        return candidates, dropped, len(jobs)

    def _gpu_overrides(self, pool: str, gpu: str, on_demand_price: float) -> dict[str, Any]:
        return {f"pools.{pool}.gpu": gpu, f"pools.{pool}.pricing": space.on_demand(on_demand_price)}

    def _hardware_plans(
        self, pools: list[Any], candidates: dict[tuple[str, str], dict[str, list[tuple[float, space.Option]]]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Hardware combinations, best summed score first, at most max_hardware_plans."""
        per_pool: list[list[tuple[float, str, dict[str, Any]]]] = []
        for pool in pools:
            combos = []
            for (pool_name, gpu), per_dep in candidates.items():
                if pool_name != pool.name:
                    continue
                od, _ = space.prices(self.scenario, pool, gpu)
                lists = [sorted(v, key=lambda so: (so[0], so[1].tensor_parallel))[: self.top_options]
                         for v in per_dep.values()]  # fmt: skip
                for choice in itertools.product(*lists):
                    overrides = self._gpu_overrides(pool.name, gpu, od)
                    for _, option in choice:
                        overrides |= option.overrides()
                    label = f"{pool.name}={gpu} " + ", ".join(o.label for _, o in choice)
                    combos.append((sum(s for s, _ in choice), label, overrides))
            per_pool.append(sorted(combos, key=lambda c: c[0])[: self.max_hardware_plans])
        plans = []
        for choice in itertools.product(*per_pool):
            overrides: dict[str, Any] = {}
            for _, _, o in choice:
                overrides |= o
            plans.append((sum(c[0] for c in choice), "; ".join(c[1] for c in choice), overrides))
        plans.sort(key=lambda p: p[0])
        return [(label, overrides) for _, label, overrides in plans[: self.max_hardware_plans]]

    def _buying_stage(self, plan: PlanSpec, row: dict[str, Any]) -> None:
        """Each pool's ways of buying, one pool at a time; then the best per pool together."""
        variant = apply_overrides(self.scenario, plan.overrides)
        trials: dict[str, list[tuple[PlanSpec, dict[str, Any]]]] = {}
        for pool in variant.pools:
            peak = row.get(f"pool.{pool.name}.peak_gpus") or 0.0
            if peak <= 0:
                continue
            current = plan.overrides.get(f"pools.{pool.name}.pricing")
            for option in space.pricing_options(variant, pool, pool.gpu, float(peak)):
                if option == current:
                    continue
                overrides = copy.deepcopy(plan.overrides) | {f"pools.{pool.name}.pricing": option}
                trial = self._plan(f"{plan.label}; {pool.name} {_pricing_label(option)}", overrides)
                trials.setdefault(pool.name, []).append((trial, option))
        specs = [t for options in trials.values() for t, _ in options]
        frame = self._run("buying", specs)
        by_id = {int(r["plan_id"]): r for _, r in frame.iterrows()}
        combined = copy.deepcopy(plan.overrides)
        labels = []
        for pool_name, options in trials.items():
            best_cost = row.get(f"pool.{pool_name}.cost_usd")
            for trial, option in options:
                r = by_id[trial.plan_id]
                cost = r.get(f"pool.{pool_name}.cost_usd")
                if r["status"] == "ok" and bool(r["meets_slo"]) and cost is not None and cost < best_cost:
                    best_cost = cost
                    combined[f"pools.{pool_name}.pricing"] = option
            if combined.get(f"pools.{pool_name}.pricing") != plan.overrides.get(f"pools.{pool_name}.pricing"):
                labels.append(f"{pool_name} {_pricing_label(combined[f'pools.{pool_name}.pricing'])}")
        if len(labels) > 1:
            self._run("combined", [self._plan(f"{plan.label}; " + "; ".join(labels), combined)])


def _pricing_label(pricing: dict[str, Any]) -> str:
    kind = pricing.get("kind", "?")
    if kind == "reserved":
        return f"reserved {pricing.get('committed_gpus')} GPUs"
    return str(kind).replace("_", "-")


def optimize(
    scenario: Scenario,
    executor: Executor,
    plans: list[PlanSpec] | None = None,
    gpus: list[str] | None = None,
    curves: Any = ENGINE_CURVES,
    on_stage: OnStage | None = None,
    on_done: OnDone | None = None,
) -> OptimizeResult:
    """Search a grid's plans (``plans``) or the default space for the cheapest plan meeting the SLO."""
    optimizer = Optimizer(scenario, executor, curves, on_stage, on_done)
    return optimizer.search_grid(plans) if plans is not None else optimizer.search(gpus)


__all__ = ["OptimizeResult", "Optimizer", "failure_reasons", "optimize"]
