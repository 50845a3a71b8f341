"""Failures and restarts against theory: simulated means vs the renewal-reward result.

For exponential interruptions at rate Lambda, a segment needing tau seconds of uninterrupted
exposure, and a restart delay R after each interruption (nothing fails during R), the expected
time to get through the segment is E[T] = (1/Lambda + R) (exp(Lambda tau) - 1) and the expected
number of interruptions is exp(Lambda tau) - 1 (geometric number of failed attempts). A run is
a chain of independent segments, so both sum over segments (see RunSpec.expected_wall_s).
Tolerances come from the confidence interval of the simulated mean: |mean - theory| < Z x SE.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.scenario.schema import Scenario
from simulator.training import RunSpec, simulate_run, simulate_training
from simulator.training.jobs import DEFAULT_FAILURES_PER_GPU_DAY
from simulator.training.plan import plan_job

HOUR = 3600.0
#: z-score of the acceptance band (two-sided false-alarm probability ~6e-5 per check).
Z = 4.0


def within_ci(samples: np.ndarray, expected: float) -> tuple[bool, float, float]:
    mean = float(samples.mean())
    se = float(samples.std(ddof=1) / math.sqrt(len(samples)))
    return abs(mean - expected) < Z * se, mean, se


def expected_interruptions(spec: RunSpec) -> float:
    rate = spec.interruption_rate_per_s
    return float(np.expm1(rate * spec.segments_s()).sum())


CASES = {
    # name: (work h, interval h, checkpoint s, restart s, failures /h, pre-emptions /h)
    "rare-failures": (100.0, 2.0, 60.0, 1800.0, 0.02, 0.0),
    "frequent-failures": (40.0, 2.0, 120.0, 1800.0, 0.5, 0.0),  # Lambda tau ~ 1: strongly convex
    "spot-mix": (30.0, 1.0, 60.0, 600.0, 0.2, 0.4),
    "no-checkpoint-cost": (20.0, 3.0, 0.0, 0.0, 0.3, 0.0),
    "uneven-last-segment": (9.5, 2.0, 300.0, 900.0, 0.25, 0.05),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mean_wall_time_matches_renewal_reward(case: str) -> None:
    work_h, interval_h, ckpt_s, restart_s, fail_h, preempt_h = CASES[case]
    spec = RunSpec(work_h * HOUR, interval_h * HOUR, ckpt_s, restart_s, fail_h / HOUR,
                   preempt_h / HOUR)  # fmt: skip
    children = np.random.SeedSequence(20_271_123).spawn(4000)
    outs = [simulate_run(spec, np.random.default_rng(child)) for child in children]
    walls = np.array([o.wall_s for o in outs])
    ok, mean, se = within_ci(walls, spec.expected_wall_s())
    assert ok, (
        f"mean wall {mean / HOUR:.4f} +- {se / HOUR:.4f} h vs theory "
        f"{spec.expected_wall_s() / HOUR:.4f} h"
    )
    counts = np.array([o.failures + o.preemptions for o in outs], dtype=float)
    ok, mean, _ = within_ci(counts, expected_interruptions(spec))
    assert ok, f"mean interruptions {mean:.3f} vs theory {expected_interruptions(spec):.3f}"
    if preempt_h:
        share = spec.preemption_rate_per_s / spec.interruption_rate_per_s
        total = counts.sum()
        observed = sum(o.preemptions for o in outs) / total
        assert abs(observed - share) < Z * math.sqrt(share * (1 - share) / total)


def test_theory_is_not_the_first_order_approximation() -> None:
    """The 'frequent-failures' case separates exp(Lambda tau) from its linearisation."""
    work_h, interval_h, ckpt_s, restart_s, fail_h, _ = CASES["frequent-failures"]
    spec = RunSpec(work_h * HOUR, interval_h * HOUR, ckpt_s, restart_s, fail_h / HOUR)
    rate = spec.interruption_rate_per_s
    linear = sum(tau * (1 + rate * (tau / 2 + restart_s)) for tau in spec.segments_s())
    assert spec.expected_wall_s() > 1.15 * linear


def test_failures_arrive_at_the_per_gpu_day_rate() -> None:
    """Interruptions per exposed GPU-day match the Llama 3 default on a Llama-3-sized job."""
    gpus = 16_384
    rate = DEFAULT_FAILURES_PER_GPU_DAY * gpus / 86_400
    spec = RunSpec(24 * HOUR, 0.5 * HOUR, 0.0, 0.0, rate)  # a day of work, 30-min checkpoints
    children = np.random.SeedSequence(54).spawn(2000)
    outs = [simulate_run(spec, np.random.default_rng(c)) for c in children]
    exposure_s = sum(o.wall_s - o.restart_s for o in outs)
    failures = sum(o.failures for o in outs)
    expected = rate * exposure_s  # Poisson in exposure time
    assert abs(failures - expected) < Z * math.sqrt(expected)
    per_day = failures / (exposure_s / 86_400)
    assert per_day == pytest.approx(419 / 54, rel=0.05)  # the paper's ~7.8 per day


def test_engine_mean_wall_time_matches_theory() -> None:
    """End to end: one job alone on an idle pool, many seeds, against the plan's closed form."""
    scenario = Scenario.model_validate(
        {
            "name": "failure-validation",
            "horizon": {"start": "2027-01-01", "months": 3},
            "pools": [{"name": "p", "gpu": "h100-sxm", "max_gpus": 512,
                       "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 3.0}}],
            "training_jobs": [{"name": "pretrain", "pool": "p", "model": "llama-3-8b",
                               "tokens": 1e12, "gpus": 512, "start": "2027-01-01",
                               "failures_per_gpu_day": 0.01, "checkpoint_interval_hours": 3,
                               "checkpoint_minutes": 2, "restart_minutes": 30}],
        }
    )  # fmt: skip
    spec = plan_job(scenario, 0).spec
    assert 50 * HOUR < spec.work_s < 100 * HOUR
    walls = []
    for seed in range(400):
        runs = simulate_training(scenario, {}, np.random.default_rng(seed)).runs
        assert runs.status.iloc[0] == "finished"
        walls.append(runs.wall_hours.iloc[0] * HOUR)
    ok, mean, _ = within_ci(np.array(walls), spec.expected_wall_s())
    assert ok, f"engine mean {mean / HOUR:.3f} h vs theory {spec.expected_wall_s() / HOUR:.3f} h"
    assert spec.expected_wall_s() > 1.3 * spec.failure_free_wall_s  # failures matter here
