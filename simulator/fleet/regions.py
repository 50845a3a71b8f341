"""Regions: where a workload's users are, which region serves them, and what the trip adds.

A workload with ``origins`` has users in several regions, each with its own daily peak in local
time (the peak follows the sun). Each origin's requests go to the workload's deployments in the
nearest region that serves it, by network round trip (its own region first, at 0 ms); route
shares split them among the deployments of one region. While a region is down (a
``region_outages`` entry) its deployments serve nothing and, with ``routing.failover``, its
traffic goes on to the next nearest region up. ``spill_over`` also sends on what a region
cannot hold at its limits (one hop, see :func:`spill_share`).

A request served in another region carries the round trip in its TTFT and end-to-end latency
(the request travels there and the first token back; TPOT is unchanged). Its latency curve is
the deployment's curve for the workload with its TTFT and E2E targets tightened by the round trip
(so SLO attainment is exact per request), with the round trip added to every TTFT and E2E
quantile (:class:`NetworkDelayedCurve`).

Simplifications, stated: the weekly (weekend) factor follows the UTC calendar day; daylight
saving time is not modelled; the round trip is a constant per pair of regions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.common.arrays import divide
from simulator.fleet.demand import Timeline, hourly_requests_per_s
from simulator.scenario.schema import Scenario, Slo, Workload


def region_up(scenario: Scenario, line: Timeline) -> dict[str, np.ndarray]:
    """Share of each hour each region is up: 1, less the part of the hour an outage covers
    (overlapping outages: the larger part; exact unless two cover different parts of one hour)."""
    hours = np.arange(line.hours, dtype=float)
    up = {region.name: np.ones(line.hours) for region in scenario.regions}
    for outage in scenario.region_outages:
        start = line.hour_of(outage.start) + outage.start_hour_utc
        end = start + outage.hours
        down = np.clip(np.minimum(hours + 1, end) - np.maximum(hours, start), 0.0, 1.0)
        up[outage.region] = np.minimum(up[outage.region], 1.0 - down)  # overlapping outages do not compound
    return up


def outage_hours(scenario: Scenario, line: Timeline, outage: Any) -> np.ndarray:
    """Share of each hour inside one outage."""
    hours = np.arange(line.hours, dtype=float)
    start = line.hour_of(outage.start) + outage.start_hour_utc
    return np.clip(np.minimum(hours + 1, start + outage.hours) - np.maximum(hours, start), 0.0, 1.0)


def deployment_region(scenario: Scenario, deployment: str) -> str | None:
    return scenario.pool(scenario.deployment(deployment).pool).region


def origin_rates(scenario: Scenario, workload: Workload, line: Timeline) -> list[tuple[str, np.ndarray]]:
    """Per origin, its request rate each hour: the workload's traffic x the origin's share, with
    the daily peak at the origin's local peak hour."""
    out = []
    for origin in workload.origins:
        offset = scenario.region(origin.region).utc_offset_hours
        traffic = workload.traffic.model_copy(update={"peak_hour_utc": (origin.peak_hour_local - offset) % 24})
        out.append((origin.region, hourly_requests_per_s(traffic, line) * origin.share))
    return out


def nearest_first(scenario: Scenario, origin: str, regions: set[str]) -> list[str]:
    """The regions an origin can reach, nearest (smallest round trip) first; ties by name."""
    reachable = [(ms, name) for name in regions if (ms := scenario.round_trip_ms(origin, name)) is not None]
    return [name for _, name in sorted(reachable)]


@dataclass
class OriginShare:
    """The share of one origin's requests (those reaching the GPUs) one deployment gets each hour."""

    origin: str
    deployment: str
    region: str
    rtt_ms: float
    share: np.ndarray


def _by_region(scenario: Scenario, workload: Workload) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for route in workload.routes:
        out.setdefault(deployment_region(scenario, route.deployment) or "", []).append(route.deployment)
    return out


def region_split(
    scenario: Scenario, workload: Workload, region: str, route_shares: dict[str, np.ndarray],
    windows: dict[str, np.ndarray],
) -> list[tuple[str, np.ndarray]]:
    """Each of the workload's deployments in a region and its share of what the region takes
    each hour: the route shares of those in their serving window (routes with share 0 take it
    equally when no other has one); all 0 in hours none is in its window."""
    members = _by_region(scenario, workload).get(region, [])
    hours = len(next(iter(windows.values())))
    hosted = [windows[d] for d in members]
    raw = [route_shares[d] * w for d, w in zip(members, hosted, strict=True)]
    serving = sum(raw, np.zeros(hours))
    raw = [np.where(serving > 0, r, w) for r, w in zip(raw, hosted, strict=True)]
    total = sum(raw, np.zeros(hours))
    return [(d, divide(r, total)) for d, r in zip(members, raw, strict=True)]


def origin_shares(
    scenario: Scenario,
    workload: Workload,
    origin: str,
    route_shares: dict[str, np.ndarray],
    windows: dict[str, np.ndarray],
    up: dict[str, np.ndarray],
) -> tuple[list[OriginShare], np.ndarray]:
    """Where one origin's requests go each hour, and the share that finds no region.

    ``route_shares``: each route's scheduled share; ``windows``: each deployment's serving window
    (without outages); ``up``: each region's share of the hour up. Regions are tried nearest
    first; a region takes what is left where a deployment of the workload is in its window there
    (with failover, only the part of the hour the region is up; without, the nearest region that
    hosts one takes it all and loses the part it is down); :func:`region_split` splits it there.
    """
    hours = len(next(iter(windows.values())))
    remaining, lost, out = np.ones(hours), np.zeros(hours), []
    for region in nearest_first(scenario, origin, set(_by_region(scenario, workload))):
        split = region_split(scenario, workload, region, route_shares, windows)
        here = sum((share for _, share in split), np.zeros(hours)) > 0
        if workload.routing.failover:
            take = remaining * here * up[region]
            served = take
        else:
            take = remaining * here
            served = take * up[region]
            lost += take - served
        remaining = remaining - take
        ms = scenario.round_trip_ms(origin, region) or 0.0
        out += [OriginShare(origin, dep, region, ms, served * share) for dep, share in split]
    return out, remaining + lost


def spill_share(load_equivalents: np.ndarray, held_equivalents: np.ndarray) -> np.ndarray:
    """Share of a deployment's load it cannot hold: 1 - what its replicas carry at their target
    utilisation (after limits: max replicas, the pool) / the load, in replica-equivalents at the
    within-hour peak. Spilled on once, to the next nearest region, which is then sized for it;
    what that region cannot hold in turn stays where it is (one hop)."""
    return np.clip(1.0 - divide(held_equivalents, load_equivalents, 1.0), 0.0, 1.0)


def next_region(scenario: Scenario, workload: Workload, origin: str, after: str) -> str | None:
    """The region after ``after`` in an origin's nearest-first order among the workload's."""
    regions = {deployment_region(scenario, r.deployment) for r in workload.routes} - {None}
    order = nearest_first(scenario, origin, regions)  # type: ignore[arg-type]
    return order[order.index(after) + 1] if after in order and order.index(after) + 1 < len(order) else None


def remote_scenario(scenario: Scenario, workload: str, rtt_ms: float) -> Scenario:
    """The scenario with one workload's TTFT and E2E targets tightened by a round trip, so its
    curve's SLO attainment counts the trip per request (the same scenario at 0 ms or with no
    such target)."""
    w = scenario.workload(workload)
    slo = w.slo
    if rtt_ms <= 0 or (slo.ttft_p95_ms is None and slo.e2e_p95_ms is None):
        return scenario
    tight = Slo(
        ttft_p95_ms=None if slo.ttft_p95_ms is None else slo.ttft_p95_ms - rtt_ms,
        tpot_p95_ms=slo.tpot_p95_ms,
        e2e_p95_ms=None if slo.e2e_p95_ms is None else slo.e2e_p95_ms - rtt_ms,
        attainment_target=slo.attainment_target,
    )
    workloads = [x.model_copy(update={"slo": tight}) if x.name == workload else x for x in scenario.workloads]
    return scenario.model_copy(update={"workloads": workloads})


class NetworkDelayedCurve:
    """A latency curve seen from another region: the round trip added to every TTFT and E2E
    quantile; attainment and capacity from the curve built for the tightened targets."""

    def __init__(self, curve: Any, rtt_ms: float) -> None:
        self._curve = curve
        self.network_rtt_ms = rtt_ms
        self.ttft_ms = np.asarray(curve.ttft_ms, dtype=float) + rtt_ms
        self.e2e_ms = np.asarray(curve.e2e_ms, dtype=float) + rtt_ms

    def __getattr__(self, name: str) -> Any:
        return getattr(self._curve, name)
