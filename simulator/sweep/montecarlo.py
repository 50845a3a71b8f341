"""Monte Carlo replications: ranges of spend and latency when scenario inputs are uncertain.

Replication ``r`` of a plan draws the scenario's ``uncertainty:`` inputs from its own stream,
``np.random.SeedSequence(scenario.seed).spawn(N)[r]`` (the first of its two children draws the
inputs, the second seeds training failures and pre-emptions), so its figures do not depend on
which worker runs it or in what order; every plan sees the same N draws. The latency curves are
simulated once, with the plan's own seed, and shared by all replications (replications vary what
is uncertain about the world, not the simulation noise of a curve).

Across replications each figure gets P10/P50/P90 (linear interpolation between order
statistics), the mean, and a 90% confidence interval of the mean (Student t).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from simulator.scenario.loading import scenario_for_plan
from simulator.scenario.schema import Scenario
from simulator.sweep.grid import PlanSpec
from simulator.sweep.runner import Executor, OnDone, sweep
from simulator.sweep.tasks import ENGINE_CURVES

#: Student-t quantiles t(0.95, df) for df = 1..30 (two-sided 90% intervals).
_T95 = (6.3138, 2.9200, 2.3534, 2.1318, 2.0150, 1.9432, 1.8946, 1.8595, 1.8331, 1.8125,
        1.7959, 1.7823, 1.7709, 1.7613, 1.7531, 1.7459, 1.7396, 1.7341, 1.7291, 1.7247,
        1.7207, 1.7171, 1.7139, 1.7109, 1.7081, 1.7056, 1.7033, 1.7011, 1.6991, 1.6973)  # fmt: skip

#: Per-workload figures summarised across replications.
WORKLOAD_FIGURES = ("ttft_p95_ms", "tpot_p95_ms", "ttft_p99_ms", "tpot_p99_ms", "slo_attainment",
                    "unserved_requests", "cost_per_million_tokens_usd",
                    "all_in_cost_per_million_tokens_usd")  # fmt: skip
COST_FIGURES = ("total_cost_usd", "inference_cost_usd", "training_cost_usd", "idle_cost_usd")


def t_quantile_95(df: int) -> float:
    """t(0.95, df): half-width factor of a two-sided 90% interval."""
    if df < 1:
        return math.nan
    if df <= len(_T95):
        return _T95[df - 1]
    z = 1.6448536  # Cornish-Fisher expansion of t around the normal quantile
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def stats(values: Any) -> dict[str, float | int | None]:
    """P10/P50/P90, mean, sd and the 90% CI of the mean of the finite values."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return {"n": 0, "p10": None, "p50": None, "p90": None, "mean": None, "sd": None,
                "ci90_low": None, "ci90_high": None}  # fmt: skip
    p10, p50, p90 = (float(v) for v in np.percentile(x, [10, 50, 90]))
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else 0.0
    half = t_quantile_95(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "p10": p10, "p50": p50, "p90": p90, "mean": mean, "sd": sd,
            "ci90_low": None if math.isnan(half) else mean - half,
            "ci90_high": None if math.isnan(half) else mean + half}  # fmt: skip


def plan_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """Ranges of one plan's figures across its replications (rows of one plan_id)."""
    ok = rows[rows["status"] == "ok"]
    out: dict[str, Any] = {
        "plan": str(rows["plan"].iloc[0]),
        "replications": len(rows),
        "failed": int((rows["status"] != "ok").sum()),
        "errors": sorted({str(e) for e in rows.loc[rows["status"] != "ok", "error"]}),
    }
    for figure in COST_FIGURES:
        out[figure] = stats(ok[figure]) if figure in ok else stats([])
    years = [c for c in ok.columns if c.startswith("fy.") and c.endswith(".cost_usd")]
    out["cost_by_fiscal_year_usd"] = {c.split(".")[1]: stats(ok[c]) for c in years}
    workloads: dict[str, Any] = {}
    for column in ok.columns:
        if column.startswith("workload.") and column.endswith(".slo_met"):
            name = column[len("workload.") : -len(".slo_met")]
            figures: dict[str, Any] = {f: stats(ok[f"workload.{name}.{f}"]) for f in WORKLOAD_FIGURES}
            figures["slo_met_share"] = float(ok[column].astype(bool).mean()) if len(ok) else None
            workloads[name] = figures
    out["workloads"] = workloads
    out["meets_slo_share"] = float(ok["meets_slo"].astype(bool).mean()) if len(ok) and "meets_slo" in ok else None
    return out


def summaries(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """:func:`plan_summary` of every plan of a sweep frame, in plan order."""
    return [plan_summary(rows) for _, rows in frame.groupby("plan_id", sort=True)]


def replicate(
    scenario: Scenario,
    plans: list[str],
    replications: int,
    executor: Executor | None = None,
    curves: Any = ENGINE_CURVES,
    on_done: OnDone | None = None,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """``replications`` sampled runs of each named plan ('base' = as written).

    Returns the rows (one per plan x replication, as a sweep's) and each plan's ranges
    (:func:`plan_summary`) plus the uncertain inputs drawn. An unknown or invalid plan raises
    ScenarioError (as ``fleetsim run`` does).
    """
    specs = []
    for plan_id, name in enumerate(plans):
        scenario_for_plan(scenario, name)  # raises for an unknown or invalid plan
        overrides = {} if name in (None, "base") else dict(scenario.plan(name).set)
        specs.append(PlanSpec(plan_id, name or "base", overrides, {}))
    frame = sweep(scenario, specs, replications, executor, curves, on_done)
    out = summaries(frame)
    for summary in out:
        summary |= {"scenario": scenario.name, "seed": scenario.seed,
                    "uncertain_inputs": sorted(scenario.uncertainty)}  # fmt: skip
    return frame, out
