"""The Pareto front of lifetime cost (lower is better) against SLO attainment (higher is better).

A plan is on the front when no other plan is at most as costly *and* at least as good on
attainment, and strictly better on one of the two. With replications a plan is judged by its
mean cost and mean attainment over its successful replications; every row of a plan on the front
is marked ``pareto: true``. Failed plans are never on the front.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COST = "total_cost_usd"
ATTAINMENT = "slo_attainment_min"


def pareto_mask(cost: np.ndarray, attainment: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated points (NaN points are never on the front)."""
    cost = np.asarray(cost, dtype=float)
    attainment = np.asarray(attainment, dtype=float)
    mask = np.zeros(len(cost), dtype=bool)
    valid = np.flatnonzero(~(np.isnan(cost) | np.isnan(attainment)))
    # cheapest first; among equal costs, best attainment first
    order = valid[np.lexsort((-attainment[valid], cost[valid]))]
    best = -np.inf
    last_on_front: tuple[float, float] | None = None
    for i in order:
        point = (float(cost[i]), float(attainment[i]))
        # better attainment than every cheaper point, or an exact duplicate of a front point
        if attainment[i] > best or point == last_on_front:
            mask[i] = True
            best = max(best, float(attainment[i]))
            last_on_front = point
    return mask


def mark_pareto(frame: pd.DataFrame) -> pd.DataFrame:
    """The sweep rows with a boolean ``pareto`` column (see the module docstring)."""
    out = frame.copy()
    if out.empty or COST not in out.columns or ATTAINMENT not in out.columns:
        out["pareto"] = False
        return out
    ok = out[out["status"] == "ok"]
    per_plan = ok.groupby("plan_id")[[COST, ATTAINMENT]].mean()
    on_front = per_plan.index[pareto_mask(per_plan[COST].to_numpy(), per_plan[ATTAINMENT].to_numpy())]
    out["pareto"] = out["plan_id"].isin(on_front) & (out["status"] == "ok")
    return out
