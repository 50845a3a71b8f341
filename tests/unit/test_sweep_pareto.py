"""The Pareto front of lifetime cost against SLO attainment."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulator.sweep.pareto import mark_pareto, pareto_mask


def brute_force(cost, attainment):
    """O(n^2) definition: not dominated by any other point."""
    out = []
    for i in range(len(cost)):
        if np.isnan(cost[i]) or np.isnan(attainment[i]):
            out.append(False)
            continue
        dominated = any(
            cost[j] <= cost[i] and attainment[j] >= attainment[i] and (cost[j] < cost[i] or attainment[j] > attainment[i])
            for j in range(len(cost)) if j != i and not (np.isnan(cost[j]) or np.isnan(attainment[j]))
        )  # fmt: skip
        out.append(not dominated)
    return np.array(out)


def test_hand_example():
    cost = np.array([10.0, 20.0, 15.0, 30.0, 12.0, np.nan])
    attainment = np.array([0.90, 0.99, 0.95, 0.99, 0.89, 1.0])
    # 12 @ .89 is dominated by 10 @ .90; 30 @ .99 by 20 @ .99; the NaN cost is never on it
    assert pareto_mask(cost, attainment).tolist() == [True, True, True, False, False, False]


def test_exact_duplicates_of_a_front_point_are_both_on_it():
    assert pareto_mask(np.array([1.0, 1.0, 2.0]), np.array([0.5, 0.5, 0.4])).tolist() == [True, True, False]


def test_matches_the_definition_on_random_points():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = rng.integers(1, 40)
        cost = rng.integers(0, 10, n).astype(float)  # ties on purpose
        attainment = rng.integers(0, 5, n) / 4
        assert (pareto_mask(cost, attainment) == brute_force(cost, attainment)).all()


def test_plans_with_replications_are_judged_by_their_means_and_errors_never_count():
    frame = pd.DataFrame({
        "plan_id": [0, 0, 1, 1, 2, 3],
        "replication": [0, 1, 0, 1, 0, 0],
        "status": ["ok", "ok", "ok", "ok", "ok", "error"],
        "total_cost_usd": [10.0, 14.0, 11.0, 11.0, 20.0, np.nan],
        "slo_attainment_min": [0.9, 0.9, 0.95, 0.95, 0.94, np.nan],
    })  # fmt: skip
    marked = mark_pareto(frame)
    # plan 0: mean 12 @ .90 is dominated by plan 1 (11 @ .95); plan 2 is dominated by plan 1
    assert marked["pareto"].tolist() == [False, False, True, True, False, False]
