"""Latency against load on one replica, and the capacity of a replica under the SLO.

:func:`latency_curve` runs the engine on ONE replica at a grid of request rates (requests per
second reaching that replica, response-cache hits already removed) and keeps, at each rate, the
whole quantile function of TTFT, TPOT and E2E (so that percentiles of mixtures can be formed
later: percentiles do not average), the SLO attainment and the busy fraction.

``capacity_per_replica`` is the highest rate that is *sustainable*: SLO attainment >=
``slo.attainment_target`` and the queue is stable (not overloaded; with no SLO targets this is
the saturation throughput). It is found by bisection, each probe pooling ``replications`` runs
that share their random numbers across rates (common random numbers: the same arrivals stretched
in time, the same token counts), which keeps attainment close to monotone in the rate.

Conversations (``sessions``): the replica's prefix cache is simulated. With the deployment's
router ``session_affinity`` every turn of a session reaches the replica that holds its history
(as on a fleet with cache-aware routing); with any other router each turn is taken as landing
where its history is not (only the shared system prompt is found), which is what a
session-blind router does on a fleet of many replicas (on R replicas it finds it 1/R of the
time): a stated, conservative simplification.

:func:`deployment_curve` chooses everything itself and caches curves by a content hash of their
inputs, in memory and on disk (directory ``$FLEETSIM_CACHE_DIR``, default
``~/.cache/fleetsim/curves``; set it to ``off`` or an empty string to disable disk caching, an
unwritable directory is skipped silently). Files are written atomically
(:func:`simulator.common.files.write_atomic`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.common.files import OutputError, finite, write_atomic
from simulator.economics.retrieval import expected_prefix_hit_rate, model_prompt_tokens_mean
from simulator.economics.stages import model_bound
from simulator.inference.api import (
    acceptance_rate,
    disaggregated_setup,
    find_deployment,
    find_workload,
    replica_setup,
    sample_requests,
    speculation_of,
)
from simulator.inference.disaggregated import DisaggregatedConfig, simulate_disaggregated
from simulator.inference.engine import EngineConfig, simulate
from simulator.inference.metrics import (
    counted_mask,
    is_overloaded,
    latencies_ms,
    measured_mask,
    slo_met,
)
from simulator.inference.replica import ReplicaConfig
from simulator.inference.timing import IterationTimer
from simulator.perf.lora import LORA_KERNEL_OVERHEAD_S
from simulator.perf.roofline import ServingCostModel
from simulator.scenario.resolve import draft_model_of
from simulator.scenario.schema import Deployment, Scenario, Workload

#: Bump when the engine's results change, so cached curves are recomputed.
CURVE_VERSION = 4  # 2: issue 15's cost model, engine presets, prefill busy share; 3: prefix hit rate;
# 4: prefix cache evicts before lookups, decode-side pre-emption recomputes the prompt, speculative
# output tokens counted as served

QUANTILE_LEVELS = np.linspace(0.0, 1.0, 201)
#: A pipeline stage's fields a latency curve depends on (enter the key only when stages are used).
STAGE_LATENCY_FIELDS = {"position", "latency_ms", "applies_share", "added_prompt_tokens"}


@dataclass(frozen=True)
class LatencyCurve:
    """Latency percentiles of one replica against the request rate offered to it."""

    deployment: str
    workload: str
    rates_per_replica: np.ndarray  # req/s offered to one replica, increasing, shape (n,)
    quantile_levels: np.ndarray  # e.g. np.linspace(0, 1, 201), shape (q,)
    ttft_ms: np.ndarray  # shape (n, q): quantile function of TTFT at each rate
    tpot_ms: np.ndarray  # shape (n, q)
    e2e_ms: np.ndarray  # shape (n, q)
    slo_attainment: np.ndarray  # shape (n,)
    busy_fraction: np.ndarray  # shape (n,) replica busy fraction
    prefill_busy_fraction: np.ndarray  # shape (n,) share of time in iterations with prefill
    tokens_per_request: tuple[float, float]  # mean (input, output) tokens
    capacity_per_replica: float  # req/s where SLO attainment == target (>= 0; 0 if unreachable)
    #: shape (n,): share of served prompt tokens found in the prefix cache (the fixed rate, or
    #: simulated for conversations)
    prefix_cache_hit_rate: np.ndarray
    #: shape (n,): standard error of ``slo_attainment`` by batch means (see :func:`batch_means_stderr`)
    slo_attainment_stderr: np.ndarray
    #: shape (n,): standard error of the TTFT p95 (ms) by batch means
    ttft_p95_stderr_ms: np.ndarray
    #: shape (2,): the capacity search's last bracket (req/s): sustainable at [0], not at [1]
    #: (inf when never unsustainable); its width is the capacity's resolution
    capacity_bracket_per_replica: np.ndarray

    def capacity_error(self) -> dict[str, float | None]:
        """The capacity's stated error: its resolution (relative width of the search's last
        bracket), and its statistical standard error (req/s) by the delta method, the SLO
        attainment's batch-means error at the capacity over the attainment's fall per req/s
        to the next grid rate above it (None when it does not fall there)."""
        capacity = self.capacity_per_replica
        lo, hi = (float(x) for x in self.capacity_bracket_per_replica)
        out: dict[str, float | None] = {
            "capacity_per_replica": capacity,
            "capacity_resolution": (hi - lo) / lo if lo > 0 and math.isfinite(hi) else None,
            "capacity_stderr_per_replica": None,
            "slo_attainment_stderr": None,
            "ttft_p95_stderr_ms": None,
        }
        if capacity <= 0:
            return out
        rates = self.rates_per_replica
        i = int(np.argmin(np.abs(rates - capacity)))
        out["slo_attainment_stderr"] = float(self.slo_attainment_stderr[i])
        out["ttft_p95_stderr_ms"] = finite(float(self.ttft_p95_stderr_ms[i]))
        if i + 1 < len(rates):
            fall = (self.slo_attainment[i] - self.slo_attainment[i + 1]) / (rates[i + 1] - rates[i])
            if fall > 0:
                out["capacity_stderr_per_replica"] = float(self.slo_attainment_stderr[i] / fall)
        return out


#: Batches per run for the batch-means standard errors of a curve's points.
ERROR_BATCHES = 10


def batch_means_stderr(values_by_run: list[np.ndarray], statistic: Any) -> float:
    """Standard error of ``statistic`` by batch means: each run's values (in arrival order)
    cut into :data:`ERROR_BATCHES` consecutive batches, the statistic taken per batch, and
    sd / sqrt(batches) over all of them (Law & Kelton, *Simulation Modeling and Analysis*,
    batch means). Batches that are short next to the queue's correlation time understate it:
    a simplification, stated. NaN with fewer than two non-empty batches."""
    estimates = []
    for values in values_by_run:
        for batch in np.array_split(values, ERROR_BATCHES):
            if len(batch):
                estimates.append(float(statistic(batch)))
    finite = np.asarray([e for e in estimates if math.isfinite(e)])
    if len(finite) < 2:
        return math.nan
    return float(np.std(finite, ddof=1) / math.sqrt(len(finite)))


@dataclass(frozen=True)
class CurveSettings:
    """How much simulation each point of a curve gets.

    Short probes simulate ``requests_per_replication`` requests per replication (duration =
    requests / rate). Near saturation a short run starts empty and ends before the queue has
    built up, which flatters latency; so probes within :attr:`steady_from` x capacity of the
    capacity (and the final steps of the capacity search) are *steady* probes that also run at
    least ``steady_duration_s`` seconds of arrivals.
    """

    requests_per_replication: int = 1500  #: requests per short run
    replications: int = 2  #: runs pooled per short probe
    steady_duration_s: float = 300.0  #: least seconds of arrivals of a steady probe
    steady_replications: int = 1  #: runs pooled per steady probe
    steady_from: float = 0.75  #: grid rates at or above this share of capacity are steady
    grid_points: int = 10  #: rates on the grid (plus the capacity point)
    coarse_tolerance: float = 0.04  #: short-probe bisection stops at this relative bracket
    fine_tolerance: float = 0.015  #: steady-probe bisection stops at this relative bracket
    max_queue_batches: int = 10  #: queue cap of a probe, in batches (bounds overloaded runs)


DEFAULT_SETTINGS = CurveSettings()
QUICK_SETTINGS = CurveSettings(requests_per_replication=400, replications=1, steady_duration_s=120.0,
                               grid_points=8, fine_tolerance=0.03)  # fmt: skip


@dataclass(frozen=True)
class PointResult:
    """The pooled outcome of the runs at one rate."""

    rate_per_s: float
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    e2e_ms: np.ndarray
    slo_attainment: float
    busy_fraction: float
    prefill_busy_fraction: float
    overloaded: bool
    mean_prompt_tokens: float
    mean_output_tokens: float
    prefix_cache_hit_rate: float
    slo_attainment_stderr: float
    ttft_p95_stderr_ms: float

    def sustainable(self, target: float) -> bool:
        return (not self.overloaded) and self.slo_attainment >= target


class _Probe:
    """Runs (and remembers) the pooled simulation of one replica at a rate."""

    def __init__(
        self,
        workload: Workload,
        config: ReplicaConfig,
        timer: IterationTimer,
        seed: int,
        settings: CurveSettings,
        warmup_floor_s: float,
        speculation: tuple[float, int] | None = None,
        disaggregated: DisaggregatedConfig | None = None,
        session_affinity: bool = True,
    ) -> None:
        self.workload = model_bound(workload)  # the requests that reach the model
        self.session_affinity = session_affinity
        self.speculation = speculation
        self.disaggregated = disaggregated
        max_queue = settings.max_queue_batches * config.max_batch_size
        self.engine = EngineConfig(config, 1, "least_outstanding", max_queue)
        self.timer = timer
        self.settings = settings
        count = max(settings.replications, settings.steady_replications)
        self.seeds = np.random.SeedSequence(seed).spawn(count)
        self.warmup_floor_s = warmup_floor_s
        self.points: dict[tuple[float, bool], PointResult] = {}

    def __call__(self, rate: float, steady: bool = False) -> PointResult:
        key = (rate, steady)
        if key in self.points:
            return self.points[key]
        wl = self.workload
        settings = self.settings
        duration = settings.requests_per_replication / rate
        replications = settings.replications
        if steady:
            duration = max(duration, settings.steady_duration_s)
            replications = settings.steady_replications
        warmup = min(0.5 * duration, max(0.1 * duration, self.warmup_floor_s))
        ttft, tpot, e2e, busy, prefill_busy, prompts, outputs = [], [], [], [], [], [], []
        met_by_run: list[np.ndarray] = []
        cached_sum = prompt_sum = 0.0
        met = counted = 0
        overloaded = False
        for seq in self.seeds[:replications]:
            offered = sample_requests(wl, rate, duration, seq)
            requests = offered.gpu_requests(wl.prefix_cache_hit_rate, self.speculation)
            if requests.session is not None and not self.session_affinity:
                # a router blind to sessions sends a turn anywhere: on a fleet of many replicas
                # it rarely finds its history, only the system prompt every replica holds
                requests = dataclasses.replace(requests, session=np.arange(len(requests)))
            if self.disaggregated is not None:
                record = simulate_disaggregated(self.disaggregated, self.timer, requests, duration_s=duration,
                                                warmup_s=warmup)  # fmt: skip
            else:
                record = simulate(self.engine, self.timer, requests, duration_s=duration, warmup_s=warmup)
            overloaded |= is_overloaded(record)
            t, p, e = latencies_ms(record, offered.after_model_of(len(record.arrival_s)))
            count = counted_mask(record)
            met_flags = slo_met(t, p, e, wl.slo)[count]
            met_by_run.append(met_flags.astype(float))
            met += int(met_flags.sum())
            counted += int(count.sum())
            served = measured_mask(record) & (record.status == "completed")
            cached_sum += float(record.cached_tokens[served].sum())
            prompt_sum += float(record.prompt_tokens[served].sum())
            ttft.append(t[served])
            tpot.append(p[served])
            e2e.append(e[served])
            window = record.duration_s - record.warmup_s
            gpus = record.replica_gpus()  # GPU-time shares: replicas of a unit may differ in size
            busy.append(float(np.average([min(s.busy_s / window, 1.0) for s in record.replica_stats], weights=gpus)))
            prefill_busy.append(float(np.average([min(s.prefill_busy_s / window, 1.0)
                                                  for s in record.replica_stats], weights=gpus)))  # fmt: skip
            prompts.append(offered.prompt_tokens)
            outputs.append(offered.output_tokens)
        point = PointResult(
            rate_per_s=rate,
            ttft_ms=_quantiles(np.concatenate(ttft)),
            tpot_ms=_quantiles(np.concatenate(tpot)),
            e2e_ms=_quantiles(np.concatenate(e2e)),
            slo_attainment=met / counted if counted else 0.0,
            busy_fraction=float(np.mean(busy)),
            prefill_busy_fraction=float(np.mean(prefill_busy)),
            overloaded=overloaded,
            mean_prompt_tokens=float(np.concatenate(prompts).mean()),
            mean_output_tokens=float(np.concatenate(outputs).mean()),
            prefix_cache_hit_rate=cached_sum / prompt_sum if prompt_sum else 0.0,
            slo_attainment_stderr=batch_means_stderr(met_by_run, np.mean),
            ttft_p95_stderr_ms=batch_means_stderr([v[np.isfinite(v)] for v in ttft], lambda v: np.percentile(v, 95)),
        )
        self.points[key] = point
        return point


def _quantiles(values: np.ndarray) -> np.ndarray:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return np.full(len(QUANTILE_LEVELS), np.nan)
    return np.quantile(v, QUANTILE_LEVELS)


def saturation_rate_per_s(
    cost_model: ServingCostModel, config: ReplicaConfig, workload: Workload
) -> float:
    """Rough requests per second one replica serves flat out (cost model only, no queueing).

    Batch: the cap, or what the KV cache holds at the mean context (prompt + half the output).
    Per request: its share of the decode iterations at that batch plus the marginal time of its
    computed prompt tokens added to such an iteration.
    """
    prompt = max(1.0, model_prompt_tokens_mean(workload))
    output = max(1.0, workload.output_tokens.mean)
    computed = max(1.0, prompt * (1 - expected_prefix_hit_rate(workload)))
    context = prompt + output / 2
    kv_batch = config.kv_blocks * config.kv_block_tokens / (context + config.kv_block_tokens / 2)
    batch = max(1.0, min(config.max_batch_size, math.floor(kv_batch)))
    step = float(cost_model.decode_step_s(batch, context))
    chunk = min(computed, config.max_batched_tokens)
    with_prefill = float(cost_model.iteration_time_s(
        prefill_tokens=chunk, prefill_attention_pairs=chunk * (prompt - chunk / 2),
        prefill_sequences=1, decode_requests=batch, decode_context_tokens=batch * context,
    ))  # fmt: skip
    per_request = output * step / batch + (with_prefill - step) * computed / chunk
    return 1.0 / per_request


def _unloaded_e2e_s(cost_model: ServingCostModel, config: ReplicaConfig, workload: Workload) -> float:
    """E2E of a mean request at the largest batch (a generous warm-up scale)."""
    prompt = max(1.0, model_prompt_tokens_mean(workload))
    output = max(1.0, workload.output_tokens.mean)
    step = float(cost_model.decode_step_s(config.max_batch_size, prompt + output / 2))
    return float(cost_model.prefill_s(prompt)) + output * step


def latency_curve(
    scenario: Scenario,
    deployment: str | Deployment,
    workload: str | Workload | None = None,
    rates_per_replica: np.ndarray | list[float] | None = None,
    *,
    seed: int | None = None,
    settings: CurveSettings = DEFAULT_SETTINGS,
) -> LatencyCurve:
    """Latency percentiles vs load on one replica, and the capacity per replica (uncached).

    rates_per_replica: the grid (req/s); default: from a small fraction of the cost model's
    saturation estimate up to 1.2x the capacity, ``settings.grid_points`` rates, plus the
    capacity itself.
    """
    dep = find_deployment(scenario, deployment)
    wl = find_workload(scenario, dep, workload)
    assert wl is not None
    probe, saturation = _probe_of(scenario, dep, wl, scenario.seed if seed is None else seed, settings)
    capacity, upper = _capacity(probe, saturation, wl.slo.attainment_target, settings)
    if rates_per_replica is None:
        top = 1.2 * capacity if capacity > 0 else 0.2 * saturation
        low = min(0.05 * saturation, 0.1 * top)
        grid = np.linspace(low, top, settings.grid_points)
        if capacity > 0:
            grid = np.append(grid, capacity)
    else:
        grid = np.asarray(rates_per_replica, dtype=float)
        if np.any(grid <= 0):
            raise ValueError("rates_per_replica must be > 0")
    rates = np.unique(grid)
    steady_from = settings.steady_from * capacity if capacity > 0 else math.inf
    points = [probe(float(r), steady=r >= steady_from) for r in rates]
    return LatencyCurve(
        deployment=dep.name,
        workload=wl.name,
        rates_per_replica=rates,
        quantile_levels=QUANTILE_LEVELS.copy(),
        ttft_ms=np.vstack([p.ttft_ms for p in points]),
        tpot_ms=np.vstack([p.tpot_ms for p in points]),
        e2e_ms=np.vstack([p.e2e_ms for p in points]),
        slo_attainment=np.array([p.slo_attainment for p in points]),
        busy_fraction=np.array([p.busy_fraction for p in points]),
        prefill_busy_fraction=np.array([p.prefill_busy_fraction for p in points]),
        tokens_per_request=(
            float(np.mean([p.mean_prompt_tokens for p in points])),
            float(np.mean([p.mean_output_tokens for p in points])),
        ),
        capacity_per_replica=float(capacity),
        prefix_cache_hit_rate=np.array([p.prefix_cache_hit_rate for p in points]),
        slo_attainment_stderr=np.array([p.slo_attainment_stderr for p in points]),
        ttft_p95_stderr_ms=np.array([p.ttft_p95_stderr_ms for p in points]),
        capacity_bracket_per_replica=np.array([capacity, upper], dtype=float),
    )


def _probe_of(scenario: Scenario, dep: Deployment, wl: Workload, seed: int, settings: CurveSettings) -> tuple[_Probe, float]:
    """The probe of one replica (a P + D unit when disaggregated) and its cost-model saturation
    rate (req/s), where the capacity search starts."""
    config, cost_model, timer = replica_setup(scenario, dep, wl)
    saturation = saturation_rate_per_s(cost_model, config, wl)
    warmup_floor = 3 * _unloaded_e2e_s(cost_model, config, wl)
    units = None
    if dep.disaggregation is not None:  # one unit of P + D replicas; its capacity scales with D
        max_queue = settings.max_queue_batches * config.max_batch_size
        units = disaggregated_setup(scenario, dep, wl, config, max_queue_per_replica=max_queue)
        saturation *= dep.disaggregation.decode_replicas
    probe = _Probe(wl, config, timer, seed, settings, warmup_floor, speculation_of(dep, wl), units,
                   dep.router == "session_affinity")  # fmt: skip
    return probe, saturation


def replica_capacity(
    scenario: Scenario,
    deployment: str | Deployment,
    workload: str | Workload | None = None,
    *,
    seed: int | None = None,
    settings: CurveSettings = DEFAULT_SETTINGS,
) -> float:
    """The capacity per replica of :func:`latency_curve` alone, without its load grid (about
    two thirds of a curve's simulation; uncached): what a search that only ranks options by
    capacity needs. Equal to ``latency_curve(...).capacity_per_replica`` with the same seed."""
    dep = find_deployment(scenario, deployment)
    wl = find_workload(scenario, dep, workload)
    assert wl is not None
    probe, saturation = _probe_of(scenario, dep, wl, scenario.seed if seed is None else seed, settings)
    return float(_capacity(probe, saturation, wl.slo.attainment_target, settings)[0])


def _capacity(probe: _Probe, saturation: float, target: float, settings: CurveSettings) -> tuple[float, float]:
    """Highest sustainable rate, and the lowest rate found unsustainable above it (inf when
    none): a bisection with short probes between a light load and past saturation, refined
    with steady probes (short runs are optimistic near saturation)."""
    lo = 0.02 * saturation
    if not probe(lo).sustainable(target):
        return 0.0, lo
    hi = 1.5 * saturation
    for _ in range(4):  # the estimate may be low: widen until the load is unsustainable
        if not probe(hi).sustainable(target):
            break
        lo, hi = hi, 2 * hi
    else:
        return lo, math.inf
    lo, hi = _bisect(lambda r: probe(r).sustainable(target), lo, hi, settings.coarse_tolerance)
    steady = lambda r: probe(r, steady=True).sustainable(target)
    if steady(lo):
        return _bisect(steady, lo, hi, settings.fine_tolerance)
    hi = lo
    for _ in range(8):  # step down until a steady probe holds
        lo = 0.9 * hi
        if steady(lo):
            return _bisect(steady, lo, hi, settings.fine_tolerance)
        hi = lo
    return 0.0, hi


def _bisect(holds: Any, lo: float, hi: float, tolerance: float) -> tuple[float, float]:
    """Narrow [lo, hi] (holds at lo, not at hi) until hi - lo <= tolerance x hi."""
    for _ in range(40):
        if hi - lo <= tolerance * hi:
            break
        mid = math.sqrt(lo * hi) if hi > 4 * lo else (lo + hi) / 2
        if holds(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


# ---------------------------------------------------------------------------- caching

_MEMORY: dict[str, LatencyCurve] = {}
_CAPACITIES: dict[str, float] = {}  # capacities searched without their curve, by curve key
_ARRAYS = ("rates_per_replica", "quantile_levels", "ttft_ms", "tpot_ms", "e2e_ms",
           "slo_attainment", "busy_fraction", "prefill_busy_fraction", "prefix_cache_hit_rate",
           "slo_attainment_stderr", "ttft_p95_stderr_ms", "capacity_bracket_per_replica")  # fmt: skip


def curve_key(
    scenario: Scenario, dep: Deployment, wl: Workload, seed: int, settings: CurveSettings
) -> str:
    """Content hash of everything a curve depends on.

    Adapter and retrieval inputs enter only when used, so curves of scenarios without them keep
    the keys they had before these features (their cached files stay valid).
    """
    config, cost_model, _ = replica_setup(scenario, dep)
    adapter_fields = {"adapters", "adapter_rank", "adapter_modules", "max_adapters_per_batch"}
    replica = dict(config.__dict__)
    if replica.get("max_adapters_per_batch") is None:
        replica.pop("max_adapters_per_batch", None)
    content: dict[str, Any] = {
        "version": CURVE_VERSION,
        "model": cost_model.model.model_dump(mode="json"),
        "gpu": cost_model.gpu.model_dump(mode="json"),
        "efficiency": cost_model.efficiency.model_dump(mode="json"),
        "deployment": dep.model_dump(mode="json", exclude={"autoscaling", "router", "pool", "speculative", "disaggregation"}
                                     | adapter_fields),
        "replica": replica,
        "workload": {
            "name": wl.name,
            "prompt_tokens": wl.prompt_tokens.model_dump(mode="json"),
            "output_tokens": wl.output_tokens.model_dump(mode="json"),
            "prefix_cache_hit_rate": wl.prefix_cache_hit_rate,
            "arrival": wl.traffic.arrival,
            "burstiness_cv": wl.traffic.burstiness_cv if wl.traffic.arrival == "bursty" else None,
            "slo": wl.slo.model_dump(mode="json"),
        },
        "seed": seed,
        "settings": settings.__dict__,
    }
    if dep.adapters:
        content["adapters"] = {
            **dep.model_dump(mode="json", include=adapter_fields),
            "lora_kernel_overhead_s": LORA_KERNEL_OVERHEAD_S,
        }
    if dep.disaggregation is not None:
        content["disaggregation"] = dep.disaggregation.model_dump(mode="json")
    if dep.speculative is not None:  # enters only when used: other curves keep their keys
        draft = draft_model_of(scenario, dep)
        content["speculative"] = {
            **dep.speculative.model_dump(mode="json"),
            "acceptance_rate": acceptance_rate(dep, wl),
            "draft": draft.model_dump(mode="json") if draft is not None else None,
        }
    if wl.sessions is not None:  # enters only when used; the router then decides the hits
        content["workload"]["sessions"] = wl.sessions.model_dump(mode="json")
        content["session_affinity"] = dep.router == "session_affinity"
    if wl.adapters:
        content["workload"]["adapters"] = wl.adapters
        content["workload"]["adapter_zipf_exponent"] = wl.adapter_zipf_exponent
    if wl.retrieval is not None:  # its prices do not change latency
        content["workload"]["retrieval"] = wl.retrieval.model_dump(
            mode="json", include={"latency_ms", "retrieved_tokens"}
        )
    if wl.stages:  # as the model sees them: their prices and deployments do not change its latency
        content["workload"]["stages"] = [s.model_dump(mode="json", include=STAGE_LATENCY_FIELDS)
                                         for s in model_bound(wl).stages]  # fmt: skip
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_dir() -> Path | None:
    """Where curves are cached on disk (None: disk caching off)."""
    value = os.environ.get("FLEETSIM_CACHE_DIR")
    if value is None:
        return Path.home() / ".cache" / "fleetsim" / "curves"
    if value.strip().lower() in ("", "off", "none", "0"):
        return None
    return Path(value).expanduser()


def _checksum(curve: LatencyCurve) -> str:
    """SHA-256 of everything a cached curve holds: an edited, truncated or bit-flipped file is
    detected and the curve rebuilt, never used."""
    digest = hashlib.sha256()
    digest.update(json.dumps([curve.deployment, curve.workload, list(curve.tokens_per_request),
                              curve.capacity_per_replica]).encode())  # fmt: skip
    for name in _ARRAYS:
        values = np.ascontiguousarray(getattr(curve, name), dtype=float)
        digest.update(name.encode() + str(values.shape).encode() + values.tobytes())
    return digest.hexdigest()


def _load(path: Path) -> LatencyCurve | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.array(data[name]) for name in _ARRAYS}
            tokens = data["tokens_per_request"]
            curve = LatencyCurve(
                deployment=str(data["deployment"]),
                workload=str(data["workload"]),
                tokens_per_request=(float(tokens[0]), float(tokens[1])),
                capacity_per_replica=float(data["capacity_per_replica"]),
                **arrays,
            )
            stored = str(data["checksum"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # absent or unreadable: recompute
    return curve if stored == _checksum(curve) else None  # tampered or corrupted: recompute


def _save(path: Path, curve: LatencyCurve) -> None:
    """Cache ``curve`` at ``path`` with its checksum; a cache that cannot be written is skipped."""

    def write(temp: Path) -> None:
        with open(temp, "wb") as handle:
            np.savez(
                handle,
                deployment=np.array(curve.deployment),
                workload=np.array(curve.workload),
                tokens_per_request=np.array(curve.tokens_per_request),
                capacity_per_replica=np.array(curve.capacity_per_replica),
                checksum=np.array(_checksum(curve)),
                **{name: getattr(curve, name) for name in _ARRAYS},
            )

    try:
        write_atomic(path, write)
    except (OSError, OutputError):
        pass


def deployment_curve(
    scenario: Scenario,
    deployment: str,
    workload: str,
    *,
    seed: int | None = None,
    quick: bool = False,
) -> LatencyCurve:
    """The latency curve and capacity of one replica of ``deployment`` under ``workload``.

    Chooses its own rate grid (see :func:`latency_curve`); ``quick`` runs shorter simulations
    (for tests). Cached in memory and on disk by a content hash of the inputs that matter (model,
    GPU, calibration, deployment settings and adapters, token distributions, adapter spread,
    retrieval latency and tokens, SLO, seed, settings).
    """
    request = _request(scenario, deployment, workload, seed, quick)
    curve = _cached(request)
    if curve is None:
        curve = _remember(request, _build(request))
    return curve


def deployment_capacity(
    scenario: Scenario,
    deployment: str,
    workload: str,
    *,
    seed: int | None = None,
    quick: bool = False,
) -> float:
    """The capacity per replica (req/s) of :func:`deployment_curve` without building its load
    grid: taken from the cached curve when there is one, else searched alone
    (:func:`replica_capacity`) and cached by the curve's content hash, in memory and on disk
    (``<key>.capacity.json``)."""
    request = _request(scenario, deployment, workload, seed, quick)
    if request.key in _CAPACITIES:
        return _CAPACITIES[request.key]
    curve = _cached(request)
    if curve is not None:
        return curve.capacity_per_replica
    path = _disk_path(request.key)
    path = path.with_suffix(".capacity.json") if path is not None else None
    capacity = _load_capacity(path, request.key) if path is not None else None
    if capacity is None:
        capacity = replica_capacity(request.scenario, request.deployment, request.workload, seed=request.seed,
                                    settings=request.settings)  # fmt: skip
        if path is not None:
            text = json.dumps({"key": request.key, "capacity_per_replica": capacity})
            with contextlib.suppress(OSError, OutputError):
                write_atomic(path, text)
    _CAPACITIES[request.key] = capacity
    return capacity


def _load_capacity(path: Path, key: str) -> float | None:
    """A cached capacity, or None when absent, unreadable or another key's."""
    try:
        data = json.loads(path.read_text())
        value = float(data["capacity_per_replica"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if data.get("key") == key and math.isfinite(value) and value >= 0 else None


@dataclass(frozen=True)
class _CurveRequest:
    """One curve to find or build, with its cache key."""

    scenario: Scenario
    deployment: Deployment
    workload: Workload
    seed: int
    settings: CurveSettings
    key: str


def _request(scenario: Scenario, deployment: str, workload: str, seed: int | None, quick: bool) -> _CurveRequest:
    dep = find_deployment(scenario, deployment)
    wl = find_workload(scenario, dep, workload)
    assert wl is not None
    seed = scenario.seed if seed is None else seed
    settings = QUICK_SETTINGS if quick else DEFAULT_SETTINGS
    return _CurveRequest(scenario, dep, wl, seed, settings, curve_key(scenario, dep, wl, seed, settings))


def _disk_path(key: str) -> Path | None:
    directory = cache_dir()
    return directory / f"{key}.npz" if directory is not None else None


def _cached(request: _CurveRequest) -> LatencyCurve | None:
    """The curve from memory or from the disk cache (kept in memory then), else None."""
    if request.key in _MEMORY:
        return _MEMORY[request.key]
    path = _disk_path(request.key)
    curve = _load(path) if path is not None and path.is_file() else None
    if curve is not None:
        _MEMORY[request.key] = curve
    return curve


def _build(request: _CurveRequest) -> LatencyCurve:
    return latency_curve(request.scenario, request.deployment, request.workload, seed=request.seed,
                         settings=request.settings)  # fmt: skip


def _remember(request: _CurveRequest, curve: LatencyCurve) -> LatencyCurve:
    path = _disk_path(request.key)
    if path is not None:
        _save(path, curve)
    _MEMORY[request.key] = curve
    return curve


def prefetch(
    wanted: list[tuple[Scenario, str, str]], *, workers: int | None = None, quick: bool = False,
    on_built: Any = None,
) -> int:  # fmt: skip
    """Build the curves of ``wanted`` (scenario, deployment, workload) that no cache holds,
    each once, in parallel processes (``workers``, default the usable cores), so that later
    :func:`deployment_curve` calls find them. Returns how many were built; ``on_built(done,
    total)`` follows progress. Each curve is a function of its inputs alone (its own seeded
    streams), so a parallel build equals a serial one bit for bit.
    """
    missing: dict[str, _CurveRequest] = {}
    for scenario, deployment, workload in wanted:
        request = _request(scenario, deployment, workload, None, quick)
        if request.key not in missing and _cached(request) is None:
            missing[request.key] = request
    todo = list(missing.values())
    workers = min(workers or usable_cores(), len(todo))
    if on_built is not None:
        on_built(0, len(todo))
    if workers <= 1:
        for done, request in enumerate(todo, 1):
            _remember(request, _build(request))
            if on_built is not None:
                on_built(done, len(todo))
        return len(todo)
    import concurrent.futures
    import multiprocessing

    # a fresh interpreter per worker (forkserver: forked from a server that imported the engine
    # once), never a fork of this process and its threads
    context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                          else "spawn")  # fmt: skip
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload(["simulator.inference.curve"])
    with _single_threaded_children(), concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(_build, request): request for request in todo}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            _remember(futures[future], future.result())
            if on_built is not None:
                on_built(done, len(todo))
    return len(todo)


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Thread pools of numerical libraries, read when they load: one thread in worker processes.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_children() -> Any:
    """While workers start, the environment they inherit asks for one BLAS/OpenMP thread each
    (the workers fill the cores already; threaded BLAS on small products only spins). A value
    the user set is kept."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)


def clear_memory_cache() -> None:
    """Forget the curves (and capacities) cached in memory (the disk cache stays)."""
    _MEMORY.clear()
    _CAPACITIES.clear()
