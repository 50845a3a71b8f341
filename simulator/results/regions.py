"""Summary blocks of a scenario with regions: per region, per workload origin, per outage.

Present only where the scenario has regions, so single-site summaries keep their shape.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from simulator.common.arrays import divide
from simulator.fleet.projection import Projection, RouteHours
from simulator.fleet.regions import deployment_region, outage_hours
from simulator.scenario.derived import is_derived
from simulator.scenario.stages import BEFORE_MODEL, flows

SECONDS_PER_HOUR = 3600.0


def _attained(route: RouteHours) -> np.ndarray:
    """Requests served within the SLO each hour on a route (all served ones where it has no SLO)."""
    attainment = np.nan_to_num(np.asarray(route.curve.slo_attainment, dtype=float), nan=1.0)
    return route.served_requests * (route.point_weights @ attainment)


def _failed(route: RouteHours) -> np.ndarray:
    return route.failed_requests if len(route.failed_requests) else np.zeros_like(route.served_requests)


def _user_routes(p: Projection) -> list[RouteHours]:
    """Routes of the written workloads (a stage's calls to its model, derived workloads, left out:
    the region and outage figures count users' requests)."""
    return [r for r in p.routes if not is_derived(r.workload)]


def region_summary(p: Projection, hourly: pd.DataFrame, monthly: pd.DataFrame) -> dict[str, Any]:
    """Per region: its time zone, pools, GPU-hours and cost, hours down, and users' requests served
    there (from any origin) and from elsewhere (as the model served them, before after-model blocks)."""
    out = {}
    for region in p.scenario.regions:
        pools = [pool.name for pool in p.scenario.pools if pool.region == region.name]
        here = [r for r in _user_routes(p) if deployment_region(p.scenario, r.deployment) == region.name]
        served = float(sum((r.served_requests.sum() for r in here), 0.0))
        remote = float(sum((r.served_requests.sum() for r in here if r.origin not in (None, region.name)), 0.0))
        out[region.name] = {
            "utc_offset_hours": region.utc_offset_hours,
            "pools": pools,
            "gpu_hours_billed": float(hourly.loc[hourly["pool"].isin(pools), "gpus_billed"].sum()),
            "cost_usd": float(monthly.loc[monthly["pool"].isin(pools), "cost_usd"].sum()),
            "hours_down": float((1 - p.region_up[region.name]).sum()),
            "requests_served": served,
            "requests_served_from_other_regions": remote,
        }
    return out


def origin_summary(p: Projection, workload) -> dict[str, Any]:
    """Per origin of a workload: requests arrived, answered by the cache, served (and how many in
    another region), unserved, failed, its availability and the mean round trip its served
    requests carried. Arrived = cache hits + served + unserved + failed + blocked by a stage; a
    refusal counts as answered in the availability, as per workload."""
    out = {}
    for origin in workload.origins:
        key = (workload.name, origin.region)
        arrived = p.origin_rps[key] * SECONDS_PER_HOUR
        routes = [r for r in p.routes if r.workload == workload.name and r.origin == origin.region]
        served = sum((r.served_requests for r in routes), np.zeros(p.timeline.hours))
        elsewhere = sum((r.served_requests for r in routes if r.network_rtt_ms > 0), np.zeros(p.timeline.hours))
        unserved = sum((r.unserved_requests for r in routes), p.origin_unrouted_rps[key] * SECONDS_PER_HOUR)
        failed = sum((_failed(r) for r in routes), np.zeros(p.timeline.hours))
        attained = sum((_attained(r) for r in routes), np.zeros(p.timeline.hours))
        trip = sum((r.served_requests.sum() * r.network_rtt_ms for r in routes), 0.0)
        cache = arrived * workload.response_cache_hit_rate
        # blocked by a stage: before the model, what of the requests past the cache never reached
        # a route (nor went unrouted); after it, the blocked share of the answers (as per workload)
        reached = sum((r.demand_rps for r in routes), p.origin_unrouted_rps[key]) * SECONDS_PER_HOUR
        after_share = sum((f.blocks for f in flows(workload) if f.stage.position != BEFORE_MODEL), 0.0)
        blocked = float((arrived - cache - reached).sum() + served.sum() * after_share)
        answered = float(served.sum() * (1 - after_share))
        total = float(arrived.sum())
        out[origin.region] = {
            "share": origin.share,
            "peak_hour_local": origin.peak_hour_local,
            "requests": total,
            "requests_cache_hits": float(cache.sum()),
            "requests_served": answered,
            "requests_served_in_other_regions": float(elsewhere.sum() * (1 - after_share)),
            "unserved_requests": float(unserved.sum()),
            "failed_requests": float(failed.sum()),
            "requests_blocked": blocked,
            "availability": float((attained.sum() * (1 - after_share) + cache.sum() + blocked) / total)
            if total > 0 else None,
            "mean_network_rtt_ms": float(trip / served.sum()) if served.sum() > 0 else 0.0,
        }
    return out


def outage_summary(p: Projection) -> list[dict[str, Any]]:
    """Per outage, over its hours and every workload: requests that arrived at the GPUs' routes,
    those served in another region than their origin's, unserved, and the share of the served
    meeting the SLO (the plan is short for the outage where unserved or attainment falls)."""
    out = []
    routes = _user_routes(p)
    for outage in p.scenario.region_outages:
        inside = outage_hours(p.scenario, p.timeline, outage)
        served = sum(((r.served_requests * inside).sum() for r in routes), 0.0)
        attained = sum(((_attained(r) * inside).sum() for r in routes), 0.0)
        moved = sum(((r.served_requests * inside).sum() for r in routes if r.network_rtt_ms > 0), 0.0)
        unserved = sum(((r.unserved_requests * inside).sum() for r in routes), 0.0)
        unserved += sum(((u * SECONDS_PER_HOUR * inside).sum() for w, u in p.unrouted_rps.items() if not is_derived(w)), 0.0)
        out.append({
            "name": outage.name,
            "region": outage.region,
            "start": (dt.datetime.combine(outage.start, dt.time()) + dt.timedelta(hours=outage.start_hour_utc))
            .isoformat() + "Z",
            "hours": outage.hours,
            "requests_served": float(served),
            "requests_served_in_other_regions": float(moved),
            "unserved_requests": float(unserved),
            "slo_attainment": float(divide(attained, served)) if served > 0 else None,
        })
    return out


def region_reserve(p: Projection, dep) -> dict[str, float]:
    """Replica-hours a deployment held for a region's loss, and their cost at its pool's mean
    cost per billed GPU-hour (as the failure redundancy is priced)."""
    if not len(dep.region_reserve):
        return {"region_reserve_replica_hours": 0.0, "region_reserve_cost_usd": 0.0}
    held = np.clip(dep.billed - (dep.requested - dep.region_reserve), 0.0, dep.region_reserve)  # cut first when short
    cost = p.pool_costs[dep.pool]
    per_gpu_hour = divide(cost.total_usd, cost.gpus_billed)
    return {"region_reserve_replica_hours": float(held.sum()),
            "region_reserve_cost_usd": float((held * dep.gpus_per_replica * per_gpu_hour).sum())}  # fmt: skip
