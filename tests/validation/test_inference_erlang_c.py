"""With batch size 1 the serving engine is an M/M/c queue: mean wait and P(wait > 0) match
Erlang C, and Little's law holds.

Set-up (the real ``serve`` path: sampling, Poisson arrivals, shared-queue router, scheduler,
metrics): every iteration takes 0.01 s (:func:`tests.inference_support.unit_scenario`), prompts
are 1 token and outputs are exponential with mean 100 tokens (rounded, at least 1), so a request's
service is (output tokens) x 0.01 s, a geometric number of fixed steps: exponential to within the
rounding (mean 1.0000457 s, squared coefficient of variation 1 - 1e-5). c replicas of batch size 1
share one FCFS queue (``router="shared_queue"``): c servers, one queue, offered load
a = lambda E[S] = rho c.

Statistics: R independent replications per (c, rho), the first 10% of each run cut as warm-up
(``serve``'s default). Waiting times are strongly autocorrelated in heavy traffic, so plain
replication means would need millions of requests for a 3% confidence interval. The estimate is
instead adjusted by control variates computed from the same sample path whose means are known
from *other* exact results (Lavenberg & Welch, Management Science 27(3), 1981; Nelson,
Operations Research 38(6), 1990):

- the waits of a single FCFS server c times as fast fed the same requests (Lindley's recursion;
  mean by the Pollaczek-Khinchine formula, P(wait > 0) = rho): tracks congestion in heavy
  traffic;
- the number of requests an infinite-server system would hold at each arrival (Poisson(a) at
  arrival epochs for any service distribution): tracks the rare waits of light traffic.

Its standard error comes from the regression residuals. Because controls computed from the
engine's own inputs would hide wrongly sampled inputs, the inputs (inter-arrival gaps, service
times) are checked against their distributions separately. Assertions: within 3% of theory, or
within Z standard errors when the confidence interval is wider, or within a small absolute
amount when the quantity itself is tiny (light traffic with 16 servers: P(wait) ~ 0.9%).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest

from tests.inference_support import (
    UNIT_ITERATION_S,
    erlang_c,
    erlang_c_mean_wait_s,
    rounded_exponential_moments,
    unit_scenario,
)

MEAN_OUTPUT_TOKENS = 100.0
_M1, _M2 = rounded_exponential_moments(MEAN_OUTPUT_TOKENS)
MEAN_SERVICE_S = UNIT_ITERATION_S * _M1
SECOND_MOMENT_SERVICE_S2 = UNIT_ITERATION_S**2 * _M2
SERVERS = (1, 4, 16)
LOADS = (0.5, 0.8, 0.9)
#: requests per replication, by utilisation (heavier traffic relaxes more slowly)
REQUESTS = {0.5: 4_000, 0.8: 6_000, 0.9: 10_000}
REPLICATIONS = 16
Z = 3.0
#: absolute floors of the tolerance: P(wait > 0) in probability, mean wait in seconds
FLOOR = {"p_wait": 0.001, "wait_s": 0.0002 * MEAN_SERVICE_S}
#: largest standard error accepted (relative), unless below the floor in absolute terms
MAX_SE = 0.025


@dataclass(frozen=True)
class Replication:
    wait_s: float  # mean queue wait of the window's requests
    p_wait: float  # share of them that waited
    controls: tuple[float, ...]  # zero-mean controls (see _controls)
    gaps_s: np.ndarray  # inter-arrival gaps of the window's requests
    service_s: np.ndarray  # their service times
    in_system: float  # engine's time-average requests in system over the window
    arrival_rate: float  # window arrivals / window length
    sojourn_s: float  # mean arrival-to-finish time of the window's requests


def _poisson_tail(a: float, servers: int) -> tuple[float, float]:
    """P(N >= c) and E[(N - c + 1)^+] for N ~ Poisson(a)."""
    k = np.arange(0, int(a + 20 * math.sqrt(a) + 60))
    log_p = -a + k * math.log(a) - np.array([math.lgamma(x + 1) for x in k])
    p = np.exp(log_p)
    tail = k >= servers
    return float(p[tail].sum()), float(((k - servers + 1) * p)[tail].sum())


def _lindley(arrival_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """Waits of one FCFS server from empty: W_n = max(0, W_{n-1} + S_{n-1} - A_n)."""
    steps = np.concatenate([[0.0], service_s[:-1] - np.diff(arrival_s)])
    level = np.cumsum(steps)
    return level - np.minimum.accumulate(np.minimum(level, 0.0))


def _controls(arrival_s: np.ndarray, service_s: np.ndarray, window: np.ndarray, servers: int,
              rate: float) -> tuple[float, ...]:  # fmt: skip
    rho = rate * MEAN_SERVICE_S / servers
    fast = _lindley(arrival_s, service_s / servers)[window]
    pk_wait = rate * SECOND_MOMENT_SERVICE_S2 / servers**2 / (2 * (1 - rho))
    departures = np.sort(arrival_s + service_s)
    infinite = (np.arange(len(arrival_s)) - np.searchsorted(departures, arrival_s, "right"))[window]
    p_busy, excess = _poisson_tail(rate * MEAN_SERVICE_S, servers)
    return (
        float(fast.mean() / pk_wait - 1),
        float((fast > 0).mean() / rho - 1),
        float((infinite >= servers).mean() / p_busy - 1),
        float(np.maximum(infinite - servers + 1, 0).mean() / excess - 1),
    )


def _replicate(args: tuple[int, float, int]) -> Replication:
    servers, rho, seed = args
    from simulator.inference import serve

    rate = rho * servers / MEAN_SERVICE_S
    n = REQUESTS[rho]
    result = serve(unit_scenario(), "d", rps=rate, duration_s=n / rate, replicas=servers,
                   seed=seed, router="shared_queue")  # fmt: skip
    frame = result.requests
    assert (frame["status"] == "completed").all()
    window = frame["measured"].to_numpy()
    arrival = frame["arrival_s"].to_numpy()
    service = frame["output_tokens"].to_numpy() * UNIT_ITERATION_S
    wait = frame["queue_wait_ms"].to_numpy()[window] / 1e3
    s = result.summary
    return Replication(
        wait_s=float(wait.mean()),
        p_wait=float((wait > 0).mean()),
        controls=_controls(arrival, service, window, servers, rate),
        gaps_s=np.diff(arrival[window]),
        service_s=service[window],
        in_system=s["mean_requests_in_system"],
        arrival_rate=int(window.sum()) / (s["duration_s"] - s["warmup_s"]),
        sojourn_s=float(frame["e2e_ms"].to_numpy()[window].mean() / 1e3),
    )


@pytest.fixture(scope="module")
def replications() -> dict[tuple[int, float], list[Replication]]:
    jobs = [(c, rho, 7919 * i + 31 * c + int(10 * rho)) for c in SERVERS for rho in LOADS
            for i in range(REPLICATIONS)]  # fmt: skip
    jobs.sort(key=lambda job: -REQUESTS[job[1]] * job[0] ** 0.3)  # longest first
    workers = max(1, min(2, os.cpu_count() or 1))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_replicate, jobs, chunksize=4))
    else:
        results = [_replicate(job) for job in jobs]
    out: dict[tuple[int, float], list[Replication]] = {}
    for (c, rho, _), result in zip(jobs, results):
        out.setdefault((c, rho), []).append(result)
    return out


def controlled_estimate(y: np.ndarray, controls: np.ndarray) -> tuple[float, float]:
    """Control-variate estimate of E[y] (controls have mean 0) and its standard error (OLS)."""
    x = np.column_stack([np.ones(len(y)), controls])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ beta
    dof = len(y) - x.shape[1]
    sigma2 = float(residual @ residual) / dof
    cov = sigma2 * np.linalg.pinv(x.T @ x)
    return float(beta[0]), float(np.sqrt(max(cov[0, 0], 0.0)))


def _check(name: str, runs: list[Replication], value: str, theory: float) -> None:
    y = np.array([getattr(r, value) for r in runs])
    controls = np.array([r.controls for r in runs])
    relative, se = controlled_estimate(y / theory - 1, controls)
    tolerance = max(0.03, Z * se, FLOOR[value] / theory)
    assert abs(relative) <= tolerance, (
        f"{name}: simulated {theory * (1 + relative):.5g} vs Erlang C {theory:.5g} "
        f"({relative:+.2%}, tolerance {tolerance:.2%}, standard error {se:.2%})"
    )
    assert se <= MAX_SE or se * theory <= FLOOR[value], f"{name}: standard error {se:.2%} too large"


@pytest.mark.slow
@pytest.mark.parametrize("rho", LOADS)
@pytest.mark.parametrize("servers", SERVERS)
def test_wait_matches_erlang_c(replications, servers, rho):
    runs = replications[(servers, rho)]
    rate = rho * servers / MEAN_SERVICE_S
    _check(f"P(wait > 0) c={servers} rho={rho}", runs, "p_wait", erlang_c(servers, rho * servers))
    _check(f"mean wait c={servers} rho={rho}", runs, "wait_s",
           erlang_c_mean_wait_s(servers, rate, MEAN_SERVICE_S))  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("rho", LOADS)
@pytest.mark.parametrize("servers", SERVERS)
def test_inputs_follow_their_distributions(replications, servers, rho):
    """The controls above use the engine's own inputs: check those inputs independently."""
    runs = replications[(servers, rho)]
    rate = rho * servers / MEAN_SERVICE_S
    gaps = np.concatenate([r.gaps_s for r in runs])
    service = np.concatenate([r.service_s for r in runs])
    for sample, mean, variance, name in (
        (gaps, 1 / rate, 1 / rate**2, "inter-arrival gap"),
        (service, MEAN_SERVICE_S, SECOND_MOMENT_SERVICE_S2 - MEAN_SERVICE_S**2, "service time"),
    ):
        se = math.sqrt(variance / len(sample))
        assert abs(sample.mean() - mean) <= 4 * se, f"{name} mean {sample.mean():.5g} vs {mean:.5g}"
        # the sample variance of an exponential has relative sd sqrt(8 / n) (fourth moment 9 s^4)
        assert sample.var() == pytest.approx(variance, rel=4 * math.sqrt(8 / len(sample))), name


@pytest.mark.slow
@pytest.mark.parametrize("rho", LOADS)
@pytest.mark.parametrize("servers", SERVERS)
def test_littles_law(replications, servers, rho):
    """L (the engine's time-average of requests in system) = lambda W (from request records)."""
    runs = replications[(servers, rho)]
    in_system = np.mean([r.in_system for r in runs])
    lambda_w = np.mean([r.arrival_rate * r.sojourn_s for r in runs])
    assert in_system == pytest.approx(lambda_w, rel=0.01)
