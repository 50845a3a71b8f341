"""Results of a run: tidy DataFrames and the summary dict (summary.json), built from a projection.

Every figure here is a sum or quantile of the projection's hourly arrays; totals are sums of the
monthly rows so they add up to the cent.

A workload's retrieval stage (:mod:`simulator.economics.retrieval`) appears under the pseudo-pool
``retrieval:<workload>`` in ``monthly`` (entity kind ``retrieval``, category inference),
``billing`` (its two lines) and ``hourly`` (cost only, no GPUs); total = the pools' costs + the
retrieval costs. In the summary, only workloads with a retrieval stage get
``retrieval_cost_usd`` and ``retrieval_queries`` (included in their ``cost_usd`` and $/1M
tokens), and a top-level ``retrieval_cost_usd`` appears only when some workload has one (so the
summaries of scenarios without retrieval are what they were). Input tokens count the retrieved
tokens (the model's whole prompt).

Every other pipeline stage (:mod:`simulator.economics.stages`) is shown the same way under its
own pseudo-pool ``<stage>:<workload>`` and entity kind = its kind: per workload
``<kind>_cost_usd`` and ``<kind>_calls`` (retrieval: ``_queries``) summed over its stages of
that kind, and a top-level ``<kind>_cost_usd``. Where a stage may block requests, the workload
gets ``requests_blocked`` (before the model, taken out of the demand every hour; after it, out
of the requests served, of which ``requests_blocked_after_model`` had their GPU work done) and
the latency table a ``requests_blocked`` column: arrived = served + failed + unserved +
response-cache hits + blocked. Blocked requests count as answered in the availability (a refusal
is an answer) and not in tokens. A stage's GPU time on its deployment is its derived workload's
(``<workload>/<stage>``, with ``stage_of`` naming the parent and stage), not the parent's: the
parent shows it as ``stage_gpu_cost_usd`` (not part of its ``cost_usd``, so that the workloads'
costs still add up to the total).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from simulator.common.arrays import divide
from simulator.economics.api import api_price, baseline_cost_usd
from simulator.economics.cashflow import npv_usd
from simulator.economics.refresh import WRITE_OFF_LINE, pool_eras, write_off_line_name
from simulator.economics.retrieval import model_prompt_tokens_mean
from simulator.economics.stages import call_noun
from simulator.fleet.demand import hourly_users
from simulator.fleet.latency import Mixture
from simulator.fleet.projection import Projection
from simulator.fleet.regions import deployment_region
from simulator.perf.roofline import matmul_parameters
from simulator.results.regions import origin_summary, outage_summary, region_reserve, region_summary
from simulator.results.token_split import workload_input_share
from simulator.scenario.derived import stage_of
from simulator.scenario.resolve import decode_tokens_per_iteration, gpu_of, model_of
from simulator.scenario.schema import ReservedPricing, Scenario
from simulator.scenario.stages import BEFORE_MODEL, blocks, flows, pipeline

QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def write_off_entity(pool: str) -> str:
    """Monthly idle entity of the book value a pool writes off at its hardware refreshes."""
    return f"(refresh write-off {pool})"


@dataclass(frozen=True)
class Result:
    """One run of one plan: DataFrames plus the summary (the same as summary.json)."""

    summary: dict[str, Any]
    monthly: pd.DataFrame  # month x pool x deployment x entity x category: cost_usd, gpu_hours
    hourly: pd.DataFrame  # hour x pool: GPUs held/busy/billed, energy, cost by category
    latency: pd.DataFrame  # month x workload: requests, percentiles, attainment
    jobs: pd.DataFrame  # one row per training-job run
    deployments_hourly: pd.DataFrame  # hour x deployment: replicas requested/held/serving
    billing: pd.DataFrame  # month x pool x line item x category: quantity, unit price, cost, cash
    #: the plan-applied scenario this run projected (what a workbook's inputs come from)
    scenario: Scenario | None = field(default=None, compare=False)
    #: the latency curves it used, (deployment, workload) -> curve (after a pool's hardware
    #: refresh the later GPU's as '<deployment> (<gpu>)'); for the latency plots
    curves: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False)
    #: month x pool x line: the cash view (usage paid as incurred, purchases, residual sales)
    cashflow: pd.DataFrame = field(default_factory=pd.DataFrame, compare=False)

    def __repr__(self) -> str:
        s = self.summary
        workloads = ", ".join(f"{name} {'met' if w['slo_met'] else 'MISSED'}" for name, w in s["workloads"].items())
        return (f"<Result {s['scenario']} plan {s['plan']}: ${s['total_cost_usd']:,.0f} over "
                f"{s['horizon_months']} months from {s['horizon_start']} (inference ${s['inference_cost_usd']:,.0f}, "
                f"training ${s['training_cost_usd']:,.0f}, idle ${s['idle_cost_usd']:,.0f})"
                + (f"; SLO: {workloads}" if workloads else "") + ">")  # fmt: skip

    def _repr_html_(self) -> str:
        """A notebook's view: the headline figures and one row per workload."""
        import html

        s = self.summary
        head = [("lifetime spend", f"${s['total_cost_usd']:,.0f}"), ("inference", f"${s['inference_cost_usd']:,.0f}"),
                ("training", f"${s['training_cost_usd']:,.0f}"), ("idle (paid, unused)", f"${s['idle_cost_usd']:,.0f}"),
                ("GPU-hours billed", f"{s['gpu_hours_billed']:,.0f}")]  # fmt: skip
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:right'>{v}</td></tr>"
                       for k, v in head)  # fmt: skip
        work = "".join(
            f"<tr><td>{html.escape(name)}</td><td style='text-align:right'>{_pct(w.get('slo_attainment'))}</td>"
            f"<td style='text-align:right'>{w['slo_attainment_target']:.0%}</td><td>{'yes' if w['slo_met'] else 'NO'}</td>"
            f"<td style='text-align:right'>{_ms(w.get('ttft_p95_ms'))}</td><td style='text-align:right'>"
            f"{_ms(w.get('tpot_p95_ms'))}</td><td style='text-align:right'>{w['unserved_requests']:,.0f}</td></tr>"
            for name, w in s["workloads"].items()
        )  # fmt: skip
        title = html.escape(f"{s['scenario']}, plan {s['plan']}: {s['horizon_months']} months from {s['horizon_start']}")
        table = f"<table><caption>{title}</caption>{rows}</table>"
        if work:
            table += ("<table><tr><th>workload</th><th>SLO attainment</th><th>target</th><th>met</th>"
                      f"<th>TTFT p95 ms</th><th>TPOT p95 ms</th><th>unserved</th></tr>{work}</table>")  # fmt: skip
        return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def build_result(projection: Projection, plan: str) -> Result:
    """All tables and the summary of one projection."""
    monthly = _monthly(projection)
    hourly = _hourly(projection)
    latency, horizon_latency = _latency(projection)
    jobs = projection.training.runs.copy()
    billing = _billing(projection)
    cashflow = _cashflow(projection, billing)
    summary = _summary(projection, plan, monthly, hourly, latency, horizon_latency, jobs)
    summary["cash_flow"] = _cash_summary(projection, cashflow)
    return Result(
        summary, monthly, hourly, latency, jobs, _deployments_hourly(projection), billing,
        projection.scenario, cashflow=cashflow,
    )


def _month_labels(p: Projection) -> list[str]:
    return [d.strftime("%Y-%m") for d in p.timeline.month_starts]


def _by_month(p: Projection, hourly: np.ndarray) -> np.ndarray:
    return np.bincount(p.timeline.month_index, weights=hourly, minlength=p.timeline.months)


# ---------------------------------------------------------------------- monthly costs


def _monthly(p: Projection) -> pd.DataFrame:
    months = _month_labels(p)
    rows: list[dict[str, Any]] = []

    def add(pool: str, kind: str, entity: str, category: str, usd: np.ndarray, gpus: np.ndarray,
            deployment: str = "") -> None:  # fmt: skip
        for month, cost, gpu_hours in zip(months, _by_month(p, usd), _by_month(p, gpus), strict=True):
            rows.append({"month": month, "pool": pool, "deployment": deployment, "entity_kind": kind,
                         "entity": entity, "category": category, "cost_usd": cost,
                         "gpu_hours": gpu_hours})  # fmt: skip

    for pool in p.scenario.pools:
        cost = p.pool_costs[pool.name]
        routed = np.zeros(p.timeline.hours)
        for dep in (d for d in p.deployments.values() if d.pool == pool.name):
            routes = [r for r in p.routes if r.deployment == dep.name]
            held = dep.billed * dep.gpus_per_replica
            by_workload: dict[str, list] = {}  # a refreshed pool has one route per GPU era
            for route in routes:
                by_workload.setdefault(route.workload, []).append(route)
            for workload, members in by_workload.items():
                # GPU-hours split like the cost: by the route's GPU-time share
                cost_usd = sum((r.cost_usd for r in members), np.zeros(p.timeline.hours))
                share = sum((r.deployment_share for r in members), np.zeros(p.timeline.hours))
                add(pool.name, "workload", workload, "inference", cost_usd, held * share, dep.name)
                routed += cost_usd
            if not routes:
                add(pool.name, "deployment", dep.name, "inference", np.zeros_like(held), held, dep.name)
        unrouted = cost.inference_usd - routed
        if np.abs(unrouted).sum() > 1e-6:
            add(pool.name, "deployment", "(no traffic)", "inference", unrouted, np.zeros_like(unrouted))
        for job in (j for j in p.scenario.training_jobs if j.pool == pool.name):
            held = p.training.gpus_held_by_job.get(job.name, np.zeros(p.timeline.hours))
            add(pool.name, "training_job", job.name, "training", p.job_cost_usd[job.name], held)
        idle_gpus = np.maximum(cost.gpus_billed - p.pool_inference_gpus[pool.name] - p.pool_training_gpus[pool.name], 0)
        written_off = _write_off_usd(cost.items, p.timeline.hours)
        add(pool.name, "idle", "(unused)", "idle", cost.idle_usd - written_off, idle_gpus)
        if pool.refresh:
            add(pool.name, "idle", write_off_entity(pool.name), "idle", written_off, np.zeros_like(idle_gpus))
    for stage in p.retrieval.values():  # pipeline stages: entity kind = the stage's kind
        add(stage.pool, stage.stage.kind, stage.workload, "inference", stage.cost_usd, np.zeros(p.timeline.hours))
    return pd.DataFrame(rows)


def _write_off_usd(items, hours: int) -> np.ndarray:
    """Hourly cost of a pool's refresh write-off lines (see :mod:`simulator.economics.refresh`)."""
    lines = [i.cost("idle") for i in items if i.name.startswith(WRITE_OFF_LINE)]
    return sum(lines, np.zeros(hours))


def _billing(p: Projection) -> pd.DataFrame:
    """Billed quantities per month with their unit prices: cost = quantity x unit price."""
    months = _month_labels(p)
    rows = []
    groups = [(pool.name, p.pool_costs[pool.name].items) for pool in p.scenario.pools]
    groups += [(stage.pool, stage.items) for stage in p.retrieval.values()]
    for group, items in groups:
        for item in items:
            for category in ("inference", "training", "idle"):
                quantities = _by_month(p, getattr(item, category))
                for month, quantity in zip(months, quantities, strict=True):
                    rows.append({"month": month, "pool": group, "line_item": item.name,
                                 "unit": item.unit, "price_key": item.price_key,
                                 "unit_price_usd": item.unit_price_usd, "category": category,
                                 "quantity": quantity, "cost_usd": quantity * item.unit_price_usd,
                                 "cash_usd": quantity * item.cash_price_usd})  # fmt: skip
    return pd.DataFrame(rows)


CASHFLOW_COLUMNS = ["month", "pool", "line_item", "kind", "unit", "price_key", "unit_price_usd", "quantity",
                    "cash_usd", "first_time"]  # fmt: skip


def _cashflow(p: Projection, billing: pd.DataFrame) -> pd.DataFrame:
    """The cash view per month: each billed line's cash part (kind "usage"), owned purchases
    ("purchase") and residual sales ("sale", negative cash); ``first_time``: the first hour of a
    purchase or sale in that month (usage: the month's start)."""
    months = _month_labels(p)
    starts = dict(zip(months, p.timeline.month_starts, strict=True))
    rows: list[dict[str, Any]] = []
    if len(billing):
        usage = billing[billing["cash_usd"] != 0]
        grouped = usage.groupby(["month", "pool", "line_item"], sort=False).agg(
            unit=("unit", "first"), price_key=("price_key", "first"), quantity=("quantity", "sum"),
            cash_usd=("cash_usd", "sum"), unit_price_usd=("unit_price_usd", "first"),
        )  # fmt: skip
        for (month, pool, line), row in grouped.iterrows():
            price = float(row["cash_usd"] / row["quantity"]) if row["quantity"] else float(row["unit_price_usd"])
            rows.append({"month": month, "pool": pool, "line_item": line, "kind": "usage", "unit": row["unit"],
                         "price_key": row["price_key"], "unit_price_usd": price, "quantity": float(row["quantity"]),
                         "cash_usd": float(row["cash_usd"]), "first_time": starts[month]})  # fmt: skip
    times = p.timeline.timestamps
    for pool in p.scenario.pools:
        for line in p.pool_costs[pool.name].capital:
            by_month = _by_month(p, line.quantity)
            cash = _by_month(p, line.cash_usd)
            for i, month in enumerate(months):
                if by_month[i] == 0:
                    continue
                in_month = np.flatnonzero((p.timeline.month_index == i) & (line.quantity != 0))
                rows.append({"month": month, "pool": pool.name, "line_item": line.name, "kind": line.kind,
                             "unit": line.unit, "price_key": line.price_key, "unit_price_usd": line.unit_price_usd,
                             "quantity": float(by_month[i]) * (-1.0 if line.kind == "sale" else 1.0),
                             "cash_usd": float(cash[i]), "first_time": times[in_month[0]]})  # fmt: skip
    out = pd.DataFrame(rows, columns=CASHFLOW_COLUMNS)
    return out.sort_values(["month"], kind="stable", ignore_index=True)


def _cash_summary(p: Projection, cashflow: pd.DataFrame) -> dict[str, Any]:
    """Cash totals and the net present value at the scenario's discount rate."""
    months = _month_labels(p)
    by_month = cashflow.groupby("month")["cash_usd"].sum().reindex(months, fill_value=0.0).to_numpy(dtype=float)
    kind = cashflow.groupby("kind")["cash_usd"].sum()
    book = sum((line.book_value_usd(p.timeline.hours) for pool in p.scenario.pools
                for line in p.pool_costs[pool.name].capital), 0.0)  # fmt: skip
    return {
        "total_usd": float(by_month.sum()),
        "usage_usd": float(kind.get("usage", 0.0)),
        "purchases_usd": float(kind.get("purchase", 0.0)),
        "residual_sales_usd": float(-kind.get("sale", 0.0)) + 0.0,
        "discount_rate_per_year": p.scenario.discount_rate_per_year,
        "npv_usd": npv_usd(by_month, p.scenario.discount_rate_per_year),
        "owned_book_value_at_end_usd": float(book),
    }


# ---------------------------------------------------------------------- hourly


def _hourly(p: Projection) -> pd.DataFrame:
    frames = []
    times = p.timeline.timestamps
    for pool in p.scenario.pools:
        cost = p.pool_costs[pool.name]
        frames.append(pd.DataFrame({
            "time": times, "pool": pool.name,
            "gpus_inference": p.pool_inference_gpus[pool.name],
            "gpus_training": p.pool_training_gpus[pool.name],
            "gpus_billed": cost.gpus_billed,
            "gpus_busy": p.pool_busy_gpus[pool.name],
            "energy_kwh": cost.energy_kwh,
            "inference_usd": cost.inference_usd, "training_usd": cost.training_usd,
            "idle_usd": cost.idle_usd,
        }))  # fmt: skip
    for stage in p.retrieval.values():
        zero = np.zeros(p.timeline.hours)
        frames.append(pd.DataFrame({
            "time": times, "pool": stage.pool,
            "gpus_inference": zero, "gpus_training": zero, "gpus_billed": zero, "gpus_busy": zero,
            "energy_kwh": zero, "inference_usd": stage.cost_usd, "training_usd": zero, "idle_usd": zero,
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _deployments_hourly(p: Projection) -> pd.DataFrame:
    times = p.timeline.timestamps
    frames = [
        pd.DataFrame({"time": times, "deployment": d.name, "replicas_requested": d.requested,
                      "replicas_held": d.billed, "replicas_serving": d.serving,
                      "gpus_busy": d.busy_gpus})
        for d in p.deployments.values()
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ---------------------------------------------------------------------- latency


def _mixture(p: Projection, workload: str) -> Mixture:
    """Request weights on curve points per month, plus a last row for the whole horizon."""
    routes = [r for r in p.routes if r.workload == workload]
    # months are contiguous runs of hours: sum each run (reduceat) instead of a bincount per point
    starts = np.searchsorted(p.timeline.month_index, np.arange(p.timeline.months))
    weights = []
    for r in routes:
        per_hour = r.point_weights * r.served_requests[:, None]
        w = np.add.reduceat(per_hour, starts, axis=0)
        weights.append(np.vstack([w, w.sum(axis=0, keepdims=True)]))
    return Mixture([r.curve for r in routes], weights)


def _blocked(p: Projection, workload) -> tuple[np.ndarray, np.ndarray]:
    """Requests a workload's pipeline stages blocked each hour: before the model (of those past
    the response cache with a deployment to go to: the demand the projection took out) and
    after it (of those the model served)."""
    hours = p.timeline.hours
    # the stages ran on the requests past the cache that had a deployment to go to
    past_cache = (p.demand_rps[workload.name] - p.cache_hit_rps[workload.name] - p.unrouted_rps[workload.name]) * 3600
    answered = sum((r.served_requests for r in p.routes if r.workload == workload.name), np.zeros(hours))
    before = after = np.zeros(hours)
    for flow in flows(workload):
        if flow.stage.position == BEFORE_MODEL:
            before = before + past_cache * flow.blocks
        else:
            after = after + answered * flow.blocks
    return before, after


def _latency(p: Projection) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    months = _month_labels(p)
    rows, horizon = [], {}
    levels = list(QUANTILES.values())
    any_blocks = any(blocks(w) for w in p.scenario.workloads)  # only then a requests_blocked column
    for workload in p.scenario.workloads:
        routes = [r for r in p.routes if r.workload == workload.name]
        served = _by_month(p, sum((r.served_requests for r in routes), np.zeros(p.timeline.hours)))
        unserved = _by_month(
            p,
            sum((r.unserved_requests for r in routes), p.unrouted_rps[workload.name] * 3600),
        )
        cache = _by_month(p, p.cache_hit_rps[workload.name] * 3600)
        failed = _by_month(p, sum((r.failed_requests for r in routes if len(r.failed_requests)), np.zeros(p.timeline.hours)))
        if any_blocks:  # served = what the model answered less the answers blocked after it
            before, after = _blocked(p, workload)
            served = served - _by_month(p, after)
            blocked = _by_month(p, before + after)
        mixture = _mixture(p, workload.name)
        q = {m: mixture.quantiles(m, levels) for m in ("ttft_ms", "tpot_ms", "e2e_ms")}
        attainment = mixture.attainment()
        for i, month in enumerate(months):
            row = {"month": month, "workload": workload.name, "requests_served": served[i],
                   "requests_cache_hits": cache[i], "requests_unserved": unserved[i],
                   "requests_failed": failed[i], "slo_attainment": attainment[i]}  # fmt: skip
            if any_blocks:
                row["requests_blocked"] = blocked[i] if blocks(workload) else 0.0
            for metric, values in q.items():
                for j, name in enumerate(QUANTILES):
                    row[f"{metric.removesuffix('_ms')}_{name}_ms"] = values[i, j]
            rows.append(row)
        whole = -1  # the last row holds the whole horizon
        horizon[workload.name] = {
            "ttft": dict(zip(QUANTILES, q["ttft_ms"][whole], strict=True)),
            "tpot": dict(zip(QUANTILES, q["tpot_ms"][whole], strict=True)),
            "attainment": None if np.isnan(attainment[whole]) else float(attainment[whole]),
        }
    return pd.DataFrame(rows), horizon


# ---------------------------------------------------------------------- summary


def _num(value: Any) -> Any:
    """JSON-friendly number (NaN -> None)."""
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) else value


def _summary(
    p: Projection,
    plan: str,
    monthly: pd.DataFrame,
    hourly: pd.DataFrame,
    latency: pd.DataFrame,
    horizon_latency: dict[str, dict[str, Any]],
    jobs: pd.DataFrame,
) -> dict[str, Any]:
    s = p.scenario
    by_category = monthly.groupby("category")["cost_usd"].sum()
    total = float(monthly["cost_usd"].sum())
    summary: dict[str, Any] = {
        "scenario": s.name,
        "plan": plan,
        "seed": s.seed,
        "horizon_start": s.horizon.start.isoformat(),
        "horizon_months": s.horizon.months,
        "total_cost_usd": total,
        "training_cost_usd": float(by_category.get("training", 0.0)),
        "inference_cost_usd": float(by_category.get("inference", 0.0)),
        "idle_cost_usd": float(by_category.get("idle", 0.0)),
        "gpu_hours_billed": float(hourly["gpus_billed"].sum()),
        "gpu_hours_busy": float(hourly["gpus_busy"].sum()),
        "energy_kwh": float(hourly["energy_kwh"].sum()),
        "cost_by_fiscal_year_usd": _fiscal_years(p, monthly),
        "workloads": {},
        "training_jobs": {},
        "pools": {},
        "deployments": {dep: _deployment_summary(p, dep) for dep in p.deployments},
        "warnings": [],
    }
    summary["redundancy_cost_usd"] = float(sum(d["reliability"]["redundancy_cost_usd"]
                                               for d in summary["deployments"].values()))  # fmt: skip
    for kind in dict.fromkeys(stage.stage.kind for stage in p.retrieval.values()):  # pipeline stages
        summary[f"{kind}_cost_usd"] = float(monthly.loc[monthly["entity_kind"] == kind, "cost_usd"].sum())
    fractions = idle_share_fractions(monthly)
    idle_by_pool = monthly[monthly["category"] == "idle"].groupby("pool")["cost_usd"].sum()
    for workload in s.workloads:
        mine = fractions.get(("workload", workload.name), {})
        summary["workloads"][workload.name] = _workload_summary(p, workload, monthly, latency, horizon_latency)
        _add_all_in(summary["workloads"][workload.name], mine, _idle_share_usd(mine, idle_by_pool),
                    _input_share(s, workload))  # fmt: skip
    for entry in list(summary["workloads"].values()):  # a stage's GPU time, shown beside its parent's cost
        if "stage_of" in entry:
            parent = summary["workloads"][entry["stage_of"]["workload"]]
            parent["stage_gpu_cost_usd"] = parent.get("stage_gpu_cost_usd", 0.0) + entry["cost_usd"]
    for job in s.training_jobs:
        mine = fractions.get(("training_job", job.name), {})
        summary["training_jobs"][job.name] = _job_summary(job, jobs, monthly)
        summary["training_jobs"][job.name]["idle_share_usd"] = _idle_share_usd(mine, idle_by_pool)
    for pool in s.pools:
        rows = hourly[hourly["pool"] == pool.name]
        billed = float(rows["gpus_billed"].sum())
        summary["pools"][pool.name] = {
            "gpu": pool.gpu,
            "pricing": pool.pricing.kind,
            "peak_gpus": float((rows["gpus_inference"] + rows["gpus_training"]).max()),
            "owned_gpus": p.pool_costs[pool.name].owned_gpus or None,
            "gpu_hours_billed": billed,
            "gpu_hours_busy": float(rows["gpus_busy"].sum()),
            "mean_utilization": float(rows["gpus_busy"].sum() / billed) if billed > 0 else 0.0,
            "energy_kwh": float(rows["energy_kwh"].sum()),
            "cost_usd": float(monthly.loc[monthly["pool"] == pool.name, "cost_usd"].sum()),
            "serving_preemptions": float(sum(((d.preemptions_per_hour * d.billed).sum() for d in p.deployments.values()
                                      if d.pool == pool.name and len(d.preemptions_per_hour)), 0.0)),
        }
        if pool.refresh:
            summary["pools"][pool.name]["refresh"] = _refresh_summary(p, pool)
        commitment = _commitment_summary(p, pool, rows)
        if commitment is not None:
            summary["pools"][pool.name]["commitment"] = commitment
            if commitment["committed_gpus"] > commitment["peak_need_gpus"]:
                summary["warnings"].append(
                    f"pool {pool.name}: {commitment['committed_gpus']} GPUs committed but at most "
                    f"{commitment['peak_need_gpus']:.0f} ever needed in the term: "
                    f"{commitment['committed_gpus'] - commitment['peak_need_gpus']:.0f} never used, "
                    f"${commitment['unused_commitment_usd']:,.0f} of commitment paid unused in all"
                )
    if s.regions:
        _add_regions(p, summary, hourly, monthly)
    return summary


def _add_regions(p: Projection, summary: dict[str, Any], hourly: pd.DataFrame, monthly: pd.DataFrame) -> None:
    """Per region, per workload origin and per outage; the capacity held for a region's loss."""
    summary["regions"] = region_summary(p, hourly, monthly)
    summary["region_outages"] = outage_summary(p)
    for name, dep in summary["deployments"].items():
        dep["region"] = deployment_region(p.scenario, name)
        dep["reliability"].update(region_reserve(p, p.deployments[name]))
    summary["region_reserve_cost_usd"] = float(sum(d["reliability"]["region_reserve_cost_usd"]
                                                   for d in summary["deployments"].values()))  # fmt: skip
    for workload in p.scenario.workloads:
        if workload.origins:
            summary["workloads"][workload.name]["origins"] = origin_summary(p, workload)


def _deployment_summary(p: Projection, name: str) -> dict[str, Any]:
    """How full a deployment's replicas really were over the horizon.

    - busy_fraction: share of held GPU-time an iteration was running; continuous batching keeps
      it near 1 at almost any load, so it says little about headroom.
    - load_factor: served load / SLO capacity of the serving replicas (replica-hours needed at
      the SLO capacity over replica-hours serving): 1 means every replica at its SLO capacity.
    - mfu: model FLOPs of the served tokens (2 x matmul parameters per token, forward only;
      attention FLOPs left out, a simplification) over held GPU-hours x the dtype's peak.
    - output_tokens_per_s_per_replica against max_output_tokens_per_s_per_replica (at the SLO
      capacity): achieved against the most a replica serves within the SLO.
    - gpus_per_replica, prefill_decode: GPUs of a replica (of a prefill + decode unit when
      disaggregated) and the unit's P:D replicas ("co-located" when not).
    - decode_tokens_per_iteration: 1, or with speculative decoding E[tokens per verification]
      at the deployment's acceptance rate (workloads may override it; their curves use theirs).
    """
    s = p.scenario
    dep = p.deployments[name]
    spec = s.deployment(name)
    gpu = gpu_of(s, s.pool(spec.pool))
    model = model_of(s, spec.model)
    routes = [r for r in p.routes if r.deployment == name]
    held_gpu_hours = float((dep.billed * dep.gpus_per_replica).sum())
    serving_hours = float(dep.serving.sum())
    needed = sum((np.minimum(r.replica_equivalents, dep.serving) for r in routes), np.zeros_like(dep.serving))
    tokens = sum(float(r.served_requests.sum()) * sum(r.curve.tokens_per_request) for r in routes)
    output = sum(float(r.served_requests.sum()) * r.curve.tokens_per_request[1] for r in routes)
    peak = gpu.peak_flops_per_s(gpu.compute_dtype_for(spec.dtype))
    flops = tokens * 2 * matmul_parameters(model)
    max_output = [r.curve.capacity_per_replica * r.curve.tokens_per_request[1] for r in routes]
    return {
        "gpu": gpu.name,
        "engine": spec.engine,
        "gpu_hours_held": held_gpu_hours,
        "busy_fraction": float(dep.busy_gpus.sum() / held_gpu_hours) if held_gpu_hours else 0.0,
        "load_factor": float(needed.sum() / serving_hours) if serving_hours else 0.0,
        "mfu": float(flops / (held_gpu_hours * 3600 * peak)) if held_gpu_hours else 0.0,
        "output_tokens_per_s_per_replica": output / (serving_hours * 3600) if serving_hours else 0.0,
        "max_output_tokens_per_s_per_replica": float(max(max_output)) if max_output else 0.0,
        "busy_power_share_of_tdp": float(dep.power_gpus.sum() / dep.busy_gpus.sum()) if dep.busy_gpus.sum() else 0.0,
        "decode_tokens_per_iteration": decode_tokens_per_iteration(spec),
        "gpus_per_replica": spec.gpus_per_replica,
        "prefill_decode": (f"{spec.disaggregation.prefill_replicas}:{spec.disaggregation.decode_replicas}"
                           if spec.disaggregation else "co-located"),
        "reliability": _reliability_summary(p, dep, spec),
    }


def _reliability_summary(p: Projection, dep, spec) -> dict[str, Any]:
    """Failures of the deployment's replicas and what the capacity held for them costs.

    - expected_failures: failures per replica-hour x replica-hours held;
    - share_down: mean share of replicas down after failures (renewal theory, rate x recovery);
    - redundant_replica_hours: replica-hours asked for beyond the load's need for failures (the
      expected loss and the spares);
    - redundancy_cost_usd: those GPU-hours at the pool's mean cost per billed GPU-hour each hour
      (a simplification: an average, not the marginal price of the last GPU).
    """
    zero = np.zeros(p.timeline.hours)
    redundant = dep.redundant if len(dep.redundant) else zero
    held = np.minimum(redundant, dep.billed)  # what the pool let it hold
    cost = p.pool_costs[dep.pool]
    per_gpu_hour = divide(cost.total_usd, cost.gpus_billed)
    rate = dep.failures_per_hour if len(dep.failures_per_hour) else zero
    down = dep.failure_down if len(dep.failure_down) else zero
    return {
        "failures_per_gpu_day": spec.failures.per_gpu_day,
        "expected_failures": float((rate * dep.billed).sum()),
        "share_down": float(down.mean()) if len(down) else 0.0,
        "spare_replicas": spec.redundancy.spare_replicas,
        "availability_target": spec.redundancy.availability_target,
        "redundant_replica_hours": float(held.sum()),
        "redundancy_cost_usd": float((held * dep.gpus_per_replica * per_gpu_hour).sum()),
    }


def _commitment_summary(p: Projection, pool, rows: pd.DataFrame) -> dict[str, Any] | None:
    """A reserved pool's commitment against its need: committed GPUs, the most GPUs held in the
    term (inference + training), the median, and what the unused part of the commitment cost."""
    if not isinstance(pool.pricing, ReservedPricing):
        return None
    items = [i for i in p.pool_costs[pool.name].items if i.name.startswith("committed_gpu_hours")]
    in_term = sum((i.inference + i.training + i.idle for i in items), np.zeros(p.timeline.hours)) > 0
    need = (rows["gpus_inference"] + rows["gpus_training"]).to_numpy()[in_term]
    return {
        "committed_gpus": pool.pricing.committed_gpus,
        "peak_need_gpus": float(need.max()) if need.size else 0.0,
        "median_need_gpus": float(np.median(need)) if need.size else 0.0,
        "unused_commitment_usd": float(sum(i.cost("idle").sum() for i in items)),
    }


def idle_share_fractions(monthly: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """Who carries each pool's idle cost (unused commitments, idle owned GPUs, write-offs):
    ``(entity_kind, entity) -> {pool: fraction}``, the workloads and training jobs that use the
    pool, by their GPU-hours on it over the horizon. The fractions of a pool sum to 1; a pool
    nobody used has none (its idle cost belongs to no one).

    A simplification: one horizon-wide share per pool, not one per month.
    """
    users = monthly[monthly["entity_kind"].isin(["workload", "training_job"])]
    out: dict[tuple[str, str], dict[str, float]] = {}
    for pool, rows in users.groupby("pool"):
        hours = rows.groupby(["entity_kind", "entity"])["gpu_hours"].sum()
        total = float(hours.sum())
        if total <= 0:
            continue
        for key, used in hours.items():
            out.setdefault(key, {})[str(pool)] = float(used) / total
    return out


def _idle_share_usd(fractions: dict[str, float], idle_by_pool: pd.Series) -> float:
    return sum(float(idle_by_pool.get(pool, 0.0)) * f for pool, f in fractions.items())


def _add_all_in(workload: dict[str, Any], fractions: dict[str, float], idle_usd: float,
                input_share: float | None) -> None:  # fmt: skip
    """All-in unit cost: the marginal cost plus the workload's share of its pools' idle cost,
    split into input and output tokens by their share of GPU-time (a cost-model estimate)."""
    all_in = workload["cost_usd"] + idle_usd
    tin, tout = workload["input_tokens"], workload["output_tokens"]
    workload["idle_share_of_pools"] = fractions
    workload["idle_share_usd"] = idle_usd
    workload["all_in_cost_usd"] = all_in
    workload["all_in_cost_per_million_tokens_usd"] = all_in / (tin + tout) * 1e6 if tin + tout > 0 else None
    workload["input_share_of_gpu_time"] = input_share
    split = input_share is not None
    workload["all_in_cost_per_million_input_tokens_usd"] = (
        all_in * input_share / tin * 1e6 if split and tin > 0 else None
    )
    workload["all_in_cost_per_million_output_tokens_usd"] = (
        all_in * (1 - input_share) / tout * 1e6 if split and tout > 0 else None
    )


def _input_share(scenario, workload) -> float | None:
    """Input (prefill) share of the workload's GPU-time, or None where it cannot be estimated."""
    try:
        return workload_input_share(scenario, workload)
    except (ValueError, KeyError):
        return None


def _refresh_summary(p: Projection, pool) -> list[dict[str, Any]]:
    """Each GPU era of a refreshed pool: its GPU, pricing, cost and the write-off ending it."""
    hourly_cost = p.pool_costs[pool.name]
    out = []
    for era in pool_eras(p.scenario, pool, p.timeline.hours):
        mask = era.mask(p.timeline.hours)
        name = write_off_line_name(era) if era.next_step is not None else None
        write_off = sum((float(i.cost("idle").sum()) for i in hourly_cost.items if i.name == name), 0.0)
        out.append({
            "from": era.start.isoformat(),
            "gpu": era.pool.gpu,
            "pricing": era.pool.pricing.kind,
            "gpu_hours_billed": float(hourly_cost.gpus_billed[mask].sum()),
            "write_off_usd": write_off,
        })  # fmt: skip
    return out


def _fiscal_years(p: Projection, monthly: pd.DataFrame) -> dict[str, float]:
    start_month = p.scenario.fiscal_year_start_month
    labels = {}
    for d in p.timeline.month_starts:
        year = d.year + (1 if start_month > 1 and d.month >= start_month else 0)
        labels[d.strftime("%Y-%m")] = f"FY{year}"
    per_month = monthly.groupby("month")["cost_usd"].sum()
    out: dict[str, float] = {}
    for month, cost in per_month.items():
        out[labels[month]] = out.get(labels[month], 0.0) + float(cost)
    return out


def _workload_summary(p, workload, monthly, latency, horizon_latency) -> dict[str, Any]:
    rows = latency[latency["workload"] == workload.name]
    served = float(rows["requests_served"].sum())
    cache = float(rows["requests_cache_hits"].sum())
    unserved = float(rows["requests_unserved"].sum())
    failed = float(rows["requests_failed"].sum())
    can_block = blocks(workload)
    blocked = float(rows["requests_blocked"].sum()) if can_block else 0.0
    blocked_after = float(_blocked(p, workload)[1].sum()) if can_block else 0.0
    answered = served + cache
    prompt_mean = model_prompt_tokens_mean(workload)
    input_tokens = answered * prompt_mean
    output_tokens = answered * workload.output_tokens.mean
    cost = float(monthly.loc[(monthly["entity_kind"] == "workload") & (monthly["entity"] == workload.name), "cost_usd"].sum())
    stage_costs = {}  # per kind of pipeline stage: its billed lines (queries/calls, hours)
    for kind in dict.fromkeys(s.kind for s in pipeline(workload)):
        mine = (monthly["entity_kind"] == kind) & (monthly["entity"] == workload.name)
        stage_costs[kind] = float(monthly.loc[mine, "cost_usd"].sum())
        cost += stage_costs[kind]
    tokens = input_tokens + output_tokens
    price = api_price(p.scenario, workload)
    # response-cache hits and requests blocked before the model never reach an API either
    api_requests = served + unserved + blocked_after if can_block else served + unserved
    baseline = (baseline_cost_usd(price, api_requests * prompt_mean, api_requests * workload.output_tokens.mean)
                if price is not None else None)  # fmt: skip
    h = horizon_latency[workload.name]
    out = {
        "requests": answered + unserved + failed + blocked if can_block else answered + unserved + failed,
        "requests_served": served,
        "requests_cache_hits": cache,
        "unserved_requests": unserved,
        "failed_requests": failed,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "ttft_p50_ms": _num(h["ttft"]["p50"]),
        "ttft_p95_ms": _num(h["ttft"]["p95"]),
        "ttft_p99_ms": _num(h["ttft"]["p99"]),
        "tpot_p50_ms": _num(h["tpot"]["p50"]),
        "tpot_p95_ms": _num(h["tpot"]["p95"]),
        "tpot_p99_ms": _num(h["tpot"]["p99"]),
        "slo_attainment": _num(h["attainment"]),
        "slo_attainment_target": workload.slo.attainment_target,
        "slo_met": bool(h["attainment"] is not None and h["attainment"] >= workload.slo.attainment_target),
        "cost_usd": cost,
        "cost_per_million_tokens_usd": cost / tokens * 1e6 if tokens > 0 else None,
        "api_baseline_cost_usd": baseline,
        "unserved_too_long_requests": float(sum(
            (r.unserved_too_long.sum() for r in p.routes if r.workload == workload.name and len(r.unserved_too_long)), 0.0)),
        "requests_retried_after_preemption": float(sum(
            (r.requests_preempted.sum() for r in p.routes if r.workload == workload.name and len(r.requests_preempted)), 0.0)),
        "requests_retried_after_failure": float(sum(
            (r.requests_retried_after_failure.sum() for r in p.routes
             if r.workload == workload.name and len(r.requests_retried_after_failure)), 0.0)),
        "availability": _availability(served, cache + blocked, answered + unserved + failed + blocked, h["attainment"])
        if can_block else _availability(served, cache, answered + unserved + failed, h["attainment"]),
        "api_baseline_source": price.source if price is not None else None,
    }
    for kind, stage_cost in stage_costs.items():
        stages = [s for s in p.retrieval.values() if s.workload == workload.name and s.stage.kind == kind]
        out[f"{kind}_cost_usd"] = stage_cost
        out[f"{kind}_{call_noun(stages[0].stage)}"] = float(sum(float(s.calls.sum()) for s in stages))
    if can_block:
        out["requests_blocked"] = blocked
        out["requests_blocked_after_model"] = blocked_after
    parent = stage_of(workload.name)
    if parent is not None:
        out["stage_of"] = {"workload": parent[0], "stage": parent[1]}
    if workload.sessions is not None:
        out["prefix_cache_hit_rate"] = _simulated_hit_rate(p, workload.name)
    if workload.traffic.concurrent_users is not None:
        out["closed_loop"] = _closed_loop_summary(p, workload)
    errors = _curve_errors(p, workload.name)
    if errors:
        out["latency_curves"] = errors
    return out


def _availability(served: float, cache_hits: float, arrived: float, attainment: float | None) -> float | None:
    """Share of the requests that arrived answered within the SLO: served ones meeting it, and
    response-cache hits (and requests a pipeline stage blocked, passed in with them: a refusal
    answers); failed and unserved requests count against it."""
    if arrived <= 0 or attainment is None:
        return None
    return (served * attainment + cache_hits) / arrived


def _curve_errors(p: Projection, workload: str) -> list[dict[str, Any]]:
    """The stated error of each simulated curve the workload's routes use: the capacity's
    resolution and standard error, and the batch-means errors at the capacity (curves that
    state none, such as analytic ones, are left out)."""
    out, seen = [], set()
    for r in p.routes:
        error = getattr(r.curve, "capacity_error", None)
        if r.workload != workload or error is None or id(r.curve) in seen:
            continue
        seen.add(id(r.curve))
        out.append({"deployment": r.deployment} | error())
    return out


def _closed_loop_summary(p: Projection, workload) -> dict[str, float]:
    """A concurrent-users workload's load as solved: its users, think time, the mean response
    time they got (request-weighted) and the request rate that follows (N / (R + Z))."""
    rate = p.demand_rps[workload.name]
    response = p.response_s[workload.name]
    return {
        "concurrent_users_mean": float(hourly_users(workload.traffic, p.timeline).mean()),
        "think_s": float(workload.users_think_s),
        "response_s_mean": float(np.average(response, weights=rate)) if rate.sum() > 0 else 0.0,
        "requests_per_s_mean": float(rate.mean()),
    }


def _simulated_hit_rate(p: Projection, workload: str) -> float | None:
    """Conversations: the share of prompt tokens the replicas' prefix caches served, read off
    each route's curve at its SLO capacity (the load replicas are sized for), weighted by the
    requests each route served (None for curves that do not simulate it)."""
    weighted = total = 0.0
    for r in p.routes:
        hits = getattr(r.curve, "prefix_cache_hit_rate", None)
        if r.workload != workload or hits is None or not len(r.served_requests):
            continue
        served = float(r.served_requests.sum())
        at = np.interp(r.curve.capacity_per_replica, r.curve.rates_per_replica, hits)
        weighted += served * float(at)
        total += served
    return weighted / total if total else None


def _job_summary(job, jobs: pd.DataFrame, monthly: pd.DataFrame) -> dict[str, Any]:
    rows = jobs[jobs["job"] == job.name] if len(jobs) else jobs
    started = rows["started_at"].dropna() if len(rows) else []
    finished = rows["finished_at"].dropna() if len(rows) else []
    cost = float(monthly.loc[(monthly["entity_kind"] == "training_job") & (monthly["entity"] == job.name), "cost_usd"].sum())
    return {
        "runs": len(rows),
        "runs_finished": len(finished),
        "gpu_hours": float(rows["gpu_hours"].sum()) if len(rows) else 0.0,
        "gpu_hours_lost": float(rows["gpu_hours_lost"].sum()) if len(rows) else 0.0,
        **_goodput_summary(rows),
        "failures": int(rows["failures"].sum()) if len(rows) else 0,
        "preemptions": int(rows["preemptions"].sum()) if len(rows) and "preemptions" in rows else 0,
        "first_start": _iso(min(started)) if len(started) else None,
        "last_finish": _iso(max(finished)) if len(finished) and len(finished) == len(rows) else None,
        "cost_usd": cost,
        "deadline": job.deadline.isoformat() if job.deadline else None,
        "deadline_missed": bool(rows["deadline_missed"].any()) if len(rows) else False,
    }


def _goodput_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """Goodput (useful / held GPU-hours) and the lost shares, the MFU and layout of the runs."""
    held = float(rows["gpu_hours"].sum()) if len(rows) else 0.0
    def share(column: str) -> float | None:
        return float(rows[column].sum()) / held if held > 0 else None
    return {
        "goodput": share("gpu_hours_useful"),
        "checkpoint_share": share("gpu_hours_checkpoint"),
        "rework_share": share("gpu_hours_rework"),
        "restart_share": share("gpu_hours_restart"),
        "mfu": float(rows["mfu"].iloc[-1]) if len(rows) else None,
        "layout": str(rows["layout"].iloc[-1]) if len(rows) else None,
        "checkpoint_interval_hours": float(rows["checkpoint_interval_hours"].iloc[-1]) if len(rows) else None,
    }


def _iso(value: Any) -> str:
    return pd.Timestamp(value).isoformat()
