"""Runtime math of one run: segments, accounting, interruptions, the horizon cut-off."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.training.jobs import (
    DEFAULT_FAILURES_PER_GPU_DAY,
    RunSpec,
    simulate_run,
)

HOUR = 3600.0


def test_default_failure_rate_is_llama3_figure() -> None:
    assert DEFAULT_FAILURES_PER_GPU_DAY == pytest.approx(4.736e-4, rel=1e-3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("work_s", 0.0, r"work_s\(=0.0\) must be finite and > 0"),
        ("checkpoint_interval_s", -1.0, r"checkpoint_interval_s\(=-1.0\) must be"),
        ("restart_s", -1.0, r"restart_s\(=-1.0\) must be finite and >= 0"),
        ("failure_rate_per_s", math.inf, r"failure_rate_per_s\(=inf\)"),
    ],
)
def test_spec_rejects_bad_values(field: str, value: float, message: str) -> None:
    args = {"work_s": 10 * HOUR, "checkpoint_interval_s": 2 * HOUR, field: value}
    with pytest.raises(ValueError, match=message):
        RunSpec(**args)


@pytest.mark.parametrize(
    ("work_h", "interval_h", "checkpoints", "last_h"),
    [(10, 2, 4, 2), (9, 2, 4, 1), (1, 2, 0, 1), (2, 2, 0, 2), (2.5, 0.5, 4, 0.5)],
)
def test_segments(work_h: float, interval_h: float, checkpoints: int, last_h: float) -> None:
    spec = RunSpec(work_h * HOUR, interval_h * HOUR, checkpoint_s=60.0)
    assert spec.n_checkpoints == checkpoints
    assert spec.last_segment_s == pytest.approx(last_h * HOUR)
    segments = spec.segments_s()
    assert len(segments) == checkpoints + 1
    assert segments.sum() == pytest.approx(spec.failure_free_wall_s)
    assert spec.failure_free_wall_s == pytest.approx(work_h * HOUR + checkpoints * 60.0)


def test_no_interruptions_is_exact_and_draws_nothing() -> None:
    spec = RunSpec(work_s=123_456.789, checkpoint_interval_s=2 * HOUR)
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    out = simulate_run(spec, rng)
    assert out.finished
    assert out.wall_s == spec.work_s  # exact, not approximate
    assert out.useful_s == spec.work_s
    assert (out.failures, out.preemptions, out.lost_s) == (0, 0, 0.0)
    assert rng.bit_generator.state == state
    assert spec.expected_wall_s() == spec.work_s


def test_checkpoint_time_without_failures() -> None:
    spec = RunSpec(work_s=10 * HOUR, checkpoint_interval_s=2 * HOUR, checkpoint_s=120.0)
    out = simulate_run(spec, np.random.default_rng(0))
    assert out.wall_s == pytest.approx(10 * HOUR + 4 * 120.0)
    assert out.checkpoint_s == pytest.approx(480.0)
    assert out.rework_s == out.restart_s == 0.0


def test_accounting_adds_up_with_interruptions() -> None:
    spec = RunSpec(
        work_s=50 * HOUR,
        checkpoint_interval_s=2 * HOUR,
        checkpoint_s=300.0,
        restart_s=1800.0,
        failure_rate_per_s=1 / (5 * HOUR),
        preemption_rate_per_s=1 / (10 * HOUR),
    )
    for seed in range(20):
        out = simulate_run(spec, np.random.default_rng(seed))
        assert out.finished
        assert out.useful_s == spec.work_s
        total = out.useful_s + out.checkpoint_s + out.rework_s + out.restart_s
        assert total == pytest.approx(out.wall_s, rel=1e-12)
        assert out.checkpoint_s == pytest.approx(spec.n_checkpoints * 300.0)
        assert out.restart_s == pytest.approx((out.failures + out.preemptions) * 1800.0)
        assert len(out.interruptions) == out.failures + out.preemptions
        times = [i.at_s for i in out.interruptions]
        assert times == sorted(times) and all(0 < t < out.wall_s for t in times)


def test_each_interruption_loses_at_most_one_segment() -> None:
    spec = RunSpec(
        work_s=20 * HOUR,
        checkpoint_interval_s=HOUR,
        checkpoint_s=60.0,
        restart_s=600.0,
        failure_rate_per_s=1 / (2 * HOUR),
    )
    for seed in range(20):
        out = simulate_run(spec, np.random.default_rng(seed))
        assert out.rework_s <= out.failures * (HOUR + 60.0) + 1e-6


def test_cut_off_while_working() -> None:
    spec = RunSpec(work_s=10 * HOUR, checkpoint_interval_s=2 * HOUR, checkpoint_s=600.0)
    # 2 full segments (2 h + 10 min each) then 1 h of the third segment's work
    limit = 2 * (2 * HOUR + 600.0) + HOUR
    out = simulate_run(spec, np.random.default_rng(0), limit_s=limit)
    assert not out.finished
    assert out.wall_s == limit
    assert out.useful_s == pytest.approx(5 * HOUR)
    assert out.checkpoint_s == pytest.approx(1200.0)


def test_cut_off_while_writing_a_checkpoint() -> None:
    spec = RunSpec(work_s=10 * HOUR, checkpoint_interval_s=2 * HOUR, checkpoint_s=600.0)
    out = simulate_run(spec, np.random.default_rng(0), limit_s=2 * HOUR + 240.0)
    assert out.useful_s == pytest.approx(2 * HOUR)
    assert out.checkpoint_s == pytest.approx(240.0)


def test_cut_off_during_restart() -> None:
    spec = RunSpec(
        work_s=1000 * HOUR,
        checkpoint_interval_s=HOUR,
        restart_s=10 * HOUR,
        failure_rate_per_s=1 / HOUR,
    )
    cut_in_restart = 0
    for seed in range(20):
        out = simulate_run(spec, np.random.default_rng(seed), limit_s=50 * HOUR)
        assert not out.finished
        assert out.wall_s == 50 * HOUR
        total = out.useful_s + out.checkpoint_s + out.rework_s + out.restart_s
        assert total == pytest.approx(50 * HOUR)
        assert out.restart_s <= out.failures * 10 * HOUR
        if out.restart_s < out.failures * 10 * HOUR:  # the limit fell inside a restart
            cut_in_restart += 1
            assert out.useful_s / HOUR == pytest.approx(round(out.useful_s / HOUR))
    assert cut_in_restart > 0


def test_finishing_exactly_at_the_limit_counts_as_finished() -> None:
    spec = RunSpec(work_s=5 * HOUR, checkpoint_interval_s=HOUR)
    out = simulate_run(spec, np.random.default_rng(0), limit_s=5 * HOUR)
    assert out.finished and out.wall_s == 5 * HOUR


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"limit_s\(=0\) must be > 0"):
        simulate_run(RunSpec(HOUR, HOUR), np.random.default_rng(0), limit_s=0)


def test_expected_wall_closed_form_one_segment() -> None:
    rate, tau, restart = 1 / (3 * HOUR), 2 * HOUR, 900.0
    spec = RunSpec(tau, 10 * HOUR, restart_s=restart, failure_rate_per_s=rate)
    assert spec.expected_wall_s() == pytest.approx((1 / rate + restart) * math.expm1(rate * tau))
    # small-rate limit: tau (1 + rate tau / 2 + rate R) to first order
    tiny = RunSpec(tau, 10 * HOUR, restart_s=restart, failure_rate_per_s=1e-9)
    assert tiny.expected_wall_s() == pytest.approx(tau * (1 + 1e-9 * (tau / 2 + restart)))


def test_same_stream_same_outcome() -> None:
    spec = RunSpec(30 * HOUR, HOUR, 30.0, 600.0, 1 / (4 * HOUR), 1 / (8 * HOUR))
    a = simulate_run(spec, np.random.default_rng(11))
    b = simulate_run(spec, np.random.default_rng(11))
    assert a == b
