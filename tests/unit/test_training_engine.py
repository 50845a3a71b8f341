"""The training DES: exact times, queue order, capacity, horizon end, deadlines, determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from simulator.perf.roofline import training_flops
from simulator.scenario.resolve import gpu_of, model_of
from simulator.scenario.schema import Scenario
from simulator.training import TrainingResult, simulate_training
from simulator.training.hourly import add_interval
from simulator.training.plan import plan_job

HOUR = 3600.0
#: No failures, free checkpoints, a fixed MFU: runs take exactly their compute time (the layout
#: model's own speed is tested in tests/unit/test_perf_training.py).
CLEAN = {"failures_per_gpu_day": 0, "checkpoint_minutes": 0, "mfu": 0.4}


def scenario(
    jobs: list[dict[str, Any]],
    *,
    max_gpus: int = 8,
    months: int = 2,
    pricing: dict[str, Any] | None = None,
) -> Scenario:
    """One pool 'p' of h100-sxm; each job defaults to llama-3-8b on 8 GPUs from day 0, CLEAN."""
    base = {"pool": "p", "model": "llama-3-8b", "tokens": 1e9, "gpus": 8, "start": "2027-01-01"}
    return Scenario.model_validate(
        {
            "name": "engine-test",
            "horizon": {"start": "2027-01-01", "months": months},
            "pools": [
                {"name": "p", "gpu": "h100-sxm", "max_gpus": max_gpus,
                 "pricing": pricing or {"kind": "on_demand", "usd_per_gpu_hour": 3.0}},
            ],
            "training_jobs": [{"name": f"j{i}", **base, **CLEAN, **job} for i, job in enumerate(jobs)],
        }
    )  # fmt: skip


def run(s: Scenario, offer: np.ndarray | None = None, seed: int = 0) -> TrainingResult:
    return simulate_training(s, {} if offer is None else {"p": offer}, np.random.default_rng(seed))


def hours_of(s: Scenario) -> int:
    return (s.horizon.end - s.horizon.start).days * 24


def compute_s(tokens: float, gpus: int, mfu: float, tflops: float = 989.0) -> float:
    s = scenario([])
    flops = training_flops(model_of(s, "llama-3-8b"), tokens, 8192)
    assert gpu_of(s, s.pool("p")).bf16_tflops == 989.0
    return flops / (gpus * tflops * 1e12 * mfu)


def starts(result: TrainingResult) -> list[tuple[str, str]]:
    ev = result.events
    return [(e, j) for e, j in zip(ev.event, ev.job, strict=True) if e in ("start", "finish")]


# ---- exact time alone ------------------------------------------------------------------------


@pytest.mark.parametrize(("tokens", "gpus", "mfu"), [(1e9, 8, 0.4), (3.3e10, 4, 0.35)])
def test_alone_on_idle_pool_takes_exactly_the_compute_time(
    tokens: float, gpus: int, mfu: float
) -> None:
    s = scenario([{"tokens": tokens, "gpus": gpus, "mfu": mfu, "start": "2027-01-03"}])
    row = run(s).runs.iloc[0]
    expected = compute_s(tokens, gpus, mfu)
    assert row.wall_hours * HOUR == pytest.approx(expected, rel=1e-14)
    assert row.compute_hours * HOUR == pytest.approx(expected, rel=1e-14)
    assert row.started_at == pd.Timestamp("2027-01-03") == row.queued_at
    span = (row.finished_at - row.started_at).total_seconds()
    assert span == pytest.approx(expected, abs=1e-6)
    assert row.gpu_hours == pytest.approx(gpus * expected / HOUR, rel=1e-14)
    assert row.gpu_hours_useful == row.gpu_hours and row.gpu_hours_lost == 0
    assert (row.failures, row.preemptions, row.status) == (0, 0, "finished")


def test_default_mfu_is_the_layout_models() -> None:
    row = run(scenario([{"mfu": None}])).runs.iloc[0]
    plan = plan_job(scenario([{"mfu": None}]), 0)
    assert plan.mfu_source == "model:h100-sxm" and 0.2 < row.mfu < 0.6
    assert row.mfu == pytest.approx(plan.mfu, rel=1e-12)
    assert row.wall_hours * HOUR == pytest.approx(compute_s(1e9, 8, row.mfu), rel=1e-12)


def test_fp8_runs_at_fp8_peak() -> None:
    row = run(scenario([{"dtype": "fp8", "mfu": 0.3}])).runs.iloc[0]
    assert row.wall_hours * HOUR == pytest.approx(compute_s(1e9, 8, 0.3, tflops=1979.0), rel=1e-14)


# ---- queue order --------------------------------------------------------------------------------


def test_priority_then_fifo_event_order() -> None:
    # four 8-GPU jobs on an 8-GPU pool, all released at once: they run one after another
    s = scenario([{"priority": 0}, {"priority": 0}, {"priority": 5}, {"priority": 5}])
    result = run(s)
    assert starts(result) == [
        ("start", "j2"), ("finish", "j2"), ("start", "j3"), ("finish", "j3"),
        ("start", "j0"), ("finish", "j0"), ("start", "j1"), ("finish", "j1"),
    ]  # fmt: skip
    ev = result.events
    assert list(ev.event[:4]) == ["release"] * 4
    runs = result.runs.set_index("job")
    for before, after in [("j2", "j3"), ("j3", "j0"), ("j0", "j1")]:
        assert runs.started_at[after] == runs.finished_at[before]
    assert (runs.queued_at == pd.Timestamp("2027-01-01")).all()


def test_earlier_release_goes_first_among_equal_priority() -> None:
    # j0 runs; j1 (released day 2) and j2 (released day 1) wait; j2 was queued first
    s = scenario(
        [
            {"tokens": 2e11},  # about 40 days on 8 GPUs: both others wait
            {"start": "2027-01-03"},
            {"start": "2027-01-02"},
        ]
    )
    assert starts(run(s)) == [
        ("start", "j0"), ("finish", "j0"), ("start", "j2"), ("finish", "j2"),
        ("start", "j1"), ("finish", "j1"),
    ]  # fmt: skip


def test_higher_priority_released_later_overtakes_the_queue_not_the_runner() -> None:
    s = scenario(
        [{"tokens": 2e11}, {"start": "2027-01-02"}, {"start": "2027-01-03", "priority": 9}]
    )
    assert starts(run(s)) == [
        ("start", "j0"), ("finish", "j0"), ("start", "j2"), ("finish", "j2"),
        ("start", "j1"), ("finish", "j1"),
    ]  # fmt: skip


def test_strict_fifo_big_head_blocks_smaller_jobs_behind_it() -> None:
    # j0 holds 4 of 8; j1 needs 8 and waits; j2 needs 4 and would fit now but queues behind j1
    s = scenario(
        [
            {"gpus": 4, "tokens": 1e11},
            {"gpus": 8, "start": "2027-01-02"},
            {"gpus": 4, "start": "2027-01-02", "tokens": 1e8},
        ]
    )
    runs = run(s).runs.set_index("job")
    assert runs.started_at["j0"] == pd.Timestamp("2027-01-01")
    assert runs.finished_at["j0"] > pd.Timestamp("2027-01-02")  # j0 is still running then
    assert runs.started_at["j1"] == runs.finished_at["j0"]
    assert runs.started_at["j2"] == runs.finished_at["j1"]


def test_small_jobs_run_side_by_side() -> None:
    s = scenario([{"gpus": 4}, {"gpus": 4}, {"gpus": 4}])
    runs = run(s).runs.set_index("job")
    assert runs.started_at["j0"] == runs.started_at["j1"] == pd.Timestamp("2027-01-01")
    assert runs.started_at["j2"] == min(runs.finished_at["j0"], runs.finished_at["j1"])


# ---- capacity ----------------------------------------------------------------------------------


def test_waits_for_capacity_until_the_hour_it_appears() -> None:
    s = scenario([{}], max_gpus=16)
    offer = np.full(hours_of(s), 16.0)
    offer[:10] = 7.5  # not enough for 8 GPUs until hour 10
    row = run(s, offer).runs.iloc[0]
    assert row.started_at == pd.Timestamp("2027-01-01 10:00")
    assert row.queued_at == pd.Timestamp("2027-01-01")


def test_capacity_freed_mid_hour_by_a_finish_is_used_at_once() -> None:
    s = scenario([{"gpus": 8, "tokens": 3e8}, {"gpus": 8, "start": "2027-01-01"}])
    runs = run(s).runs.set_index("job")
    assert runs.finished_at["j0"].minute != 0 or runs.finished_at["j0"].second != 0
    assert runs.started_at["j1"] == runs.finished_at["j0"]


def test_running_training_is_not_preempted_when_the_offer_drops() -> None:
    s = scenario([{"tokens": 5e10}])
    offer = np.zeros(hours_of(s))
    offer[:2] = 8
    result = run(s, offer)
    row = result.runs.iloc[0]
    assert row.started_at == pd.Timestamp("2027-01-01") and row.status == "finished"
    assert row.wall_hours > 2
    assert result.gpus_held_by_pool["p"][5] == 8  # above the offer of 0: documented


def test_never_starts_when_the_pool_never_has_room() -> None:
    s = scenario([{}, {"gpus": 2}])
    result = run(s, np.full(hours_of(s), 7.0))
    runs = result.runs.set_index("job")
    assert runs.status["j0"] == "queued" and pd.isna(runs.started_at["j0"])
    assert runs.gpu_hours["j0"] == 0 and runs.gpu_hours_useful["j0"] == 0
    assert runs.status["j1"] == "queued"  # blocked behind j0: strict FIFO
    assert result.gpus_held_by_pool["p"].sum() == 0


def test_held_never_exceeds_a_constant_offer() -> None:
    s = scenario([{"gpus": g, "tokens": 3e9, "start": f"2027-01-0{d}"}
                  for g, d in [(3, 1), (5, 1), (2, 2), (6, 2), (2, 3), (4, 3)]])  # fmt: skip
    result = run(s, np.full(hours_of(s), 8.0))
    assert result.gpus_held_by_pool["p"].max() <= 8 + 1e-9
    assert (result.runs.status == "finished").all()


# ---- horizon end and accounting ---------------------------------------------------------------


def test_unfinished_at_the_horizon_end() -> None:
    s = scenario([{"tokens": 1e13, "start": "2027-02-15", "deadline": "2027-02-20"},
                  {"tokens": 1e13, "start": "2027-02-15", "deadline": "2027-06-01"}],
                 max_gpus=16)  # fmt: skip
    result = run(s)
    runs = result.runs.set_index("job")
    held_h = (pd.Timestamp("2027-03-01") - pd.Timestamp("2027-02-15")).total_seconds() / HOUR
    for job in ("j0", "j1"):
        assert runs.status[job] == "running" and pd.isna(runs.finished_at[job])
        assert runs.wall_hours[job] == pytest.approx(held_h)
        assert runs.gpu_hours[job] == pytest.approx(8 * held_h)
        assert result.gpus_held_by_job[job].sum() == pytest.approx(8 * held_h)
    assert not pd.isna(runs.deadline_missed["j0"]) and bool(runs.deadline_missed["j0"])
    assert pd.isna(runs.deadline_missed["j1"])


def test_jobs_after_the_horizon_have_no_rows_and_zero_arrays() -> None:
    s = scenario([{}, {"start": "2027-03-01"}, {"start": "2030-01-01"}])
    result = run(s)
    assert list(result.runs.job) == ["j0"]
    assert set(result.gpus_held_by_job) == {"j0", "j1", "j2"}
    assert result.gpus_held_by_job["j2"].sum() == 0
    assert result.gpus_held_by_job["j2"].shape == (hours_of(s),)


def test_hourly_arrays_sum_to_gpu_hours() -> None:
    s = scenario(
        [{"start": "2027-01-01", "tokens": 4e10, "failures_per_gpu_day": 0.05},
         {"start": "2027-01-05", "gpus": 4, "repeat_every_months": 1, "tokens": 3e9},
         {"start": "2027-02-20", "gpus": 16, "tokens": 1e12}],
        max_gpus=32, months=3,
    )  # fmt: skip
    result = run(s, seed=4)
    runs = result.runs
    for job, held in result.gpus_held_by_job.items():
        assert held.sum() == pytest.approx(runs.gpu_hours[runs.job == job].sum(), rel=1e-12)
    pool = result.gpus_held_by_pool["p"]
    assert pool.sum() == pytest.approx(runs.gpu_hours.sum(), rel=1e-12)
    assert np.allclose(pool, sum(result.gpus_held_by_job.values()))
    assert pool.shape == (hours_of(s),)


def test_hour_averaged_fractions() -> None:
    hours = np.zeros(4)
    add_interval(hours, 0.5 * HOUR, 2.25 * HOUR, 8)
    assert list(hours) == [4.0, 8.0, 2.0, 0.0]
    add_interval(hours, 3.5 * HOUR, 10 * HOUR, 2)  # clipped at the end
    assert hours[3] == 1.0 and hours.sum() == pytest.approx(8 * 1.75 + 1)
    add_interval(hours, 1.2 * HOUR, 1.2 * HOUR, 5)
    assert hours.sum() == pytest.approx(15.0)


def test_lost_hours_split_and_add_up() -> None:
    s = scenario([{"tokens": 4e10, "failures_per_gpu_day": 0.2, "checkpoint_minutes": 3,
                   "checkpoint_interval_hours": 1, "restart_minutes": 20}])  # fmt: skip
    row = run(s, seed=2).runs.iloc[0]
    assert row.failures > 0
    parts = row.gpu_hours_checkpoint + row.gpu_hours_rework + row.gpu_hours_restart
    assert row.gpu_hours_lost == pytest.approx(parts)
    assert row.gpu_hours == pytest.approx(row.gpu_hours_useful + row.gpu_hours_lost)
    assert row.gpu_hours_restart == pytest.approx(8 * row.failures * 20 / 60)
    assert row.gpu_hours_useful == pytest.approx(8 * row.compute_hours)


def test_spot_preemptions_counted_apart_from_failures() -> None:
    s = scenario([{"tokens": 1e11, "failures_per_gpu_day": 0.1}],
                 pricing={"kind": "spot", "usd_per_gpu_hour": 1.0, "preemptions_per_gpu_day": 0.3})  # fmt: skip
    result = run(s, seed=1)
    row = result.runs.iloc[0]
    assert row.failures > 0 and row.preemptions > 0
    kinds = result.events.event.value_counts()
    assert kinds["failure"] == row.failures and kinds["preemption"] == row.preemptions


# ---- periodic jobs and deadlines ---------------------------------------------------------------


def test_periodic_runs_recur() -> None:
    s = scenario([{"start": "2027-01-15", "repeat_every_months": 1},
                  {"start": "2027-01-10", "repeat_every_months": 2, "repeat_until": "2027-08-01"}],
                 max_gpus=16, months=12)  # fmt: skip
    runs = run(s).runs
    j0, j1 = runs[runs.job == "j0"], runs[runs.job == "j1"]
    assert list(j0.run) == list(range(12))
    assert list(j0.queued_at.dt.month) == list(range(1, 13))
    assert (j0.queued_at.dt.day == 15).all()
    assert list(j1.queued_at.dt.month) == [1, 3, 5, 7]
    assert (runs.status == "finished").all()


def test_deadline_missed_one_off() -> None:
    hours = compute_s(8e9, 8, 0.4) / HOUR  # ~ 38 h
    assert 24 < hours < 48
    s = scenario([{"tokens": 8e9, "deadline": "2027-01-02"},
                  {"tokens": 8e9, "deadline": "2027-01-03"},
                  {"tokens": 8e9}], max_gpus=24)  # fmt: skip
    runs = run(s).runs.set_index("job")
    assert runs.deadline_missed.tolist() == [True, False, False]
    assert runs.deadline["j0"] == pd.Timestamp("2027-01-02") and pd.isna(runs.deadline["j2"])


def test_deadline_missed_when_queued_too_long() -> None:
    s = scenario([{"tokens": 8e9}, {"tokens": 1e8, "deadline": "2027-01-02"}])
    runs = run(s).runs.set_index("job")
    assert runs.finished_at["j1"] > pd.Timestamp("2027-01-02")
    assert bool(runs.deadline_missed["j1"])


def test_periodic_run_misses_when_it_outlasts_its_period() -> None:
    # monthly ~5 h runs queue behind a ~40-day job: the first misses its period, not the rest
    s = scenario([{"tokens": 2e11, "start": "2027-01-01"},
                  {"tokens": 1e9, "start": "2027-01-02", "repeat_every_months": 1}],
                 months=4)  # fmt: skip
    runs = run(s).runs
    ft = runs[runs.job == "j1"].set_index("run")
    assert bool(ft.deadline_missed[0])  # released Jan 2, waits past Feb 2
    assert ft.deadline[0] == pd.Timestamp("2027-02-02")
    assert not ft.deadline_missed.iloc[1:].any()


# ---- determinism and input checks ---------------------------------------------------------------


def _noisy() -> Scenario:
    return scenario(
        [{"tokens": 1e11, "failures_per_gpu_day": 0.1},
         {"tokens": 5e10, "failures_per_gpu_day": 0.1, "gpus": 4, "repeat_every_months": 1}],
        max_gpus=16, months=3,
    )  # fmt: skip


def test_same_seed_same_result_other_seed_other_result() -> None:
    a, b, c = run(_noisy(), seed=7), run(_noisy(), seed=7), run(_noisy(), seed=8)
    pd.testing.assert_frame_equal(a.runs, b.runs)
    pd.testing.assert_frame_equal(a.events, b.events)
    for name in a.gpus_held_by_job:
        np.testing.assert_array_equal(a.gpus_held_by_job[name], b.gpus_held_by_job[name])
    assert not a.runs.gpu_hours.equals(c.runs.gpu_hours)


def test_a_jobs_randomness_does_not_depend_on_later_jobs() -> None:
    base = _noisy()
    extended = scenario(
        [{"tokens": 1e11, "failures_per_gpu_day": 0.1},
         {"tokens": 5e10, "failures_per_gpu_day": 0.1, "gpus": 4, "repeat_every_months": 1},
         {"tokens": 1e9, "gpus": 2, "start": "2027-03-20", "failures_per_gpu_day": 1.0}],
        max_gpus=16, months=3,
    )  # fmt: skip
    a, b = run(base, seed=3).runs, run(extended, seed=3).runs
    pd.testing.assert_frame_equal(a, b[b.job != "j2"].reset_index(drop=True))


def test_offer_with_wrong_shape_is_rejected() -> None:
    s = scenario([{}])
    with pytest.raises(ValueError, match=r"has shape \(10,\); expected \(1416,\)"):
        run(s, np.ones(10))


def test_unknown_pool_in_offer_is_rejected() -> None:
    s = scenario([{}])
    with pytest.raises(ValueError, match="unknown pools"):
        simulate_training(s, {"gpu": np.ones(hours_of(s))}, np.random.default_rng(0))


def test_no_jobs() -> None:
    result = run(scenario([]))
    assert result.runs.empty and list(result.runs.columns)[:3] == ["pool", "job", "run"]
    assert result.gpus_held_by_pool["p"].sum() == 0 and result.gpus_held_by_job == {}
