"""Failures injected into the serving engine (``fleetsim serve --failures``): conservation,
no change with injection off, renewal theory, and the projection's expectation of the requests
lost in flight (:mod:`simulator.inference.failures`)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.inference import engine as engine_module
from simulator.inference import serve
from simulator.inference.api import replica_setup
from simulator.inference.engine import EngineConfig, RequestArrays, SimulationRecord, simulate
from simulator.inference.failures import FailureInjection
from simulator.inference.replica import ReplicaConfig
from simulator.inference.timing import IterationTimer
from simulator.scenario.resolve import serving_cost_model
from simulator.scenario.schema import ServingFailures
from tests.inference_support import chat_scenario, unit_scenario

#: Two-sided 99.9% normal quantile: the confidence level of the statistical checks below (each
#: runs one fixed seed, so it is deterministic; the level says how unusual a pass-to-fail
#: change of seed would have to be).
Z999 = 3.29

CHAT = chat_scenario()
CHAT_CONFIG, _, CHAT_TIMER = replica_setup(CHAT, CHAT.deployment("chat-8b"))
CHAT_COST = serving_cost_model(CHAT, "chat-8b")


def _chat_requests(rate: float, duration_s: float, seed: int, prompt: int | None = None,
                   output: int | None = None) -> RequestArrays:  # fmt: skip
    """Poisson arrivals of chat-like requests (lognormal tokens, or fixed ones)."""
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1 / rate, int(rate * duration_s * 1.2) + 10))
    arrival = arrival[arrival < duration_s]
    n = len(arrival)
    p = np.full(n, prompt) if prompt else np.maximum(1, rng.lognormal(np.log(1000) - 0.32, 0.8, n).astype(int))
    o = np.full(n, output) if output else np.maximum(1, rng.lognormal(np.log(250) - 0.18, 0.6, n).astype(int))
    return RequestArrays(arrival, p.astype(np.int64), o.astype(np.int64), np.rint(0.3 * p).astype(np.int64))


# ---------------------------------------------------------------------------- conservation


@st.composite
def cases(draw):
    router = draw(st.sampled_from(["round_robin", "least_outstanding", "shared_queue", "session_affinity"]))
    config = ReplicaConfig(
        max_batch_size=draw(st.integers(1, 16)), max_batched_tokens=draw(st.integers(8, 256)),
        kv_blocks=draw(st.integers(4, 400)), kv_block_tokens=draw(st.integers(1, 16)),
        max_context_tokens=draw(st.integers(16, 600)),
        admission=draw(st.sampled_from(["preempt", "reserve"])),
    )  # fmt: skip
    replicas = draw(st.integers(1, 5))
    return {
        "engine": EngineConfig(config, replicas, router, draw(st.integers(1, 80))),
        "n": draw(st.integers(10, 250)),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "rate": draw(st.floats(1, 200)),
        # a replica's mean time up, as a share of the arrivals' span, but at least 0.5 s (a few
        # requests' service times here: shorter would let a retried request fail again and again)
        "mean_up_share": draw(st.floats(0.05, 2)),
        "recovery_s": draw(st.floats(0.01, 3)),
        "retry": draw(st.booleans()),
        "drain_s": draw(st.sampled_from([0.0, 0.5, None, 1e6])),
        "sessions": router == "session_affinity",
    }


def _run_case(case) -> tuple[SimulationRecord, FailureInjection]:
    rng = np.random.default_rng(case["seed"])
    n = case["n"]
    arrival = np.cumsum(rng.exponential(1 / case["rate"], n))
    prompt = rng.integers(1, 120, n)
    output = rng.integers(1, 120, n)
    extra = {}
    if case["sessions"]:
        extra = {"session": rng.integers(0, max(n // 3, 1), n), "reusable_tokens": prompt // 2,
                 "shared_prefix_tokens": 8}  # fmt: skip
    requests = RequestArrays(arrival, prompt, output, prompt // 3, **extra)
    duration = float(arrival[-1]) + 1e-3
    mean_up_s = max(case["mean_up_share"] * duration, 0.5)
    injection = FailureInjection(1 / mean_up_s, case["recovery_s"], case["retry"], case["seed"])
    engine = case["engine"]
    timer = IterationTimer.from_cost_model(CHAT_COST, engine.replica.max_iteration_tokens)
    record = simulate(engine, timer, requests, duration_s=duration, warmup_s=0.1 * duration,
                      drain_s=case["drain_s"], failures=injection)  # fmt: skip
    return record, injection


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_every_request_is_completed_dropped_failed_or_in_flight(case):
    r, injection = _run_case(case)
    log = r.failures
    status = r.status
    counts = {s: int((status == s).sum()) for s in ("completed", "dropped", "failed", "in_flight")}
    assert len(r.arrival_s) == sum(counts.values())
    assert (r.drop_reason[status == "failed"] == "replica_failure").all()
    assert set(r.drop_reason[status == "dropped"]) <= {"queue_full", "too_long"}
    assert (r.drop_reason[(status != "dropped") & (status != "failed")] == "").all()
    if injection.retry:
        assert counts["failed"] == 0
    else:
        assert log.retries.sum() == 0
    if case["drain_s"] == 1e6:
        assert counts["in_flight"] == 0
    done = status == "completed"
    assert np.all(r.arrival_s[done] <= r.first_scheduled_s[done])
    assert np.all(r.first_scheduled_s[done] < r.first_token_s[done])
    assert np.all(r.first_token_s[done] <= r.finish_s[done])
    assert np.isnan(r.finish_s[~done]).all()
    # each replica's outages are disjoint, each lasts the recovery time
    for i in range(case["engine"].replicas):
        mine = log.replica == i
        assert np.all(log.down_s[mine][1:] >= log.up_s[mine][:-1])
    np.testing.assert_allclose(log.up_s - log.down_s, injection.recovery_s)
    # nothing finishes on a replica while it is down; on own queues a replica's failure ends
    # every request on it, so none that finished there was admitted before a failure of it
    fail_replica, fail_at, back_at = log.replica, log.down_s, log.up_s
    for rid in np.flatnonzero(done):
        on = fail_replica == r.replica[rid]
        assert not np.any((fail_at[on] < r.finish_s[rid]) & (r.finish_s[rid] < back_at[on]))
        if case["engine"].router != "shared_queue":
            assert not np.any((r.first_scheduled_s[rid] < fail_at[on]) & (fail_at[on] < r.finish_s[rid]))
            assert not np.any((fail_at[on] < r.first_scheduled_s[rid]) & (r.first_scheduled_s[rid] < back_at[on]))
    window = r.duration_s - r.warmup_s
    for stats in r.replica_stats:
        assert 0 <= stats.busy_s <= window * (1 + 1e-9)


@pytest.mark.parametrize("router", ["least_outstanding", "session_affinity", "round_robin"])
def test_a_large_fleet_routes_around_its_down_replicas(router):
    """30 replicas (the load-aware routers keep their loads in heaps there): no request is
    admitted by, or finishes on, a replica while it is down, and with retry every one ends."""
    r = _chat_requests(30 * 12.0, 60.0, seed=2)
    n = len(r)
    extra = {}
    if router == "session_affinity":
        extra = {"session": np.arange(n) // 3, "reusable_tokens": r.prompt_tokens // 2, "shared_prefix_tokens": 100}
    requests = RequestArrays(r.arrival_s, r.prompt_tokens, r.output_tokens, r.cached_tokens, **extra)
    record = simulate(EngineConfig(CHAT_CONFIG, 30, router), CHAT_TIMER, requests, duration_s=60.0, drain_s=1e4,
                      failures=FailureInjection(1 / 40.0, 8.0, True, seed=1))  # fmt: skip
    log = record.failures
    assert len(log.down_s) > 20 and log.retries.sum() > 50
    assert set(record.status) <= {"completed", "dropped"}
    assert set(record.drop_reason[record.status == "dropped"]) == {"too_long"}
    for i in range(30):
        mine = record.replica == i
        for name in ("first_scheduled_s", "finish_s"):
            t = getattr(record, name)[mine]
            t = t[np.isfinite(t)]
            inside = (log.down_s[log.replica == i][:, None] < t) & (t < log.up_s[log.replica == i][:, None])
            assert not inside.any(), (router, i, name)


# ---------------------------------------------------------------------------- injection off

#: sha256 (first 16 hex digits) of four runs below, recorded on the engine before failure
#: injection existed (commit 85883d8); times rounded to the nanosecond so that a platform's
#: last-bit differences in libm do not count.
BEFORE_FAILURES = {
    "least_outstanding": "f11c7c0c8b2d8f20",
    "round_robin": "1ba476678699ccff",
    "shared_queue": "966e3351f0c82896",
    "session_affinity": "3b3cbc75e61b8245",
}


def _digest(record: SimulationRecord) -> str:
    h = hashlib.sha256()
    for name in ("first_scheduled_s", "first_token_s", "finish_s"):
        h.update(np.nan_to_num(np.rint(getattr(record, name) * 1e9), nan=-1).astype(np.int64).tobytes())
    for name in ("replica", "preemptions"):
        h.update(np.asarray(getattr(record, name), dtype=np.int64).tobytes())
    h.update("|".join(record.status.tolist() + record.drop_reason.tolist()).encode())
    h.update(repr(round(record.mean_in_system, 6)).encode())
    return h.hexdigest()[:16]


def _off_runs(simulate_fn=simulate, engine_config=EngineConfig, arrays=RequestArrays) -> dict[str, SimulationRecord]:
    """The runs of BEFORE_FAILURES: chat-8b replicas (30 with least outstanding, so its load
    heaps are used), tight KV for the shared queue (pre-emptions), 4-turn conversations with
    session affinity."""
    runs = {}
    for router, replicas, kv in (("least_outstanding", 30, None), ("round_robin", 3, None),
                                 ("shared_queue", 4, 3000), ("session_affinity", 4, None)):  # fmt: skip
        r = _chat_requests(15.0 * replicas, 60.0, seed=11)
        extra = {}
        if router == "session_affinity":
            extra = {"session": np.arange(len(r)) // 4, "reusable_tokens": r.prompt_tokens // 2,
                     "shared_prefix_tokens": 200}  # fmt: skip
        requests = arrays(r.arrival_s, r.prompt_tokens, r.output_tokens, r.cached_tokens, **extra)
        config = CHAT_CONFIG if kv is None else ReplicaConfig(**{**CHAT_CONFIG.__dict__, "kv_blocks": kv})
        runs[router] = simulate_fn(engine_config(config, replicas, router), CHAT_TIMER, requests, duration_s=60.0)
    return runs


def test_with_injection_off_the_engine_serves_exactly_as_before(monkeypatch):
    def no_failures(*args, **kwargs):
        raise AssertionError("failure code ran with injection off")

    monkeypatch.setattr(engine_module, "_Failures", no_failures)
    runs = _off_runs()
    assert {router: _digest(record) for router, record in runs.items()} == BEFORE_FAILURES
    assert all(record.failures is None for record in runs.values())


def test_a_zero_failure_rate_changes_nothing_but_adds_the_log():
    requests = _chat_requests(40.0, 120.0, seed=5)
    config = EngineConfig(CHAT_CONFIG, 4, "least_outstanding")
    off = simulate(config, CHAT_TIMER, requests, duration_s=120.0)
    zero = simulate(config, CHAT_TIMER, requests, duration_s=120.0, failures=FailureInjection(0.0, 60.0))
    assert _digest(off) == _digest(zero)
    assert len(zero.failures.down_s) == 0 and zero.failures.retries.sum() == 0


# ---------------------------------------------------------------------------- renewal theory


def test_share_of_replica_time_down_is_the_renewal_theory_value():
    """Alternating renewal process: up ~ Exp(mean m = 1/rate), down r. Over T seconds a replica's
    down share has mean r / (m + r) and, by the renewal-reward CLT, variance
    r^2 Var(C) / (E[C]^3 T) with C = up + r the cycle (Var(C) = m^2): the replicas are
    independent, so the share of R replicas has 1/R of it."""
    scenario = unit_scenario()
    config, _, timer = replica_setup(scenario, scenario.deployment("d"))
    replicas, m, r, duration, warmup = 8, 100.0, 20.0, 20_000.0, 2_000.0
    rng = np.random.default_rng(3)
    arrival = np.cumsum(rng.exponential(5.0, int(duration / 5)))
    arrival = arrival[arrival < duration]
    n = len(arrival)
    requests = RequestArrays(arrival, np.ones(n, dtype=int), rng.integers(1, 200, n), np.zeros(n, dtype=int))
    record = simulate(EngineConfig(config, replicas, "least_outstanding"), timer, requests, duration_s=duration,
                      warmup_s=warmup, failures=FailureInjection(1 / m, r, True, seed=9))  # fmt: skip
    log = record.failures
    window = duration - warmup
    measured = log.down_seconds(warmup, duration) / (replicas * window)
    cycle = m + r
    theory = r / cycle
    assert theory == pytest.approx(log.injection.down_share)
    sd = math.sqrt(r**2 * m**2 / cycle**3 / window / replicas)
    assert abs(measured - theory) <= Z999 * sd, (measured, theory, sd)
    # failures begun in the window: R T / E[C] on average, variance R T Var(C) / E[C]^3
    count = int(log.in_window(warmup, duration).sum())
    expected = replicas * window / cycle
    assert abs(count - expected) <= Z999 * math.sqrt(replicas * window * m**2 / cycle**3), (count, expected)
    assert (record.status != "failed").all()  # retry: nothing fails, everything is served
    assert (record.status == "completed").all()


# ---------------------------------------------------------------------------- requests lost in flight


def test_failed_requests_match_the_projections_in_flight_expectation():
    """retry off: each failure fails the requests on its replica. A failure is a Poisson event,
    so it sees the time-average (PASTA): by Little's law, the served rate per serving replica x
    the mean E2E, which the projection (``_in_flight_lost``) takes as the median E2E. The
    tolerance adds up what that leaves out:

    - the count's noise: about Poisson, sd ~ sqrt(failures x in flight), at 99.9%;
    - median for mean: with fixed token counts the E2E spread is small; the measured gap;
    - the load of the replicas down: a replica that fails while one of the R - 1 others is
      down (probability ~ (R - 1) x share down) carries R / (R - 1) of the load, 1 / (R - 1)
      more, so on average ~ share down more is in flight than the time-average says (5% at
      this run's 5% down share; nothing at real rates, ~1e-4).
    """
    replicas, duration, warmup = 4, 1200.0, 120.0
    requests = _chat_requests(40.0, duration, seed=21, prompt=500, output=200)
    injection = FailureInjection(1 / 60.0, 3.0, retry=False, seed=4)
    record = simulate(EngineConfig(CHAT_CONFIG, replicas, "least_outstanding"), CHAT_TIMER, requests,
                      duration_s=duration, warmup_s=warmup, failures=injection)  # fmt: skip
    log = record.failures
    window = duration - warmup
    measured = (record.arrival_s >= warmup) & (record.arrival_s < duration)
    done = measured & (record.status == "completed")
    failed = int((measured & (record.status == "failed")).sum())
    failures = int(log.in_window(warmup, duration).sum())
    share_down = log.down_seconds(warmup, duration) / (replicas * window)
    serving = replicas * (1 - share_down)
    e2e = record.finish_s[done] - record.arrival_s[done]
    in_flight = done.sum() / window / serving * float(np.median(e2e))
    expected = failures * in_flight
    noise = Z999 * math.sqrt(expected)
    spread = expected * abs(float(e2e.mean()) / float(np.median(e2e)) - 1)
    shifted = expected * share_down
    assert failures >= 50 and failed > 0
    assert abs(failed - expected) <= noise + spread + shifted, (failed, expected, noise, spread, shifted)
    # and the failures themselves: up replicas fail at the rate (renewal), all replicas' time
    # less the time down
    rate_expected = injection.rate_per_s * replicas * window * (1 - share_down)
    assert abs(failures - rate_expected) <= Z999 * math.sqrt(rate_expected)


# ---------------------------------------------------------------------------- retry


def test_retry_fails_nothing_and_lengthens_the_ttft_tail():
    """Retried requests keep their arrival: their TTFT includes the attempt lost with the
    replica, and the replicas left carry the load until it is back."""
    kwargs = {"rps": 30.0, "duration_s": 600.0, "replicas": 4, "seed": 8}
    off = serve(CHAT, "chat-8b", **kwargs)
    on = serve(CHAT, "chat-8b", **kwargs, failures=ServingFailures(recovery_minutes=1.0, retry=True),
               failures_per_gpu_day=200)  # fmt: skip
    s, before = on.summary, off.summary
    assert s["requests_failed"] == 0 and s["requests_retried"] > 0 and s["failures"]["failures"] > 0
    assert s["requests_arrived"] == before["requests_arrived"]
    assert s["requests_arrived"] == (s["requests_completed"] + s["requests_dropped"] + s["requests_failed"]
                                     + s["requests_in_flight"])  # fmt: skip
    assert s["ttft_ms"]["p99"] > before["ttft_ms"]["p99"]
    assert s["failures"]["ttft_ms_during_failures"]["p99"] > before["ttft_ms"]["p99"]
    retried = on.requests[on.requests["failure_retries"] > 0]
    assert (retried["status"] == "completed").all()
    assert retried["ttft_ms"].median() > before["ttft_ms"]["p99"]
    assert s["availability"] < 1 and "availability" not in before and "failures" not in before
