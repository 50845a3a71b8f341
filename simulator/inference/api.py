"""``serve``: the inference engine on a scenario's deployment, as notebooks and the CLI use it.

Randomness: one ``numpy.random.Generator`` per named stream, spawned from
``np.random.SeedSequence(seed)`` in the fixed order of :data:`STREAMS` (seed defaults to the
scenario's), so the same scenario and seed give identical results. The streams of the adapter ids
and pipeline stages' draws (:data:`EXTRA_STREAMS`) are derived from the same seed without spawning
(fixed spawn keys), so workloads that use neither draw exactly what they drew before these
existed.

Adapters: a workload with ``adapters: n`` sends each request to one of n LoRA adapters, adapter k
(1-based) with probability proportional to k^-s (``adapter_zipf_exponent`` s; 0 = uniform, the
power-law popularity S-LoRA's evaluation uses for s > 0). A deployment serving adapters loses
their memory from its KV cache: ``adapters`` of them, or ``max_adapters_per_batch`` when that is
smaller (:mod:`simulator.perf.lora`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.catalog import ModelSpec
from simulator.common.errors import Problem, ScenarioError
from simulator.economics.retrieval import retrieved_tokens
from simulator.economics.stages import StageDraws, sample_stages
from simulator.inference.arrivals import arrival_process, arrival_times_s
from simulator.inference.disaggregated import DisaggregatedConfig, simulate_disaggregated
from simulator.inference.engine import (
    DEFAULT_MAX_QUEUE_PER_REPLICA,
    EngineConfig,
    RequestArrays,
    SimulationRecord,
    served_output_tokens,
    simulate,
    too_long_mask,
)
from simulator.inference.failures import FailureInjection
from simulator.inference.metrics import StageRows, replicas_frame, requests_frame, summarize
from simulator.inference.replica import ReplicaConfig
from simulator.inference.router import ROUTERS
from simulator.inference.sessions import sample_turns
from simulator.inference.timing import IterationTimer, table_tokens
from simulator.inference.trace import Trace, read_trace
from simulator.perf.lora import adapter_bytes, adapter_terms
from simulator.perf.memory import kv_cache_blocks, kv_cache_bytes, weight_bytes
from simulator.perf.roofline import ServingCostModel, activation_bytes
from simulator.perf.speculative import (
    draft_cost_model,
    draft_memory,
    expected_tokens_per_iteration,
    sample_decode_iterations,
    speculation_terms,
)
from simulator.scenario.distributions import sample_token_counts
from simulator.scenario.resolve import (
    draft_model_of,
    kv_memory_options,
    model_of,
    serving_cost_model,
)
from simulator.scenario.schema import Deployment, Scenario, ServingFailures, Workload
from simulator.scenario.stages import before_model

#: Named random streams, spawned in this order from the seed.
STREAMS = ("arrivals", "prompt_tokens", "output_tokens", "response_cache")
#: Streams derived from the seed by a fixed spawn key (the seed's key + (EXTRA_KEY + i,)).
#: "retrieval" draws every pipeline stage's latencies, "stages" whether a stage applies and blocks
#: (:func:`simulator.economics.stages.sample_stages`).
EXTRA_STREAMS = ("adapters", "retrieval", "speculation", "sessions", "think", "stages")
EXTRA_KEY = 1 << 20

#: Default warm-up: this share of the duration is excluded from statistics.
WARMUP_SHARE = 0.1


def streams(seed: int | np.random.SeedSequence) -> dict[str, np.random.Generator]:
    """One generator per named stream (:data:`STREAMS`)."""
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    out = {name: np.random.default_rng(child) for name, child in zip(STREAMS, sequence.spawn(len(STREAMS)))}
    for i, name in enumerate(EXTRA_STREAMS):
        child = np.random.SeedSequence(sequence.entropy, spawn_key=(*sequence.spawn_key, EXTRA_KEY + i),
                                       pool_size=sequence.pool_size)  # fmt: skip
        out[name] = np.random.default_rng(child)
    return out


@dataclass(frozen=True)
class ServeResult:
    """A serving simulation: ``requests`` (one row per request), ``replicas`` (one row per
    replica), ``summary`` (headline figures, JSON-ready) and the raw ``record``."""

    requests: pd.DataFrame
    replicas: pd.DataFrame
    summary: dict[str, Any]
    record: SimulationRecord


def _problem(path: tuple[str, ...], message: str) -> ScenarioError:
    return ScenarioError([Problem(path, message)])


def find_deployment(scenario: Scenario, deployment: str | Deployment) -> Deployment:
    """The named deployment, or a ScenarioError listing the known ones."""
    if isinstance(deployment, Deployment):
        return deployment
    try:
        return scenario.deployment(deployment)
    except KeyError as err:
        raise _problem(("deployments",), str(err.args[0])) from None


def find_workload(
    scenario: Scenario, deployment: Deployment, workload: str | Workload | None, required: bool = True
) -> Workload | None:
    """The named workload, else the first workload routed to ``deployment``."""
    if isinstance(workload, Workload):
        return workload
    if workload is not None:
        try:
            return scenario.workload(workload)
        except KeyError as err:
            raise _problem(("workloads",), str(err.args[0])) from None
    for w in scenario.workloads:
        if any(r.deployment == deployment.name for r in w.routes):
            return w
    if required:
        raise _problem(("workloads",), f"no workload is routed to deployment {deployment.name!r}; "
                                       "name one (--workload) or give a trace")  # fmt: skip
    return None


def replica_setup(
    scenario: Scenario, deployment: Deployment, workload: Workload | None = None
) -> tuple[ReplicaConfig, ServingCostModel, IterationTimer]:
    """Scheduler limits, cost model and iteration timer of one replica of ``deployment``
    (speculative decoding at ``workload``'s acceptance rate when it overrides the deployment's)."""
    cost_model = serving_cost_model(scenario, deployment)
    draft = draft_model_of(scenario, deployment)
    config = replica_limits(cost_model, deployment, draft)
    speculation = None
    if deployment.speculative is not None and draft is not None:
        spec = deployment.speculative
        tokens = expected_tokens_per_iteration(acceptance_rate(deployment, workload), spec.draft_tokens)
        speculation = speculation_terms(cost_model, draft_cost_model(cost_model, draft), spec.draft_tokens,
                                        tokens, config.max_batch_size)  # fmt: skip
    adapters = None
    if deployment.adapters:
        adapters = adapter_terms(
            cost_model.model, cost_model.gpu, cost_model.efficiency, deployment.tensor_parallel,
            deployment.adapter_rank, deployment.adapter_modules,
            table_tokens(config.max_iteration_tokens, speculation), activation_bytes(deployment.dtype),
        )  # fmt: skip
    timer = IterationTimer.from_cost_model(cost_model, config.max_iteration_tokens, adapters, speculation)
    return config, cost_model, timer


def disaggregated_setup(
    scenario: Scenario, deployment: Deployment, workload: Workload | None, decode: ReplicaConfig,
    units: int = 1, router: str | None = None, max_queue_per_replica: int = DEFAULT_MAX_QUEUE_PER_REPLICA,
) -> DisaggregatedConfig:  # fmt: skip
    """``units`` prefill + decode units of a disaggregated ``deployment`` (see
    :mod:`simulator.inference.disaggregated`): the prefill replicas at their own tensor
    parallelism and token budget without speculation, the decode replicas as the deployment
    is configured, and the KV link between them."""
    d = deployment.disaggregation
    assert d is not None
    prefill_tp = d.prefill_tensor_parallel or deployment.tensor_parallel
    prefill_dep = deployment.model_copy(update={
        "tensor_parallel": prefill_tp, "disaggregation": None, "speculative": None,
        "max_batched_tokens": d.prefill_max_batched_tokens or deployment.max_batched_tokens,
    })  # fmt: skip
    prefill_config, prefill_cm, prefill_timer = replica_setup(scenario, prefill_dep, workload)
    if d.kv_transfer_gb_per_s is not None:
        bandwidth = d.kv_transfer_gb_per_s * 1e9
    else:  # each GPU's own NIC, at the calibrated interconnect efficiency
        ranks = min(prefill_tp, deployment.tensor_parallel)
        bandwidth = prefill_cm.gpu.internode_gb_per_s * 1e9 * ranks * prefill_cm.efficiency.interconnect_efficiency
    route = router or deployment.router
    return DisaggregatedConfig(
        prefill=EngineConfig(prefill_config, d.prefill_replicas * units, route, max_queue_per_replica),
        decode=EngineConfig(decode, d.decode_replicas * units, route, max_queue_per_replica),
        prefill_timer=prefill_timer,
        kv_transfer_s_per_token=prefill_cm.kv_bytes_per_token / bandwidth,
        kv_transfer_latency_s=d.kv_transfer_latency_ms / 1000,
        prefill_gpus_per_replica=prefill_tp,
        decode_gpus_per_replica=deployment.tensor_parallel,
    )


def acceptance_rate(deployment: Deployment, workload: Workload | None) -> float:
    """Draft acceptance rate of ``workload``'s requests on ``deployment`` (0 without speculation)."""
    if deployment.speculative is None:
        return 0.0
    if workload is not None and workload.speculative_acceptance_rate is not None:
        return workload.speculative_acceptance_rate
    return deployment.speculative.acceptance_rate


def replica_limits(
    cost_model: ServingCostModel, deployment: Deployment, draft: ModelSpec | None = None
) -> ReplicaConfig:
    """The scheduler limits of one replica (context, KV blocks, batch), without its timer."""
    return ReplicaConfig(
        max_batch_size=deployment.max_batch_size,
        max_batched_tokens=deployment.max_batched_tokens,
        kv_blocks=replica_kv_blocks(cost_model, deployment, draft),
        kv_block_tokens=deployment.kv_block_tokens,
        max_context_tokens=cost_model.model.max_context_tokens,
        max_adapters_per_batch=deployment.max_adapters_per_batch if deployment.adapters else None,
        admission=deployment.preset.admission,
    )


#: Requests drawn to estimate the share refused as too long (a 0.1% share is then known to
#: about +-0.02 percentage points).
TOO_LONG_SAMPLES = 200_000


def too_long_share(scenario: Scenario, deployment: Deployment, workload: Workload) -> float:
    """Share of ``workload``'s requests ``deployment`` refuses as too long (past the model's
    context or the replica's whole KV cache), as the engine decides it, estimated from
    :data:`TOO_LONG_SAMPLES` draws of the token distributions (fixed seed: deterministic)."""
    if workload.sessions is not None:  # conversations: histories make late turns long
        turns = sample_turns(workload, TOO_LONG_SAMPLES / 3600, 3600, streams(20240917), retrieved_tokens(workload))
        prompt, output = turns.prompt_tokens, turns.output_tokens
    else:
        rng = np.random.default_rng(20240917)
        prompt = sample_token_counts(workload.prompt_tokens, rng, TOO_LONG_SAMPLES)
        prompt = prompt + retrieved_tokens(workload)  # with stages on some requests: their mean
        output = sample_token_counts(workload.output_tokens, rng, TOO_LONG_SAMPLES)
    limits = replica_limits(serving_cost_model(scenario, deployment), deployment,
                            draft_model_of(scenario, deployment))  # fmt: skip
    return float(too_long_mask(prompt, served_output_tokens(prompt, output, limits), limits).mean())


def resident_adapters(deployment: Deployment) -> int:
    """Adapters held in GPU memory: all served, or the per-batch cap when smaller."""
    cap = deployment.max_adapters_per_batch
    return deployment.adapters if cap is None else min(deployment.adapters, cap)


def replica_kv_blocks(
    cost_model: ServingCostModel, deployment: Deployment, draft: ModelSpec | None = None
) -> int:
    """KV-cache blocks of one replica: memory after weights, resident LoRA adapters and a
    speculative draft's weights; a draft's own KV cache grows with every token as well."""
    args = (cost_model.model, cost_model.gpu, deployment.dtype)
    options = kv_memory_options(deployment)
    if not deployment.adapters and draft is None:
        return kv_cache_blocks(*args, deployment.kv_dtype, deployment.tensor_parallel,
                               deployment.gpu_memory_utilization, deployment.kv_block_tokens,
                               **options)  # type: ignore[arg-type]  # fmt: skip
    free = kv_cache_bytes(*args, deployment.tensor_parallel, deployment.gpu_memory_utilization,
                          **options)  # type: ignore[arg-type]  # fmt: skip
    free -= resident_adapters(deployment) * adapter_bytes(
        cost_model.model, deployment.adapter_rank, deployment.adapter_modules,
        activation_bytes(deployment.dtype),
    )  # fmt: skip
    per_token = cost_model.kv_bytes_per_token
    if draft is not None and deployment.speculative is not None:
        weights, draft_kv = draft_memory(cost_model.model, draft, deployment.speculative.method,
                                         deployment.dtype, deployment.kv_dtype, deployment.tensor_parallel)  # fmt: skip
        free -= weights
        per_token += draft_kv
    per_block = per_token * deployment.kv_block_tokens
    return max(int(free // per_block), 0)


def prefix_cached_tokens(prompt_tokens: np.ndarray, hit_rate: float) -> np.ndarray:
    """Prompt tokens served from the prefix cache: round(hit_rate x prompt), at most prompt - 1
    (the last prompt token is always computed, it yields the first output token)."""
    return np.minimum(np.rint(hit_rate * prompt_tokens).astype(np.int64), prompt_tokens - 1)


@dataclass(frozen=True)
class OfferedRequests:
    """All requests offered to the deployment, with the response-cache hits marked."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    cache_hit: np.ndarray  #: bool: answered by the response cache, never reaches the GPUs
    adapter: np.ndarray | None = None  #: LoRA adapter id per request (-1: base model)
    #: seconds in the stages before the model (retrieval; 0 for response-cache hits)
    retrieval_s: np.ndarray | None = None
    #: seed of the speculative-decoding acceptance draws (from the "speculation" stream)
    speculation_seed: int = 0
    session: np.ndarray | None = None  #: conversations: session id per request
    reusable_tokens: np.ndarray | None = None  #: conversations: system + history tokens
    shared_prefix_tokens: int = 0  #: conversations: the system prompt's tokens
    after_model_s: np.ndarray | None = None  #: seconds in the stages after the model
    blocked: np.ndarray | None = None  #: bool: blocked by a stage before the model (never reaches it)
    blocked_after: np.ndarray | None = None  #: bool: its answer blocked by a stage after the model

    def gpu_order(self) -> np.ndarray:
        """Indices of the requests that reach the deployment, in their order of arrival there
        (neither response-cache hits nor blocked before the model)."""
        keep = ~self.cache_hit if self.blocked is None else ~self.cache_hit & ~self.blocked
        index = np.flatnonzero(keep)
        if self.retrieval_s is None:
            return index
        return index[np.argsort(self.arrival_s[index] + self.retrieval_s[index], kind="stable")]

    def after_model_of(self, record_requests: int) -> np.ndarray | None:
        """Seconds after the model of the first ``record_requests`` GPU requests (a record's)."""
        if self.after_model_s is None:
            return None
        return self.after_model_s[self.gpu_order()[:record_requests]]

    def gpu_requests(
        self, prefix_cache_hit_rate: float, speculation: tuple[float, int] | None = None
    ) -> RequestArrays:
        """The requests that reach the deployment (:meth:`gpu_order`), in order of arrival there
        (``arrival_s`` + the stages before the model; a stable sort, so without them the order is
        unchanged).

        speculation: (acceptance rate, draft tokens) of a speculative deployment: each request
        then carries the verification iterations its decode needs (drawn per offered request,
        so a request's luck does not depend on which others were answered from a cache)."""
        index = self.gpu_order()
        arrival = self.arrival_s[index]
        retrieval = adapter = None
        if self.retrieval_s is not None:
            retrieval = self.retrieval_s[index]
            arrival = arrival + retrieval
        prompt = self.prompt_tokens[index]
        if self.adapter is not None:
            adapter = self.adapter[index]
        session = reusable = None
        cached = prefix_cached_tokens(prompt, prefix_cache_hit_rate)
        if self.session is not None and self.reusable_tokens is not None:  # the replicas' caches decide
            session, reusable = self.session[index], self.reusable_tokens[index]
            cached = np.zeros(len(prompt), dtype=np.int64)
        iterations = None
        if speculation is not None:
            rng = np.random.default_rng(self.speculation_seed)
            drawn = sample_decode_iterations(self.output_tokens - 1, *speculation, rng)
            iterations = drawn[index]
        return RequestArrays(
            arrival_s=arrival,
            prompt_tokens=prompt,
            output_tokens=self.output_tokens[index],
            cached_tokens=cached,
            adapter=adapter,
            retrieval_s=retrieval,
            decode_iterations=iterations,
            session=session,
            reusable_tokens=reusable,
            shared_prefix_tokens=self.shared_prefix_tokens,
        )


def sample_adapters(workload: Workload, rng: np.random.Generator, n: int) -> np.ndarray | None:
    """Adapter id per request (0 .. adapters - 1, Zipf popularity; see the module docstring), or
    None when the workload uses the base model."""
    if not workload.adapters:
        return None
    rank = np.arange(1, workload.adapters + 1, dtype=float)
    weights = rank ** -workload.adapter_zipf_exponent
    return rng.choice(workload.adapters, size=n, p=weights / weights.sum()).astype(np.int64)


def _stages(
    workload: Workload | None, rngs: dict[str, np.random.Generator], cache_hit: np.ndarray
) -> tuple[np.ndarray | None, StageDraws]:
    """Adapter ids and the pipeline stages' draws of the offered requests (None where not used)."""
    if workload is None:
        return None, StageDraws(None, None, None, None, None)
    adapter = sample_adapters(workload, rngs["adapters"], len(cache_hit))
    return adapter, sample_stages(workload, rngs["retrieval"], rngs["stages"], cache_hit)


def _staged(draws: StageDraws) -> dict[str, Any]:
    """The :class:`OfferedRequests` fields of the stages' draws (beside ``retrieval_s``)."""
    return {"after_model_s": draws.after_s, "blocked": draws.blocked, "blocked_after": draws.blocked_after}


def sample_requests(
    workload: Workload, rate_per_s: float, duration_s: float, seed: int | np.random.SeedSequence
) -> OfferedRequests:
    """Arrivals at ``rate_per_s`` over ``duration_s`` with the workload's arrival process,
    token distributions and response-cache hit rate, adapter ids and pipeline stages (the
    tokens they add, retrieved passages, join the prompts they run on)."""
    rngs = streams(seed)
    if workload.sessions is not None:
        return _session_requests(workload, rate_per_s, duration_s, rngs)
    times = arrival_times_s(arrival_process(workload.traffic, rate_per_s), rngs["arrivals"], duration_s)
    n = len(times)
    prompt = sample_token_counts(workload.prompt_tokens, rngs["prompt_tokens"], n)
    output = sample_token_counts(workload.output_tokens, rngs["output_tokens"], n)
    cache_hit = rngs["response_cache"].random(n) < workload.response_cache_hit_rate
    adapter, draws = _stages(workload, rngs, cache_hit)
    if draws.added_tokens is not None:
        prompt = prompt + draws.added_tokens
    return OfferedRequests(times, prompt, output, cache_hit, adapter, draws.before_s, _speculation_seed(rngs),
                           **_staged(draws))  # fmt: skip


def _session_requests(
    workload: Workload, rate_per_s: float, duration_s: float, rngs: dict[str, np.random.Generator]
) -> OfferedRequests:
    """The turns of ``workload``'s conversations (:mod:`simulator.inference.sessions`); every
    turn carries the stages' mean added tokens (its history holds them)."""
    turns = sample_turns(workload, rate_per_s, duration_s, rngs, retrieved_tokens(workload))
    n = len(turns.arrival_s)
    cache_hit = rngs["response_cache"].random(n) < workload.response_cache_hit_rate
    adapter, draws = _stages(workload, rngs, cache_hit)
    return OfferedRequests(turns.arrival_s, turns.prompt_tokens, turns.output_tokens, cache_hit, adapter,
                           draws.before_s, _speculation_seed(rngs), turns.session, turns.reusable_tokens,
                           workload.sessions.system_prompt_tokens, **_staged(draws))  # type: ignore[union-attr]  # fmt: skip


def _speculation_seed(rngs: dict[str, np.random.Generator]) -> int:
    return int(rngs["speculation"].integers(1 << 62))


def speculation_of(deployment: Deployment, workload: Workload | None) -> tuple[float, int] | None:
    """(acceptance rate, draft tokens) for :meth:`OfferedRequests.gpu_requests` (None: off)."""
    if deployment.speculative is None:
        return None
    return acceptance_rate(deployment, workload), deployment.speculative.draft_tokens


#: Most requests one ``serve`` run simulates (time and memory stay bounded: ~1 KB a request).
MAX_SERVE_REQUESTS = 5_000_000


def serve(
    scenario: Scenario,
    deployment: str | Deployment,
    workload: str | Workload | None = None,
    *,
    rps: float | None = None,
    duration_s: float | None = None,
    replicas: int = 1,
    seed: int | None = None,
    trace: Trace | str | Path | None = None,
    router: str | None = None,
    warmup_s: float | None = None,
    drain_s: float | None = None,
    max_queue_per_replica: int = DEFAULT_MAX_QUEUE_PER_REPLICA,
    concurrency: int | None = None,
    think_s: float | None = None,
    think: str = "constant",
    failures: bool | ServingFailures = False,
    failures_per_gpu_day: float | None = None,
) -> ServeResult:
    """Simulate ``replicas`` replicas of ``deployment`` serving a request stream.

    Requests come from the workload (default: the first routed to the deployment) at ``rps``
    requests per second for ``duration_s`` seconds, or from ``trace`` (a :class:`Trace`, or a CSV
    path read with :func:`~simulator.inference.trace.read_trace`): its arrival times and token
    counts; ``rps`` then rescales the trace's time axis to that mean rate, and ``duration_s``
    defaults to the trace's span. The workload still gives the SLO, the cache hit rates, the
    adapter ids and the retrieval latency (a trace's prompts are taken as the model saw them:
    retrieved tokens are not added).

    replicas: replicas, or prefill + decode units of a disaggregated deployment.
    router: "round_robin", "least_outstanding" or "shared_queue" (default: the deployment's).
    warmup_s: start of the measurement window (default 10% of ``duration_s``). drain_s: most
    seconds simulated after the arrivals stop (default ``duration_s``).

    concurrency: closed-loop load instead of ``rps`` (how ``vllm bench serve
    --max-concurrency`` and NIM/AIPerf concurrency sweeps measure): that many users each send a
    request, wait for its last token, think ``think_s`` seconds and send the next, for
    ``duration_s`` seconds; the summary's ``offered_requests_per_s`` is then the rate achieved.
    think_s defaults to the workload's (a concurrent-users workload), else 0; ``think``:
    "constant" (every wait is think_s) or "exponential" (mean think_s).

    failures: inject replica failures (:mod:`simulator.inference.failures`) with the
    deployment's ``failures`` settings (True) or these; ``failures_per_gpu_day`` overrides the
    rate (and turns injection on). The summary then adds the failed and retried requests, the
    availability and a ``failures`` block.
    """
    dep = find_deployment(scenario, deployment)
    wl = find_workload(scenario, dep, workload, required=trace is None)
    if replicas < 1:
        raise _problem(("replicas",), f"replicas (={replicas}) must be >= 1")
    if router is not None and router not in ROUTERS:
        raise _problem(("router",), f"unknown router {router!r} (expected one of: {', '.join(ROUTERS)})")
    seed = scenario.seed if seed is None else seed
    replica_config, _, timer = replica_setup(scenario, dep, wl)
    if think not in THINK_DISTRIBUTIONS:
        raise _problem(("think",), f"unknown think-time distribution {think!r} (expected one of: "
                                   f"{', '.join(THINK_DISTRIBUTIONS)})")  # fmt: skip
    if think_s is None:
        think_s = (wl.users_think_s if wl is not None else None) or 0.0
    if concurrency is not None:
        offered, duration = _closed_loop_requests(wl, concurrency, think_s, rps, duration_s, trace, timer, seed)
    elif trace is not None:
        offered, duration = _trace_requests(trace, wl, rps, duration_s, seed)
    else:
        if rps is None or not rps > 0:
            raise _problem(("rps",), "give a request rate > 0 (requests per second) or a trace")
        if duration_s is None or not duration_s > 0:
            raise _problem(("duration_s",), "give a duration > 0 seconds or a trace")
        assert wl is not None
        expected = rps * duration_s
        if expected > MAX_SERVE_REQUESTS:
            raise _problem(("rps",), f"{rps:g} req/s for {duration_s:g} s is about {expected:,.0f} requests; "
                                     f"one serve run simulates at most {MAX_SERVE_REQUESTS:,} "
                                     "(shorten --duration-s or lower --rps)")  # fmt: skip
        offered, duration = sample_requests(wl, rps, duration_s, seed), duration_s
    warmup = WARMUP_SHARE * duration if warmup_s is None else warmup_s
    if not 0 <= warmup < duration:
        raise _problem(("warmup_s",), f"warm-up (={warmup:g} s) must be in [0, duration={duration:g} s)")
    hit_rate = wl.prefix_cache_hit_rate if wl is not None else 0.0
    gpu_requests = offered.gpu_requests(hit_rate, speculation_of(dep, wl))
    waits = None if concurrency is None else _think_times_s(think, think_s, len(gpu_requests), seed)
    options = {"duration_s": duration, "warmup_s": warmup, "drain_s": drain_s, "concurrency": concurrency,
               "think_s": waits}  # fmt: skip
    if dep.disaggregation is not None and (failures is not False or failures_per_gpu_day is not None):
        raise _problem(("failures",), "failure injection does not support disaggregated deployments yet")
    if dep.disaggregation is not None:  # replicas count prefill + decode units
        units = disaggregated_setup(scenario, dep, wl, replica_config, replicas, router, max_queue_per_replica)
        record = simulate_disaggregated(units, timer, gpu_requests, **options)
    else:
        config = EngineConfig(replica_config, replicas, router or dep.router, max_queue_per_replica)
        injection, per_gpu_day = _failure_injection(scenario, dep, failures, failures_per_gpu_day, seed)
        record = simulate(config, timer, gpu_requests, **options, failures=injection)
    if concurrency is not None:  # the offered stream is what the clients sent
        offered = _sent(offered, record)
    hits = offered.cache_hit & (offered.arrival_s < duration)  # answered at once: no retrieval
    slo = wl.slo if wl is not None else None
    requests = requests_frame(record, slo, offered.arrival_s[hits], offered.prompt_tokens[hits],
                              offered.output_tokens[hits], _stage_rows(offered, record, duration, wl))  # fmt: skip
    replica_frame = replicas_frame(record)
    summary = summarize(record, requests, replica_frame, slo)
    summary.update(
        deployment=dep.name,
        workload=wl.name if wl is not None else None,
        offered_requests_per_s=float((offered.arrival_s < duration).sum() / duration),
        seed=seed,
    )
    if concurrency is not None:
        summary.update(concurrency=concurrency, think_s=think_s, think=think)
    if dep.disaggregation is not None:
        d = dep.disaggregation
        transfer = units.transfer_s(gpu_requests.prompt_tokens)
        summary["disaggregation"] = {
            **d.model_dump(mode="json"), "units": replicas,
            "kv_transfer_ms_mean": float(transfer.mean() * 1000) if len(transfer) else None,
        }  # fmt: skip
    if dep.speculative is not None and timer.speculation is not None:
        summary["speculative"] = {
            **dep.speculative.model_dump(mode="json"),
            "acceptance_rate": acceptance_rate(dep, wl),
            "tokens_per_iteration": timer.speculation.tokens_per_iteration,
        }
    if record.failures is not None:
        summary["failures"]["per_gpu_day"] = per_gpu_day
    return ServeResult(requests, replica_frame, summary, record)


def _stage_rows(offered: OfferedRequests, record: SimulationRecord, duration: float,
                workload: Workload | None) -> StageRows:  # fmt: skip
    """The pipeline stages' part of the requests frame (see :class:`StageRows`)."""
    k = len(record.arrival_s)
    after_blocked = None
    if offered.blocked_after is not None:  # only answers the model gave
        after_blocked = offered.blocked_after[offered.gpu_order()[:k]] & (record.status == "completed")
    label = "retrieval" if workload is None or all(s.kind == "retrieval" for s in before_model(workload)) \
        else "before_model"  # fmt: skip
    if offered.blocked is None:
        return StageRows(offered.after_model_of(k), after_blocked, before_label=label)
    blocked = offered.blocked & (offered.arrival_s < duration)
    return StageRows(offered.after_model_of(k), after_blocked, offered.arrival_s[blocked], offered.prompt_tokens[blocked],
                     offered.output_tokens[blocked], offered.retrieval_s[blocked], label)  # type: ignore[index]  # fmt: skip


def _failure_injection(
    scenario: Scenario, dep: Deployment, failures: bool | ServingFailures, per_gpu_day: float | None, seed: int
) -> tuple[FailureInjection | None, float | None]:
    """The failures ``serve`` injects (None: off) and their rate per GPU-day."""
    if failures is False and per_gpu_day is None:
        return None, None
    if per_gpu_day is not None and not (math.isfinite(per_gpu_day) and per_gpu_day >= 0):
        raise _problem(("failures_per_gpu_day",), f"failures per GPU-day (={per_gpu_day:g}) must be >= 0")
    settings = failures if isinstance(failures, ServingFailures) else dep.failures
    weights = weight_bytes(model_of(scenario, dep.model), dep.dtype)
    rate = settings.per_gpu_day if per_gpu_day is None else per_gpu_day
    return FailureInjection.of(settings, dep.gpus_per_replica, weights, seed, rate), rate


def _closed_loop_requests(
    workload: Workload | None, concurrency: int, think_s: float, rps: float | None,
    duration_s: float | None, trace: Any, timer: IterationTimer, seed: int,
) -> tuple[OfferedRequests, float]:  # fmt: skip
    """The request pool a closed loop draws from, in the order the clients send them.

    Enough for the most the clients could send: a request takes at least its output tokens x
    the fastest iteration, plus half the mean think time (response-cache hits and retrieval do not apply:
    every request reaches the GPUs).
    """
    if rps is not None or trace is not None:
        raise _problem(("concurrency",), "give either --concurrency (closed loop) or --rps/--trace (open loop)")
    if concurrency < 1:
        raise _problem(("concurrency",), f"concurrency (={concurrency}) must be >= 1")
    if not think_s >= 0:
        raise _problem(("think_s",), f"think time (={think_s}) must be >= 0 seconds")
    if duration_s is None or not duration_s > 0:
        raise _problem(("duration_s",), "give a duration > 0 seconds")
    assert workload is not None
    rngs = streams(seed)
    probe = sample_token_counts(workload.output_tokens, rngs["output_tokens"], 10_000)
    fastest_s = float(np.percentile(probe, 1)) * timer.fastest_token_s + think_s / 2  # exponential waits vary
    n = int(min(MAX_SERVE_REQUESTS, concurrency * (duration_s / max(fastest_s, 1e-6) + 2)))
    prompt = sample_token_counts(workload.prompt_tokens, rngs["prompt_tokens"], n)
    prompt = prompt + retrieved_tokens(workload)  # with stages on some requests: their mean
    output = sample_token_counts(workload.output_tokens, rngs["output_tokens"], n)
    adapter = sample_adapters(workload, rngs["adapters"], n)
    return OfferedRequests(np.zeros(n), prompt, output, np.zeros(n, dtype=bool), adapter,
                           speculation_seed=_speculation_seed(rngs)), duration_s  # fmt: skip


#: How a closed loop's users wait between an answer and their next request.
THINK_DISTRIBUTIONS = ("constant", "exponential")


def _think_times_s(distribution: str, mean_s: float, n: int, seed: int) -> np.ndarray:
    """Each request's think time: the wait after an answer before it is sent (the users'
    first requests go at once)."""
    if distribution == "exponential" and mean_s > 0:
        return streams(seed)["think"].exponential(mean_s, n)
    return np.full(n, float(mean_s))


def _sent(offered: OfferedRequests, record: SimulationRecord) -> OfferedRequests:
    """The closed loop's pool cut to the requests sent, with their send times."""
    k = len(record.arrival_s)
    cut = None if offered.adapter is None else offered.adapter[:k]
    return OfferedRequests(record.arrival_s, offered.prompt_tokens[:k], offered.output_tokens[:k],
                           offered.cache_hit[:k], cut, speculation_seed=offered.speculation_seed)  # fmt: skip


def _trace_requests(
    trace: Trace | str | Path,
    workload: Workload | None,
    rps: float | None,
    duration_s: float | None,
    seed: int,
) -> tuple[OfferedRequests, float]:
    data = trace if isinstance(trace, Trace) else read_trace(trace)
    if len(data) == 0:
        raise _problem(("trace",), "the trace has no requests")
    arrival = data.arrival_s
    if rps is not None:
        if not rps > 0:
            raise _problem(("rps",), f"rps (={rps}) must be > 0")
        rate = data.mean_rate_per_s
        if not rate > 0:
            raise _problem(("rps",), "cannot rescale a trace whose requests all arrive at once")
        arrival = arrival * (rate / rps)
    duration = float(np.nextafter(arrival[-1], np.inf)) if duration_s is None else duration_s
    if not duration > 0:
        raise _problem(("duration_s",), f"duration (={duration:g} s) must be > 0")
    hit_rate = workload.response_cache_hit_rate if workload is not None else 0.0
    rngs = streams(seed)
    cache_hit = rngs["response_cache"].random(len(arrival)) < hit_rate
    adapter, draws = _stages(workload, rngs, cache_hit)
    return OfferedRequests(arrival, data.prompt_tokens, data.output_tokens, cache_hit, adapter,
                           draws.before_s, _speculation_seed(rngs), **_staged(draws)), duration  # fmt: skip
