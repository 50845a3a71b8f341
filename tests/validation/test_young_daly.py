"""The default checkpoint interval (Young-Daly) minimises the mean wall time of a run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.training.jobs import RunSpec, simulate_run, young_daly_interval_s

HOUR = 3600.0


@pytest.mark.parametrize(("checkpoint_s", "mtbf_s"), [(2.8, 3.1 * HOUR), (120, HOUR), (600, 6 * HOUR), (30, 20 * HOUR)])
def test_closed_form_mean_is_lowest_at_the_default(checkpoint_s: float, mtbf_s: float) -> None:
    work = 200 * HOUR
    tau = young_daly_interval_s(checkpoint_s, 1 / mtbf_s, work)
    assert tau == pytest.approx(math.sqrt(2 * checkpoint_s * mtbf_s), rel=0.1)  # Young to first order

    def mean(interval: float) -> float:
        spec = RunSpec(work, interval, checkpoint_s, 600.0, 1 / mtbf_s)
        return spec.expected_wall_s()

    best = mean(tau)
    for factor in (0.5, 0.8, 0.95, 1.05, 1.25, 2.0):
        assert best <= mean(tau * factor) * (1 + 1e-3)  # within 0.1% of the optimum


def test_simulated_mean_is_lowest_near_the_default() -> None:
    work, checkpoint_s, mtbf = 100 * HOUR, 120.0, HOUR
    tau = young_daly_interval_s(checkpoint_s, 1 / mtbf, work)
    rng = np.random.default_rng(11)
    means, errors = {}, {}
    for factor in (0.5, 1.0, 2.0):
        spec = RunSpec(work, tau * factor, checkpoint_s, 300.0, 1 / mtbf)
        walls = np.array([simulate_run(spec, rng).wall_s for _ in range(300)])
        means[factor], errors[factor] = walls.mean(), walls.std(ddof=1) / math.sqrt(len(walls))
        # the simulation agrees with the closed form it is sampled from
        assert abs(means[factor] - spec.expected_wall_s()) < 4 * errors[factor]
    for factor in (0.5, 2.0):
        gap = means[factor] - means[1.0]
        assert gap > 4 * math.hypot(errors[factor], errors[1.0])


def test_no_failures_no_checkpoints() -> None:
    assert young_daly_interval_s(60.0, 0.0, 10 * HOUR) == 10 * HOUR
    assert young_daly_interval_s(0.0, 1 / HOUR, 10 * HOUR) == 60.0  # free checkpoints: the floor
