"""Published serving benchmarks as calibration data: replay each one in the inference engine.

A benchmark case is one published figure (the layout of ``serving_calibration.csv``: GPU, model,
dtype, TP, ISL/OSL, request count or Poisson rate, the engine's batch and token limits, its memory
fraction, the metric and its value). :func:`predict` rebuilds the replica the benchmark ran
(catalog model and GPU, a calibration profile's efficiencies, the engine preset's scheduler) and
replays the benchmark's load in the same discrete-event engine that plans use:

- ``output_tokens_per_s``: every request queued at t = 0 (trtllm-bench, ``vllm bench throughput``);
  total output tokens / makespan.
- ``mean_itl_ms`` / ``mean_tpot_ms``: mean over requests of (E2E - TTFT) / (output - 1), under
  Poisson arrivals at ``rate_rps`` (or, with no rate, one request at a time: batch-1 decode).
- ``mean_ttft_ms``: mean arrival-to-first-token under the same load.
- A latency row whose ``measure`` says ``concurrency=N`` (N > 1) is replayed closed-loop: N
  clients each send the next request when the last one ends (no think time); the first round,
  sent all at once, is left out of the mean.

:func:`fit_profiles` adjusts profiles' efficiencies to minimise the mean squared log error over
cases (Nelder-Mead in a bounded, physical space: efficiencies stay in (0, 1]). No file I/O here:
the CLI reads the CSV / JSON and passes rows in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from calibration.fit import mape, nelder_mead
from simulator.catalog import BYTES_PER_ELEMENT, Catalog, bundled_catalog
from simulator.inference.api import replica_limits
from simulator.inference.engine import EngineConfig, RequestArrays, simulate
from simulator.inference.replica import ReplicaConfig
from simulator.inference.timing import IterationTimer
from simulator.perf.engines import ENGINE_PRESETS
from simulator.perf.profile import EfficiencyParameters
from simulator.perf.roofline import ServingCostModel
from simulator.scenario.resolve import deployment_cost_model
from simulator.scenario.schema import Deployment

#: Short names used by published tables and ``serving_calibration.csv`` -> catalog names.
GPU_ALIASES = {"h100": "h100-sxm", "a100-80": "a100-80-sxm", "a100": "a100-80-sxm",
               "a100-40": "a100-40-sxm"}  # fmt: skip
MODEL_ALIASES = {"llama3-8b": "llama-3.1-8b", "llama3-70b": "llama-3.1-70b",
                 "llama3-405b": "llama-3.1-405b", "pm-llama-3.1-8b": "llama-3.1-8b",
                 "mixtral": "mixtral-8x7b", "llama2-7b": "llama-2-7b", "llama2-70b": "llama-2-70b"}  # fmt: skip
#: Catalog fall-backs when a 3.1 entry is missing (same shapes, 8k context).
_MODEL_FALLBACK = {"llama-3.1-8b": "llama-3-8b", "llama-3.1-70b": "llama-3-70b",
                   "llama-3.1-405b": "llama-3-405b"}  # fmt: skip

METRICS = ("output_tokens_per_s", "mean_itl_ms", "mean_tpot_ms", "mean_ttft_ms")
#: Requests replayed for a latency row that does not say how many (trt014 states 500).
DEFAULT_LATENCY_REQUESTS = 500
#: Throughput rows replay at most this many requests (the published counts are 1,000-3,000):
#: the makespan is dominated by the steady state, so the figure moves < 1% (checked on the
#: serving_calibration rows) while a fit's hundreds of replays stay fast.
MAX_THROUGHPUT_REQUESTS = 3000


class CaseError(ValueError):
    """A benchmark row that cannot be read (the message names the row and the field)."""


@dataclass(frozen=True)
class ServingCase:
    """One published serving figure and the settings it was measured under."""

    case: str
    gpu: str
    model: str
    dtype: str
    tensor_parallel: int
    input_tokens: int
    output_tokens: int
    metric: str
    value: float
    engine: str = "vllm"
    requests: int | None = None
    rate_rps: float | None = None
    max_batch_size: int | None = None
    max_tokens_per_iteration: int | None = None
    gpu_memory_fraction: float | None = None
    source: str = ""
    #: closed-loop clients (from the measure text, "concurrency=N"); None: open loop
    concurrency: int | None = None

    @property
    def area(self) -> str:
        """Which kind of figure: 'throughput', 'latency' (under load) or 'batch1'."""
        if self.metric == "output_tokens_per_s":
            return "throughput"
        loaded = self.rate_rps is not None or (self.concurrency or 1) > 1
        return "latency" if loaded else "batch1"


def _engine_key(text: str) -> str:
    """Engine preset name from a free-text engine column ('TensorRT-LLM v1.0 ...')."""
    low = text.lower().replace("_", "-")
    if "tensorrt" in low or "trt" in low:
        return "tensorrt-llm"
    if "sglang" in low:
        return "sglang"
    return "vllm"


def case_from_row(row: Mapping[str, Any], where: str) -> ServingCase:
    """A :class:`ServingCase` from one CSV row (strings or numbers); ``where`` names the row."""

    def text(name: str, default: str | None = None) -> str:
        value = row.get(name)
        if value is None or str(value).strip() == "":
            if default is None:
                raise CaseError(f"{where}: column {name!r} is empty (expected a value)")
            return default
        return str(value).strip()

    def number(name: str, kind: type = float, required: bool = False) -> Any:
        value = row.get(name)
        if value is None or str(value).strip() == "":
            if required:
                raise CaseError(f"{where}: column {name!r} is empty (expected a number)")
            return None
        try:
            parsed = float(value)
        except (TypeError, ValueError):
            raise CaseError(f"{where}: column {name!r}: expected a number, got {value!r}") from None
        if not math.isfinite(parsed) or parsed <= 0:
            raise CaseError(f"{where}: column {name!r}: expected a positive number, got {value!r}")
        return int(parsed) if kind is int else parsed

    metric = text("metric")
    if metric not in METRICS:
        raise CaseError(f"{where}: metric {metric!r} is not one of {', '.join(METRICS)}")
    dtype = text("dtype", "bf16").lower()
    if dtype in ("fp16", "float16"):
        dtype = "bf16"  # same widths and peak on every catalog GPU
    if dtype not in BYTES_PER_ELEMENT:
        raise CaseError(f"{where}: dtype {dtype!r} is not one of {', '.join(BYTES_PER_ELEMENT)}")
    gpu = text("gpu").lower()
    model = text("model").lower()
    found = re.search(r"concurrency\s*[=:]?\s*(\d+)", str(row.get("measure") or ""))
    concurrency = int(found.group(1)) if found else None
    return ServingCase(
        case=text("case", where), gpu=GPU_ALIASES.get(gpu, gpu), model=MODEL_ALIASES.get(model, model),
        dtype=dtype, tensor_parallel=number("tp", int) or 1,
        input_tokens=number("isl", int, True), output_tokens=number("osl", int, True),
        metric=metric, value=number("value", float, True), engine=_engine_key(text("engine", "vllm")),
        requests=number("requests", int), rate_rps=number("rate_rps"),
        max_batch_size=number("max_batch_size", int),
        max_tokens_per_iteration=number("max_tokens_per_iteration", int),
        gpu_memory_fraction=number("gpu_memory_fraction"), source=text("source", ""),
        concurrency=concurrency,
    )  # fmt: skip


def cases_from_rows(rows: Iterable[Mapping[str, Any]], name: str) -> list[ServingCase]:
    """Every row of a benchmark table as a case (row numbers count the header as line 1)."""
    return [case_from_row(row, f"{name}:{i + 2}") for i, row in enumerate(rows)]


def cases_from_vllm_bench(result: Mapping[str, Any], gpu: str, model: str, dtype: str,
                          tensor_parallel: int, name: str) -> list[ServingCase]:  # fmt: skip
    """Cases from the JSON ``vllm bench serve --save-result`` writes (one run, several metrics).

    Uses its mean input/output lengths (``total_input_tokens`` / ``completed`` etc.), its
    ``request_rate`` (inf: all at once) and the measured mean TPOT/ITL, TTFT and output
    throughput.
    """
    try:
        completed = int(result["completed"])
        isl = max(1, round(float(result["total_input_tokens"]) / completed))
        osl = max(1, round(float(result["total_output_tokens"]) / completed))
        rate = result.get("request_rate", "inf")
        rate_rps = None if str(rate) == "inf" or float(rate) == math.inf else float(rate)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        raise CaseError(f"{name}: not a vllm bench serve result ({error})") from None
    base = {"gpu": GPU_ALIASES.get(gpu, gpu), "model": MODEL_ALIASES.get(model, model), "dtype": dtype,
                "tensor_parallel": tensor_parallel, "input_tokens": isl, "output_tokens": osl,
                "engine": "vllm", "requests": completed, "rate_rps": rate_rps,
                "max_batch_size": result.get("max_concurrency"), "source": name}  # fmt: skip
    cases = []
    if rate_rps is None and result.get("output_throughput"):
        cases.append(ServingCase(case=f"{name} throughput", metric="output_tokens_per_s",
                                 value=float(result["output_throughput"]), **base))  # fmt: skip
    for key, metric in (("mean_tpot_ms", "mean_itl_ms"), ("mean_ttft_ms", "mean_ttft_ms")):
        if rate_rps is not None and result.get(key):
            cases.append(ServingCase(case=f"{name} {metric}", metric=metric,
                                     value=float(result[key]), **base))  # fmt: skip
    if not cases:
        raise CaseError(f"{name}: no throughput or latency figure to fit")
    return cases


@dataclass(frozen=True)
class Replay:
    """The replica a case ran on: its cost model and scheduler limits."""

    cost_model: ServingCostModel
    replica: ReplicaConfig


def _model_name(case: ServingCase, catalog: Catalog) -> str:
    if case.model in catalog.models:
        return case.model
    fallback = _MODEL_FALLBACK.get(case.model)
    if fallback in catalog.models:
        return fallback  # type: ignore[return-value]
    raise CaseError(f"{case.case}: unknown model {case.model!r} (catalog: {', '.join(sorted(catalog.models))})")


def case_deployment(case: ServingCase, catalog: Catalog) -> Deployment:
    """The deployment the benchmark ran, as a scenario would write it: its engine (whose preset
    fills the limits the row leaves out), dtype, TP and the limits the row states."""
    limits = {"max_batch_size": case.max_batch_size, "max_batched_tokens": case.max_tokens_per_iteration,
              "gpu_memory_utilization": case.gpu_memory_fraction}  # fmt: skip
    if case.concurrency and case.area == "throughput":  # a client cap binds like a batch cap
        limits["max_batch_size"] = min(case.max_batch_size or ENGINE_PRESETS[case.engine].max_batch_size,
                                       case.concurrency)  # fmt: skip
    try:
        return Deployment.model_validate({
            "name": "replay", "pool": "replay", "model": _model_name(case, catalog), "dtype": case.dtype,
            "tensor_parallel": case.tensor_parallel, "engine": case.engine,
            **{k: v for k, v in limits.items() if v is not None},
        })  # fmt: skip
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise CaseError(f"{case.case}: {field}: {first['msg']}") from None


def replay_setup(case: ServingCase, params: EfficiencyParameters, catalog: Catalog | None = None) -> Replay:
    """The replica of ``case`` priced with ``params``; CaseError when it cannot run."""
    catalog = catalog or bundled_catalog()
    if case.gpu not in catalog.gpus:
        raise CaseError(f"{case.case}: unknown GPU {case.gpu!r} (catalog: {', '.join(sorted(catalog.gpus))})")
    dep = case_deployment(case, catalog)
    cost_model = deployment_cost_model(dep, catalog.models[dep.model], catalog.gpus[case.gpu], params)
    replica = replica_limits(cost_model, dep)
    if replica.kv_blocks <= 0:
        raise CaseError(f"{case.case}: the weights do not fit on {case.tensor_parallel} x {case.gpu}")
    return Replay(cost_model, replica)


def _closed_loop(case: ServingCase) -> int | None:
    """Clients of a closed-loop latency row (None: open loop or batch 1)."""
    if case.area == "throughput" or case.rate_rps is not None or (case.concurrency or 1) <= 1:
        return None
    return case.concurrency


def _requests(case: ServingCase, seed: int) -> RequestArrays:
    """The benchmark's requests: fixed ISL/OSL, sent as its load says (see the module doc)."""
    clients = _closed_loop(case)
    if clients:  # closed loop: 10 rounds of the clients (at least 100 requests); sent by the engine
        arrival = np.zeros(case.requests or min(max(10 * clients, 100), 2000))
    elif case.area == "throughput":
        arrival = np.zeros(min(case.requests or MAX_THROUGHPUT_REQUESTS, MAX_THROUGHPUT_REQUESTS))
    elif case.rate_rps is None:  # batch 1: one request at a time, far apart
        arrival = np.arange(min(case.requests or 5, 5)) * 1e4
    else:
        gaps = np.random.default_rng(seed).exponential(1 / case.rate_rps, case.requests or DEFAULT_LATENCY_REQUESTS)
        arrival = np.cumsum(gaps) - gaps[0]
    n = len(arrival)
    return RequestArrays(arrival_s=arrival, prompt_tokens=np.full(n, case.input_tokens, dtype=np.int64),
                         output_tokens=np.full(n, case.output_tokens, dtype=np.int64),
                         cached_tokens=np.zeros(n, dtype=np.int64))  # fmt: skip


def predict(case: ServingCase, params: EfficiencyParameters, catalog: Catalog | None = None,
            seed: int = 0) -> float:  # fmt: skip
    """The figure the simulator gives for ``case`` with efficiencies ``params``."""
    setup = replay_setup(case, params, catalog)
    requests = _requests(case, seed)
    timer = IterationTimer.from_cost_model(setup.cost_model, setup.replica.max_iteration_tokens)
    config = EngineConfig(replica=setup.replica, replicas=1, max_queue_per_replica=len(requests) + 1)
    clients = _closed_loop(case)
    duration = 1e7 if clients else float(requests.arrival_s[-1]) + 1e-6
    record = simulate(config, timer, requests, duration_s=duration, drain_s=1e7, concurrency=clients)
    done = record.status == "completed"
    if clients:  # steady state: leave out the first round, which all start at once
        done &= np.arange(len(done)) >= clients
    if not done.any():
        raise CaseError(f"{case.case}: no request completed (too long for the KV cache?)")
    if case.metric == "output_tokens_per_s":
        return float(record.output_tokens[done].sum() / record.finish_s[done].max())
    ttft = record.first_token_s[done] - record.arrival_s[done]
    if case.metric == "mean_ttft_ms":
        return float(ttft.mean() * 1e3)
    decode = (record.finish_s[done] - record.first_token_s[done]) / np.maximum(record.output_tokens[done] - 1, 1)
    return float(decode.mean() * 1e3)


@dataclass(frozen=True)
class CaseResult:
    case: ServingCase
    predicted: float

    @property
    def error_pct(self) -> float:
        """Signed error, percent of the published value (+: the simulator reads higher)."""
        return (self.predicted / self.case.value - 1) * 100

    @property
    def optimistic(self) -> bool:
        """True when the simulator promises more than was measured (more tok/s, less latency)."""
        higher_is_better = self.case.metric == "output_tokens_per_s"
        return (self.error_pct > 0) == higher_is_better


@dataclass(frozen=True)
class Evaluation:
    results: list[CaseResult]

    def mape(self, area: str | None = None) -> float:
        rows = [r for r in self.results if area is None or r.case.area == area]
        return mape([r.predicted for r in rows], [r.case.value for r in rows])

    def signed_pct(self, area: str | None = None) -> float:
        """Mean signed error, optimistic positive (more throughput, lower latency than measured)."""
        rows = [r for r in self.results if area is None or r.case.area == area]
        if not rows:
            return float("nan")
        return float(np.mean([abs(r.error_pct) * (1 if r.optimistic else -1) for r in rows]))

    def areas(self) -> list[str]:
        return list(dict.fromkeys(r.case.area for r in self.results))


def evaluate(cases: Sequence[ServingCase], params_for: Callable[[ServingCase], EfficiencyParameters],
             catalog: Catalog | None = None) -> Evaluation:  # fmt: skip
    """Predict every case with the efficiencies ``params_for(case)`` gives (e.g. its GPU's profile)."""
    return Evaluation([CaseResult(c, predict(c, params_for(c), catalog)) for c in cases])


def replayable(cases: Sequence[ServingCase], params_for: Callable[[ServingCase], EfficiencyParameters],
               catalog: Catalog | None = None) -> tuple[list[ServingCase], list[str]]:  # fmt: skip
    """The cases the engine can replay, and why each other one cannot (unknown names, closed
    loop, weights that do not fit)."""
    keep, why = [], []
    for case in cases:
        try:
            predict(case, params_for(case), catalog)
        except CaseError as error:
            why.append(str(error))
        else:
            keep.append(case)
    return keep, why


#: Profile parameters :func:`fit_profile` may move, with their bounds (efficiencies <= 1: a
#: fitted value above peak would hide a modelling error, so the fit refuses it).
FIT_BOUNDS: dict[str, tuple[float, float]] = {
    "gemm_efficiency_max": (0.2, 1.0),
    "fp8_gemm_efficiency_max": (0.2, 1.0),
    "memory_bandwidth_efficiency": (0.3, 0.93),  # STREAM-class copies reach <= ~0.9-0.93 of HBM peak
    "kv_bandwidth_efficiency": (0.2, 1.0),
    "attention_efficiency": (0.1, 1.0),
    "iteration_overhead_s": (0.0, 0.01),
    "sequence_overhead_s": (0.0, 1e-4),
    "compute_memory_overlap": (0.0, 1.0),
    "interconnect_efficiency": (0.2, 1.0),
    "layer_overhead_s": (0.0, 1e-4),
    "elementwise_traffic_factor": (0.0, 4.0),
    "gemm_half_saturation_tokens": (1.0, 512.0),
}
DEFAULT_FIT_PARAMETERS = ("gemm_efficiency_max", "fp8_gemm_efficiency_max",
                          "memory_bandwidth_efficiency", "sequence_overhead_s")  # fmt: skip


def _to_unit(value: float, low: float, high: float) -> float:
    # a start on the boundary would sit where the logistic map is flat: start just inside
    share = min(max((value - low) / (high - low), 0.05), 0.95)
    return math.log(share / (1 - share))


def _from_unit(x: float, low: float, high: float) -> float:
    return low + (high - low) / (1 + math.exp(-x))


@dataclass(frozen=True)
class ProfileFit:
    """Fitted efficiencies per GPU, and the error of every case before and after."""

    parameters: dict[str, EfficiencyParameters]
    before: Evaluation
    after: Evaluation
    fitted: tuple[str, ...] = field(default=())


def fit_profiles(cases: Sequence[ServingCase], bases: Mapping[str, EfficiencyParameters],
                 shared: Sequence[str] = (), per_gpu: Sequence[str] = DEFAULT_FIT_PARAMETERS,
                 catalog: Catalog | None = None, iterations: int = 150) -> ProfileFit:  # fmt: skip
    """Efficiencies that minimise the mean squared log error of ``cases``.

    ``bases`` gives the starting profile of every GPU the cases use. Parameters in ``shared``
    take one value for all of them (host overheads and kernel behaviour that the cases of one
    GPU alone cannot separate), those in ``per_gpu`` one value per GPU; a per-GPU parameter none
    of that GPU's cases exercise (e.g. fp8 efficiency without fp8 rows) stays put. Each moves
    inside :data:`FIT_BOUNDS` (a logistic map keeps Nelder-Mead in the box).
    """
    unknown = [n for n in (*shared, *per_gpu) if n not in FIT_BOUNDS]
    if unknown:
        raise ValueError(f"cannot fit {', '.join(unknown)} (fittable: {', '.join(FIT_BOUNDS)})")
    missing = sorted({c.gpu for c in cases} - set(bases))
    if missing:
        raise ValueError(f"no starting profile for {', '.join(missing)}")
    slots: list[tuple[str | None, str]] = [(None, n) for n in shared]
    for gpu in sorted({c.gpu for c in cases}):
        mine = [c for c in cases if c.gpu == gpu]
        slots += [(gpu, n) for n in per_gpu if n not in shared and _exercised(n, mine)]
    before = evaluate(cases, lambda c: bases[c.gpu], catalog)
    if not slots:
        return ProfileFit(dict(bases), before, before)

    def start(gpu: str | None, name: str) -> float:
        base = bases[gpu] if gpu is not None else next(iter(bases.values()))
        value = getattr(base, name)
        if value is None:  # optional refinements start from what they default to
            value = base.gemm_efficiency_max if name.startswith("fp") else base.memory_bandwidth_efficiency
        return value

    x0 = [_to_unit(start(g, n), *FIT_BOUNDS[n]) for g, n in slots]

    def profiles_at(x: np.ndarray) -> dict[str, EfficiencyParameters]:
        out = {}
        for gpu, base in bases.items():
            update = {n: _from_unit(float(v), *FIT_BOUNDS[n]) for (g, n), v in zip(slots, x)
                      if g is None or g == gpu}  # fmt: skip
            out[gpu] = base.model_copy(update=update)
        return out

    measured = np.array([c.value for c in cases])

    def loss(x: np.ndarray) -> float:
        profiles = profiles_at(x)
        try:
            predicted = np.array([predict(c, profiles[c.gpu], catalog) for c in cases])
        except CaseError:
            return math.inf
        return float(np.mean(np.log(predicted / measured) ** 2))

    best = nelder_mead(loss, x0, step=0.4, iterations=iterations, tolerance=1e-6)
    fitted = profiles_at(best)
    names = tuple(n if g is None else f"{g}.{n}" for g, n in slots)
    return ProfileFit(fitted, before, evaluate(cases, lambda c: fitted[c.gpu], catalog), names)


def _exercised(name: str, cases: Sequence[ServingCase]) -> bool:
    """Whether some case depends on parameter ``name``."""
    if name == "fp8_gemm_efficiency_max":
        return any(c.dtype == "fp8" for c in cases)
    if name == "interconnect_efficiency":
        return any(c.tensor_parallel > 1 for c in cases)
    return True


__all__ = ["CaseError", "ServingCase", "case_deployment", "cases_from_rows", "cases_from_vllm_bench",
           "evaluate", "fit_profiles", "predict", "replay_setup"]
