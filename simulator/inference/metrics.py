"""From a :class:`~simulator.inference.engine.SimulationRecord` to DataFrames and a summary.

Definitions (design.md): TTFT = arrival to first output token, queueing included; TPOT =
(end-to-end - TTFT) / (output tokens - 1), undefined (NaN) for one-token outputs; E2E = arrival
to last token; queue wait = arrival to first admission into a batch. With a retrieval stage the
user's request precedes the arrival at the deployment by its retrieval time, which TTFT and E2E
include (queue wait and TPOT do not); so do other pipeline stages before the model, and those
after it add to E2E only (TPOT stays the model's pace: output moderation is taken to check the
whole answer, a simplification of streaming moderation). Requests a stage blocks before the model
are rows of status ``blocked`` (like response-cache hits, never at the GPUs, not in SLO
attainment, answered in the availability).

Which requests count: those arriving in the measurement window [warmup_s, duration_s) (the
warm-up, by default the first 10% of the duration, is left out so the empty start does not flatter
latency). Latency statistics are over the window's completed requests. SLO attainment is the
share of the window's requests that meet every target the workload's SLO gives (TTFT <=
``ttft_p95_ms``, TPOT <= ``tpot_p95_ms``, E2E <= ``e2e_p95_ms``; a one-token output meets any TPOT
target); requests dropped for a full queue, failed with a replica, or still unfinished at the
end count as misses; requests refused as too long for the model, and response-cache hits (served
without the GPU), are not counted.

With failures injected (:mod:`simulator.inference.failures`) the summary adds the failed and
retried requests, the availability (share of the window's requests served within the SLO,
response-cache hits counting as served; requests refused as too long, a client's error, are not
counted), and a ``failures`` block: the failures, replica-seconds down, the measured and the
renewal-theory share of replica time down, and the latency of the requests that arrived while a
replica was down (the tail a failure causes) beside the overall figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simulator.inference.engine import SimulationRecord
from simulator.scenario.schema import Slo

PERCENTILES = (50, 90, 95, 99)

#: Queued requests may grow by this share of the window's arrivals (plus a fixed slack) before
#: the run is called overloaded.
OVERLOAD_QUEUE_GROWTH_SHARE = 0.05
OVERLOAD_QUEUE_GROWTH_SLACK = 20


def slo_met(
    ttft_ms: np.ndarray, tpot_ms: np.ndarray, e2e_ms: np.ndarray, slo: Slo | None
) -> np.ndarray:
    """Per request: meets every target of ``slo`` (NaN TTFT/E2E = not served = miss)."""
    met = np.isfinite(e2e_ms) & np.isfinite(ttft_ms)
    if slo is None:
        return met
    if slo.ttft_p95_ms is not None:
        met &= ttft_ms <= slo.ttft_p95_ms
    if slo.tpot_p95_ms is not None:
        met &= ~(tpot_ms > slo.tpot_p95_ms)  # NaN (one-token output) meets it
    if slo.e2e_p95_ms is not None:
        met &= e2e_ms <= slo.e2e_p95_ms
    return met


def latencies_ms(
    record: SimulationRecord, after_model_s: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per request TTFT, TPOT and E2E in milliseconds (NaN where not reached / undefined).

    ``after_model_s``: per request, seconds in pipeline stages after the model: they add to
    E2E only (TPOT stays the model's token pace)."""
    r = record
    ttft = (r.first_token_s - r.arrival_s) * 1e3
    e2e = (r.finish_s - r.arrival_s) * 1e3
    if r.retrieval_s is not None:  # from the user's request, before retrieval
        ttft = ttft + r.retrieval_s * 1e3
        e2e = e2e + r.retrieval_s * 1e3
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(r.output_tokens > 1, (e2e - ttft) / (r.output_tokens - 1), np.nan)
    tpot = np.where(np.isfinite(e2e), tpot, np.nan)
    if after_model_s is not None:
        e2e = e2e + np.asarray(after_model_s, dtype=float) * 1e3
    return ttft, tpot, e2e


@dataclass(frozen=True)
class StageRows:
    """What a workload's pipeline stages add to the requests frame: seconds after the model
    and blocked answers of the record's requests (in its order), the offered requests a stage
    blocked before the model (rows of status ``blocked``, like response-cache hits off the
    GPUs) with their seconds in the stages, and the name of the before-model time column
    (``retrieval_ms``, or ``before_model_ms`` where other stages run there too)."""

    after_model_s: np.ndarray | None = None
    blocked_after: np.ndarray | None = None
    blocked_arrival_s: np.ndarray | None = None
    blocked_prompt_tokens: np.ndarray | None = None
    blocked_output_tokens: np.ndarray | None = None
    blocked_before_s: np.ndarray | None = None
    before_label: str = "retrieval"

    @property
    def can_block(self) -> bool:
        return self.blocked_after is not None or self.blocked_arrival_s is not None


def measured_mask(record: SimulationRecord) -> np.ndarray:
    """Requests arriving in the measurement window [warmup_s, duration_s)."""
    return (record.arrival_s >= record.warmup_s) & (record.arrival_s < record.duration_s)


def counted_mask(record: SimulationRecord) -> np.ndarray:
    """The window's requests that SLO attainment counts (not refused as too long)."""
    return measured_mask(record) & (record.drop_reason != "too_long")


def is_overloaded(record: SimulationRecord) -> bool:
    """Unstable: a queue overflowed, requests were left unfinished, or the queue grew by more
    than :data:`OVERLOAD_QUEUE_GROWTH_SHARE` of the window's arrivals (+ a fixed slack)."""
    growth = record.waiting_at_end - record.waiting_at_warmup
    measured = int(measured_mask(record).sum())
    return bool(
        np.any(record.drop_reason == "queue_full")
        or np.any(record.status == "in_flight")
        or growth > OVERLOAD_QUEUE_GROWTH_SHARE * measured + OVERLOAD_QUEUE_GROWTH_SLACK
    )


def requests_frame(
    record: SimulationRecord,
    slo: Slo | None,
    cache_hit_arrival_s: np.ndarray | None = None,
    cache_hit_prompt_tokens: np.ndarray | None = None,
    cache_hit_output_tokens: np.ndarray | None = None,
    stages: StageRows | None = None,
) -> pd.DataFrame:
    """One row per request (GPU requests, response-cache hits, requests blocked before the
    model), in arrival order.

    Columns: request_id, arrival_s, prompt_tokens, output_tokens, cached_prompt_tokens, replica
    (-1 if never admitted), status (completed / dropped / in_flight / cache_hit), drop_reason,
    preemptions, queue_wait_ms, ttft_ms, tpot_ms, e2e_ms, measured (arrived in the window),
    slo_met; with adapters also ``adapter`` (-1: base model); with a retrieval stage also
    ``retrieval_ms`` (``arrival_s`` is then when the request reached the deployment, after
    retrieval; response-cache hits skip retrieval: 0); with other pipeline stages
    (:class:`StageRows`) ``before_model_ms`` in its place, ``after_model_ms``, and where a
    stage may block, ``blocked`` (before the model: status ``blocked``; after it: a completed
    request whose answer was withheld).
    """
    r = record
    stages = stages or StageRows()
    ttft, tpot, e2e = latencies_ms(r, stages.after_model_s)
    frame = pd.DataFrame({
        "arrival_s": r.arrival_s,
        "prompt_tokens": r.prompt_tokens,
        "output_tokens": r.output_tokens,
        "cached_prompt_tokens": r.cached_tokens,
        "replica": r.replica,
        "status": r.status,
        "drop_reason": r.drop_reason,
        "preemptions": r.preemptions,
        "queue_wait_ms": (r.first_scheduled_s - r.arrival_s) * 1e3,
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "e2e_ms": e2e,
        "slo_met": slo_met(ttft, tpot, e2e, slo),
    })  # fmt: skip
    if r.adapter is not None:
        frame.insert(5, "adapter", r.adapter)
    before = f"{stages.before_label}_ms"
    if r.retrieval_s is not None:
        frame[before] = r.retrieval_s * 1e3
    if stages.after_model_s is not None:
        frame["after_model_ms"] = np.asarray(stages.after_model_s, dtype=float) * 1e3
    if stages.can_block:
        frame["blocked"] = np.zeros(len(frame), dtype=bool) if stages.blocked_after is None else stages.blocked_after
    if r.failures is not None:
        frame["failure_retries"] = r.failures.retries
    off_gpu = [(status, arrival, prompt, output, seconds) for status, arrival, prompt, output, seconds in (
        ("cache_hit", cache_hit_arrival_s, cache_hit_prompt_tokens, cache_hit_output_tokens, None),
        ("blocked", stages.blocked_arrival_s, stages.blocked_prompt_tokens, stages.blocked_output_tokens,
         stages.blocked_before_s),
    ) if arrival is not None and len(arrival)]  # fmt: skip
    for status, arrival, prompt, output, seconds in off_gpu:
        n = len(arrival)
        rows = pd.DataFrame({
            "arrival_s": arrival,
            "prompt_tokens": prompt,
            "output_tokens": output,
            "cached_prompt_tokens": np.zeros(n, dtype=np.int64),
            "replica": np.full(n, -1, dtype=np.int64),
            "status": np.full(n, status, dtype=object),
            "drop_reason": np.full(n, "", dtype=object),
            "preemptions": np.zeros(n, dtype=np.int64),
            "queue_wait_ms": np.nan, "ttft_ms": np.nan, "tpot_ms": np.nan, "e2e_ms": np.nan,
            "slo_met": np.zeros(n, dtype=bool),
        })  # fmt: skip
        if r.adapter is not None:
            rows.insert(5, "adapter", np.full(n, -1, dtype=np.int64))
        if r.retrieval_s is not None:
            rows[before] = 0.0 if seconds is None else np.asarray(seconds, dtype=float) * 1e3
        if stages.after_model_s is not None:
            rows["after_model_ms"] = 0.0
        if stages.can_block:
            rows["blocked"] = status == "blocked"
        if r.failures is not None:
            rows["failure_retries"] = np.zeros(n, dtype=np.int64)
        frame = pd.concat([frame, rows], ignore_index=True)
    if off_gpu:
        frame = frame.sort_values("arrival_s", kind="stable", ignore_index=True)
    frame["measured"] = (frame["arrival_s"] >= r.warmup_s) & (frame["arrival_s"] < r.duration_s)
    frame.insert(0, "request_id", np.arange(len(frame)))
    return frame


def replicas_frame(record: SimulationRecord) -> pd.DataFrame:
    """One row per replica, over the measurement window.

    busy_fraction: share of the window an iteration was running; mean_batch_size: requests per
    iteration (decoding + prefilling); kv_occupancy: time-average share of KV blocks in use
    (decoders counted at half a block of rounding each); prefill/output tokens per second:
    prompt tokens computed (prefix-cache hits excluded, recomputation included) and tokens
    generated.
    """
    window = record.duration_s - record.warmup_s
    blocks = np.maximum(record.replica_kv_blocks(), 1)
    groups = [g.name for g in record.groups for _ in range(g.replicas)] if record.groups else None
    rows = []
    for i, s in enumerate(record.replica_stats):
        rows.append({
            "replica": i,
            **({"group": groups[i]} if groups else {}),
            "busy_fraction": min(s.busy_s / window, 1.0),  # rounding of summed segments
            "iterations": s.iterations,
            "mean_batch_size": s.batch_sum / s.iterations if s.iterations else 0.0,
            "kv_occupancy": s.kv_block_seconds / window / blocks[i],
            "prefill_tokens_per_s": s.prefill_tokens / window,
            "output_tokens_per_s": s.output_tokens / window,
            "tokens_per_s": (s.prefill_tokens + s.output_tokens) / window,
            "preemptions": s.preemptions,
        })  # fmt: skip
    return pd.DataFrame(rows)


def describe(values: np.ndarray) -> dict[str, float | None]:
    """{mean, p50, p90, p95, p99} of the finite values (None when there are none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    q = np.percentile(v, PERCENTILES)
    return {"mean": float(v.mean()), **{f"p{p}": float(x) for p, x in zip(PERCENTILES, q)}}


def slo_attainment(requests: pd.DataFrame) -> float:
    """Share of the window's counted requests that met the SLO (NaN when there are none)."""
    counted = requests["measured"] & (
        requests["status"].isin(["completed", "in_flight", "failed"])
        | (requests["drop_reason"] == "queue_full")
    )
    n = int(counted.sum())
    return float(requests.loc[counted, "slo_met"].sum() / n) if n else math.nan


def summarize(
    record: SimulationRecord, requests: pd.DataFrame, replicas: pd.DataFrame, slo: Slo | None
) -> dict[str, Any]:
    """The run's headline figures (JSON-ready: floats, ints, bools, None, dicts)."""
    window = record.duration_s - record.warmup_s
    gpu = requests[~requests["status"].isin(["cache_hit", "blocked"])]
    measured = gpu[gpu["measured"]]
    served = measured[measured["status"] == "completed"]
    dropped = gpu[gpu["status"] == "dropped"]
    growth = record.waiting_at_end - record.waiting_at_warmup
    queue_full = int((dropped["drop_reason"] == "queue_full").sum())
    in_flight = int((gpu["status"] == "in_flight").sum())
    overloaded = is_overloaded(record)
    targets = {} if slo is None else {
        k: v for k, v in slo.model_dump().items() if v is not None and k != "attainment_target"
    }  # fmt: skip
    attainment = slo_attainment(requests)
    finish_s = gpu["arrival_s"] + gpu["e2e_ms"] / 1e3
    finished_in_window = int(finish_s.between(record.warmup_s, record.duration_s, "left").sum())
    summary: dict[str, Any] = {
        "requests_arrived": len(gpu),
        "requests_completed": int((gpu["status"] == "completed").sum()),
        "requests_dropped": len(dropped),
        "requests_in_flight": in_flight,
        "requests_cache_hits": int((requests["status"] == "cache_hit").sum()),
        "requests_measured": len(measured),
        "dropped_by_reason": {
            "queue_full": queue_full,
            "too_long": int((dropped["drop_reason"] == "too_long").sum()),
        },
        "preemptions": int(gpu["preemptions"].sum()),
        "ttft_ms": describe(served["ttft_ms"].to_numpy()),
        "tpot_ms": describe(served["tpot_ms"].to_numpy()),
        "e2e_ms": describe(served["e2e_ms"].to_numpy()),
        "queue_wait_ms": describe(served["queue_wait_ms"].to_numpy()),
        "throughput_tokens_per_s": float(replicas["tokens_per_s"].sum()),
        "prefill_tokens_per_s": float(replicas["prefill_tokens_per_s"].sum()),
        "output_tokens_per_s": float(replicas["output_tokens_per_s"].sum()),
        "completed_requests_per_s": finished_in_window / window,
        "replica_utilization": float(replicas["busy_fraction"].mean()),
        "mean_batch_size": float(replicas["mean_batch_size"].mean()),
        "kv_occupancy": float(replicas["kv_occupancy"].mean()),
        "slo_attainment": None if math.isnan(attainment) else attainment,
        "slo_targets_ms": targets,
        "slo_attainment_target": None if slo is None else slo.attainment_target,
        "overloaded": overloaded,
        "queue_growth_per_s": growth / window,
        "mean_requests_in_system": record.mean_in_system,
        "replicas": len(record.replica_stats),
        "router": record.config.router,
        "duration_s": record.duration_s,
        "warmup_s": record.warmup_s,
        "simulated_until_s": record.end_s,
    }
    prompts = float(served["prompt_tokens"].sum())
    # prompt tokens served from the prefix cache (fixed rate, or the simulated cache of conversations)
    summary["prefix_cache_hit_rate"] = float(served["cached_prompt_tokens"].sum()) / prompts if prompts else None
    for column in ("retrieval_ms", "before_model_ms", "after_model_ms"):  # pipeline stages
        if column in served:
            summary[column] = describe(served[column].to_numpy())
    if "blocked" in requests:  # by a stage, before the model or after it (in the window)
        summary["requests_blocked"] = int((requests["blocked"] & requests["measured"]).sum())
    if "adapter" in gpu:
        summary["distinct_adapters"] = int(gpu.loc[gpu["adapter"] >= 0, "adapter"].nunique())
    if record.failures is not None:
        summary.update(failure_summary(record, requests))
    return summary


def availability(requests: pd.DataFrame) -> float:
    """Share of the window's requests served within the SLO, response-cache hits (and requests
    a pipeline stage blocked: a refusal answers) counting as served, requests refused as too
    long not counted (NaN when there are none)."""
    counted = requests["measured"] & (requests["drop_reason"] != "too_long")
    served = requests["status"].isin(["cache_hit", "blocked"]) | ((requests["status"] == "completed") & requests["slo_met"])
    n = int(counted.sum())
    return float((served & counted).sum() / n) if n else math.nan


def failure_summary(record: SimulationRecord, requests: pd.DataFrame) -> dict[str, Any]:
    """The figures of a run with failures injected (see the module docstring)."""
    log = record.failures
    assert log is not None
    spec = log.injection
    window = record.duration_s - record.warmup_s
    replicas = len(record.replica_stats)
    gpu = requests[~requests["status"].isin(["cache_hit", "blocked"])]
    measured = gpu[gpu["measured"]]
    during = measured[log.during(measured["arrival_s"].to_numpy())]
    served_during = during[during["status"] == "completed"]
    attainment = slo_attainment(during)
    avail = availability(requests)
    return {
        "requests_failed": int((gpu["status"] == "failed").sum()),
        "requests_retried": int((gpu["failure_retries"] > 0).sum()),
        "availability": None if math.isnan(avail) else avail,
        "failures": {
            "rate_per_replica_hour": spec.rate_per_s * 3600.0,
            "recovery_s": spec.recovery_s,
            "retry": spec.retry,
            "failures": int((log.down_s < record.end_s).sum()),
            "failures_in_window": int(log.in_window(record.warmup_s, record.duration_s).sum()),
            "replica_seconds_down": log.down_seconds(0.0, record.end_s),
            "down_share": log.down_seconds(record.warmup_s, record.duration_s) / (replicas * window),
            "down_share_expected": spec.down_share,
            "retries": int(gpu["failure_retries"].sum()),
            "requests_during_failures": len(during),
            "ttft_ms_during_failures": describe(served_during["ttft_ms"].to_numpy()),
            "e2e_ms_during_failures": describe(served_during["e2e_ms"].to_numpy()),
            "slo_attainment_during_failures": None if math.isnan(attainment) else attainment,
        },
    }
