"""From scenario jobs to run specs: MFU default, rates, releases, deadlines."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from simulator.perf.roofline import training_time_s
from simulator.scenario.resolve import gpu_of, model_of, profile_for_pool
from simulator.scenario.schema import Scenario
from simulator.training.jobs import DEFAULT_FAILURES_PER_GPU_DAY
from simulator.training.plan import horizon_hours, plan_job, releases

DAY = 86_400.0


def scenario(jobs: list[dict[str, Any]], start: str = "2027-01-01", months: int = 12) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "plan-test",
            "horizon": {"start": start, "months": months},
            "pools": [
                {"name": "od", "gpu": "h100-sxm", "max_gpus": 64,
                 "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 3.0}},
                {"name": "spot", "gpu": "a100-80-sxm", "max_gpus": 64,
                 "pricing": {"kind": "spot", "usd_per_gpu_hour": 1.0,
                             "preemptions_per_gpu_day": 0.02}},
            ],
            "training_jobs": [
                {"name": f"j{i}", "pool": "od", "model": "llama-3-8b", "tokens": 1e9, "gpus": 8,
                 "start": start, **job}
                for i, job in enumerate(jobs)
            ],
        }
    )  # fmt: skip


def test_horizon_hours() -> None:
    s = scenario([{}], start="2028-01-01", months=12)  # leap year
    assert horizon_hours(s.horizon) == 366 * 24


def test_mfu_default_from_the_layout_model_and_override() -> None:
    s = scenario([{}, {"mfu": 0.55}])
    default, given = plan_job(s, 0), plan_job(s, 1)
    assert default.mfu_source == "model:h100-sxm"
    # the default speed is the layout model's: tokens / tokens per second of its layout
    assert default.spec.work_s == pytest.approx(1e9 / default.step.tokens_per_s, rel=1e-12)
    assert default.mfu == pytest.approx(default.step.mfu, rel=1e-9)
    assert (given.mfu, given.mfu_source) == (0.55, "job")
    pool = s.pool("od")
    expected = training_time_s(
        model_of(s, "llama-3-8b"), 1e9, 8, gpu_of(s, pool), "bf16", 8192, 0.55
    )
    assert given.spec.work_s == expected


def test_a_profiles_training_mfu_overrides_the_model() -> None:
    s = scenario([{}])
    profile = profile_for_pool(s, s.pool("od"))
    fixed = profile.model_copy(
        update={"name": "fixed", "parameters": profile.parameters.model_copy(update={"training_mfu": 0.3})}
    )
    s.pools[0] = s.pools[0].model_copy(update={"calibration": fixed})
    plan = plan_job(s, 0)
    assert (plan.mfu, plan.mfu_source) == (0.3, "profile:fixed")


def test_fp8_is_faster_but_not_twice() -> None:
    # fp8 GEMMs run at the fp8 peak; attention and element-wise traffic do not speed up
    s = scenario([{"dtype": "bf16"}, {"dtype": "fp8"}])
    bf16, fp8 = plan_job(s, 0).spec.work_s, plan_job(s, 1).spec.work_s
    assert 1.3 < bf16 / fp8 < 2.0


def test_rates_scale_with_gpus_and_spot_adds_preemptions() -> None:
    s = scenario([{}, {"failures_per_gpu_day": 0.01, "gpus": 16, "pool": "spot"}])
    od, spot = plan_job(s, 0).spec, plan_job(s, 1).spec
    assert od.failure_rate_per_s == pytest.approx(DEFAULT_FAILURES_PER_GPU_DAY * 8 / DAY)
    assert od.preemption_rate_per_s == 0
    assert spot.failure_rate_per_s == pytest.approx(0.01 * 16 / DAY)
    assert spot.preemption_rate_per_s == pytest.approx(0.02 * 16 / DAY)


def test_checkpoint_and_restart_units() -> None:
    s = scenario([{"checkpoint_interval_hours": 3, "checkpoint_minutes": 2, "restart_minutes": 15}])
    spec = plan_job(s, 0).spec
    assert (spec.checkpoint_interval_s, spec.checkpoint_s, spec.restart_s) == (10800, 120, 900)


def _runs(job: dict[str, Any], **kw: Any) -> list[tuple[int, dt.date, float]]:
    s = scenario([job], **kw)
    return [(r.run, r.nominal, r.release_s / DAY) for r in releases(s.training_jobs[0], s.horizon)]


def test_one_off_release() -> None:
    assert _runs({"start": "2027-03-02"}) == [(0, dt.date(2027, 3, 2), 60.0)]


@pytest.mark.parametrize(
    ("job", "count"),
    [
        ({"start": "2027-01-15", "repeat_every_months": 1}, 12),
        ({"start": "2027-01-01", "repeat_every_months": 1}, 12),
        ({"start": "2027-01-15", "repeat_every_months": 3}, 4),
        ({"start": "2027-01-15", "repeat_every_months": 1, "repeat_until": "2027-06-15"}, 6),
        ({"start": "2027-01-15", "repeat_every_months": 1, "repeat_until": "2027-06-14"}, 5),
        ({"start": "2027-01-15", "repeat_every_months": 1, "repeat_until": "2026-01-01"}, 1),
        ({"start": "2027-12-31", "repeat_every_months": 1}, 1),
        ({"start": "2028-01-01", "repeat_every_months": 1}, 0),
        ({"start": "2029-01-01"}, 0),
    ],
)
def test_periodic_release_counts(job: dict[str, Any], count: int) -> None:
    assert len(_runs(job)) == count


def test_months_count_from_start_not_cumulatively() -> None:
    days = [r[1] for r in _runs({"start": "2027-01-31", "repeat_every_months": 1})][:4]
    assert days == [dt.date(2027, 1, 31), dt.date(2027, 2, 28), dt.date(2027, 3, 31),
                    dt.date(2027, 4, 30)]  # fmt: skip


def test_runs_before_the_horizon_keep_only_the_current_one() -> None:
    runs = _runs({"start": "2026-06-01", "repeat_every_months": 2})
    # nominal Jun, Aug, Oct, Dec 2026 are in the past; Dec 1 is current: released at day 0
    assert runs[0] == (3, dt.date(2026, 12, 1), 0.0)
    assert [r[0] for r in runs] == [3, 4, 5, 6, 7, 8, 9]
    assert _runs({"start": "2026-05-01"}) == [(0, dt.date(2026, 5, 1), 0.0)]


def test_deadlines() -> None:
    s = scenario(
        [
            {"deadline": "2027-02-01"},
            {"start": "2027-01-10", "repeat_every_months": 1, "deadline": "2027-01-20"},
            {"start": "2027-01-10", "repeat_every_months": 1, "deadline": "2027-05-01"},
        ]
    )
    one_off, tight, loose = (releases(j, s.horizon) for j in s.training_jobs)
    assert one_off[0].deadline_s == 31 * DAY
    assert tight[0].deadline_s == 19 * DAY  # the job's deadline, earlier than Feb 10
    assert tight[1].deadline_s == (31 + 28 + 9) * DAY  # next release, Mar 10
    assert loose[0].deadline_s == (31 + 9) * DAY  # next release Feb 10, earlier than May 1
