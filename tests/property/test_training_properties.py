"""Invariants of the training DES over random scenarios (hypothesis)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.scenario.schema import Scenario
from simulator.training import RunSpec, simulate_run, simulate_training

HOUR = 3600.0
START = dt.date(2027, 1, 1)
MONTHS = 2

jobs_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "gpus": st.integers(2, 16),  # a full 8B fine-tune needs 2 H100s of memory
            "tokens": st.floats(1e7, 3e10),
            "start_day": st.integers(-20, 70),
            "priority": st.integers(0, 2),
            "repeat_every_months": st.none() | st.integers(1, 2),
            "failures_per_gpu_day": st.sampled_from([0.0, 0.01, 0.3]),
            "checkpoint_minutes": st.sampled_from([0.0, 2.0]),
            "checkpoint_interval_hours": st.sampled_from([0.5, 2.0]),
            "restart_minutes": st.sampled_from([0.0, 30.0]),
            "deadline_day": st.none() | st.integers(0, 80),
        }
    ),
    min_size=1,
    max_size=5,
)


def build(jobs: list[dict], spot: bool) -> Scenario:
    pricing = (
        {"kind": "spot", "usd_per_gpu_hour": 1.0, "preemptions_per_gpu_day": 0.2}
        if spot
        else {"kind": "on_demand", "usd_per_gpu_hour": 3.0}
    )
    training_jobs = []
    for i, job in enumerate(jobs):
        entry = {
            k: v for k, v in job.items() if k not in ("start_day", "deadline_day") and v is not None
        }
        entry.update(
            name=f"j{i}", pool="p", model="llama-3-8b",
            start=str(START + dt.timedelta(days=job["start_day"])),
        )  # fmt: skip
        if job["deadline_day"] is not None:
            entry["deadline"] = str(START + dt.timedelta(days=job["deadline_day"]))
        training_jobs.append(entry)
    return Scenario.model_validate(
        {
            "name": "prop",
            "horizon": {"start": str(START), "months": MONTHS},
            "pools": [{"name": "p", "gpu": "h100-sxm", "max_gpus": 16, "pricing": pricing}],
            "training_jobs": training_jobs,
        }
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    jobs=jobs_strategy,
    spot=st.booleans(),
    offer_levels=st.lists(st.integers(0, 16), min_size=1, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_training_invariants(
    jobs: list[dict], spot: bool, offer_levels: list[int], seed: int
) -> None:
    s = build(jobs, spot)
    hours = (s.horizon.end - s.horizon.start).days * 24
    # a piecewise-constant offer changing at arbitrary hours
    offer = np.repeat(offer_levels, math.ceil(hours / len(offer_levels)))[:hours].astype(float)
    result = simulate_training(s, {"p": offer}, np.random.default_rng(seed))
    runs = result.runs
    eps = 1e-9

    # GPU-hours: held >= useful >= 0, and the parts add up
    assert (runs.gpu_hours_useful >= 0).all()
    assert (runs.gpu_hours + eps >= runs.gpu_hours_useful).all()
    parts = runs.gpu_hours_checkpoint + runs.gpu_hours_rework + runs.gpu_hours_restart
    assert np.allclose(runs.gpu_hours_lost, parts)
    assert np.allclose(runs.gpu_hours, runs.gpu_hours_useful + runs.gpu_hours_lost)
    assert (runs[["failures", "preemptions"]] >= 0).all().all()
    if not spot:
        assert (runs.preemptions == 0).all()

    # times: queued <= started <= finished, all inside the horizon
    horizon_end = pd.Timestamp(s.horizon.end)
    started = runs.dropna(subset=["started_at"])
    assert (started.started_at >= started.queued_at).all()
    assert (runs.queued_at >= pd.Timestamp(s.horizon.start)).all()
    assert (started.started_at < horizon_end).all()
    done = runs.dropna(subset=["finished_at"])
    assert (done.finished_at >= done.started_at).all() and (done.finished_at <= horizon_end).all()
    assert np.allclose(done.gpu_hours_useful, done.gpus * done.compute_hours)
    assert set(runs.status) <= {"finished", "running", "queued"}

    # hourly arrays add up to the runs' GPU-hours
    pool = result.gpus_held_by_pool["p"]
    assert pool.shape == (hours,)
    assert math.isclose(pool.sum(), runs.gpu_hours.sum(), rel_tol=1e-9, abs_tol=1e-6)
    for job, held in result.gpus_held_by_job.items():
        assert math.isclose(held.sum(), runs.gpu_hours[runs.job == job].sum(), rel_tol=1e-9,
                            abs_tol=1e-6)  # fmt: skip

    # a run starts only where the offer covers it and every run already running
    start_s = ((started.started_at - pd.Timestamp(s.horizon.start)).dt.total_seconds()).to_numpy()
    end_s = start_s + started.wall_hours.to_numpy() * HOUR
    gpus = started.gpus.to_numpy()
    for t in start_s:  # (1 ms slack: times went through datetimes)
        running = (start_s <= t + 1e-3) & (t < end_s - 1e-3)
        assert gpus[running].sum() <= offer[int((t + 1e-6) // HOUR)] + eps

    # deadlines
    for row in runs.itertuples():
        if pd.isna(row.deadline):
            assert not pd.isna(row.deadline_missed) and not row.deadline_missed
        elif not pd.isna(row.finished_at):
            assert bool(row.deadline_missed) == (row.finished_at > row.deadline)
        elif row.deadline <= horizon_end:
            assert bool(row.deadline_missed)
        else:
            assert pd.isna(row.deadline_missed)


@settings(max_examples=200, deadline=None)
@given(
    work_h=st.floats(0.01, 500),
    interval_h=st.floats(0.1, 12),
    checkpoint_s=st.floats(0, 600),
    restart_s=st.floats(0, 3600),
    failure_per_h=st.floats(0, 2),
    preempt_per_h=st.floats(0, 2),
    limit_h=st.floats(0.01, 1000),
    seed=st.integers(0, 2**32 - 1),
)
def test_run_accounting(
    work_h: float, interval_h: float, checkpoint_s: float, restart_s: float,
    failure_per_h: float, preempt_per_h: float, limit_h: float, seed: int,
) -> None:  # fmt: skip
    spec = RunSpec(work_h * HOUR, interval_h * HOUR, checkpoint_s, restart_s,
                   failure_per_h / HOUR, preempt_per_h / HOUR)  # fmt: skip
    out = simulate_run(spec, np.random.default_rng(seed), limit_s=limit_h * HOUR)
    total = out.useful_s + out.checkpoint_s + out.rework_s + out.restart_s
    assert math.isclose(total, out.wall_s, rel_tol=1e-9, abs_tol=1e-6)
    assert min(out.useful_s, out.checkpoint_s, out.rework_s, out.restart_s) >= -1e-9
    assert out.useful_s <= spec.work_s * (1 + 1e-12)
    assert out.wall_s <= limit_h * HOUR
    if out.finished:
        assert out.useful_s == spec.work_s
        assert out.wall_s >= spec.work_s
    else:
        assert out.wall_s == limit_h * HOUR
