"""The lifetime projection: hour by hour over the horizon, vectorised in numpy.

demand per workload -> routes -> replica-equivalents per deployment (through each workload's
capacity per replica under its SLO, from the inference engine's latency curve) -> autoscaler ->
pool limits (inference first by default, training takes what is left) -> training DES on what
is left -> latency read off the curves at each hour's load -> GPU-hours, energy and cost per
pool from its pricing, split into inference (per workload), training (per job) and idle.

Modelling choices (documented here, reported by the summary):
- Workloads sharing a deployment add their replica-equivalents; each workload's latency is read
  off its own curve at the same fraction of its capacity as the replica's total load.
- Load per serving replica above the curve's highest simulated rate cannot be served: the excess
  is reported as unserved requests (never silently dropped).
- Response-cache hits never reach the GPU; they count as answered requests (tokens, API baseline)
  but not in latency or SLO statistics.
- A workload's retrieval stage (:mod:`simulator.economics.retrieval`) is billed per hour as its own lines
  (queries reaching it, hours served), inference category, outside every GPU pool. Its latency
  and tokens are in the workload's latency curves already.
- LoRA adapters change a deployment's capacity and latency through its curves (adapter memory
  and per-iteration overhead, :mod:`simulator.perf.lora`); nothing else here.
- A workload given as concurrent users (closed loop) sends N / (R + Z) requests per second in
  each hour: N its users, Z their think time and R its mean response time, solved (bisection)
  against the latency the autoscaled replicas deliver at that rate (before pool limits and
  training; cache hits answered at once). Past the curve's highest simulated load R is read at
  that load and the excess is reported unserved, where real users would wait longer. The curves themselves are open-loop (Poisson)
  runs, which a population much larger than one replica's batch approaches (a simplification:
  a small closed population arrives more evenly, so latency is if anything overstated).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from simulator.common.arrays import divide
from simulator.economics.cashflow import era_capital
from simulator.economics.pricing import (
    LineItem,
    PoolCost,
    gpus_per_node,
    pool_capacity_gpus,
    pool_hourly_cost,
    price_segments,
    spot_down_fraction,
    spot_preemptions_per_replica_hour,
)
from simulator.economics.refresh import Era, owned_in_place, pool_eras, scenario_at, write_off_item
from simulator.economics.stages import stage_line_items, stage_pool
from simulator.fleet.autoscale import (
    fit_to_pool,
    held_through_scale_down,
    replicas_requested,
    replicas_serving,
)
from simulator.fleet.demand import (
    Timeline,
    closed_loop_requests_per_s,
    hourly_requests_per_s,
    hourly_users,
    timeline,
)
from simulator.fleet.latency import CurveLike, point_weights, sizing_capacity
from simulator.fleet.regions import (
    NetworkDelayedCurve,
    deployment_region,
    nearest_first,
    next_region,
    origin_rates,
    origin_shares,
    region_split,
    region_up,
    remote_scenario,
    spill_share,
)
from simulator.fleet.reliability import (
    down_share,
    failures_per_replica_hour,
    recovery_hours,
    spare_replicas,
    up_states,
    zone_spread,
)
from simulator.perf.memory import weight_bytes
from simulator.scenario.resolve import gpu_of, model_of
from simulator.scenario.schedule import hours_since, route_share_hourly, stepped
from simulator.scenario.schema import (
    Pool,
    Pricing,
    ReservedPricing,
    Scenario,
    SpotPricing,
    add_months,
)
from simulator.scenario.stages import BEFORE_MODEL, Stage, flows, model_share

CurveProvider = Callable[[Scenario, str, str], CurveLike]
SECONDS_PER_HOUR = 3600.0


@dataclass
class RouteHours:
    """One workload's traffic on one deployment, hour by hour."""

    workload: str
    deployment: str
    curve: CurveLike
    demand_rps: np.ndarray  # offered to the GPUs (after response-cache hits)
    replica_equivalents: np.ndarray
    served_requests: np.ndarray = field(default_factory=lambda: np.zeros(0))
    unserved_requests: np.ndarray = field(default_factory=lambda: np.zeros(0))
    point_weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (hours, points)
    busy_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cost_usd: np.ndarray = field(default_factory=lambda: np.zeros(0))
    deployment_share: np.ndarray = field(default_factory=lambda: np.zeros(0))  # of its GPU-time
    requests_preempted: np.ndarray = field(default_factory=lambda: np.zeros(0))  # in flight, retried
    too_long_share: float = 0.0  # of its requests, refused by the deployment as too long
    unserved_too_long: np.ndarray = field(default_factory=lambda: np.zeros(0))
    failed_requests: np.ndarray = field(default_factory=lambda: np.zeros(0))  # lost to failures, not retried
    requests_retried_after_failure: np.ndarray = field(default_factory=lambda: np.zeros(0))
    origin: str | None = None  #: region the requests come from (workloads with origins)
    network_rtt_ms: float = 0.0  #: round trip from the origin to the deployment's region


@dataclass
class DeploymentHours:
    name: str
    pool: str
    gpus_per_replica: int
    requested: np.ndarray  # replicas the autoscaler asked for
    billed: np.ndarray = field(default_factory=lambda: np.zeros(0))  # replicas held after limits
    serving: np.ndarray = field(default_factory=lambda: np.zeros(0))  # hour-averaged, after delay
    busy_gpus: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: busy GPUs weighted by their board power as a share of TDP (prefill at TDP, decode at the
    #: GPU's decode_power_fraction): what energy is charged on
    power_gpus: np.ndarray = field(default_factory=lambda: np.zeros(0))
    down_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))  # spot reloads and failures
    preemptions_per_hour: np.ndarray = field(default_factory=lambda: np.zeros(0))
    decode_power_fraction: float = 1.0  #: the GPU's decode board power / TDP (catalog)
    #: hardware failures per replica-hour, and the share of replicas down after them (renewal theory)
    failures_per_hour: np.ndarray = field(default_factory=lambda: np.zeros(0))
    failure_down: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: replicas asked for beyond the load's need, for failures (the expected loss and the spares)
    redundant: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: of which held so that the loss of any one region is absorbed (routing.reserve_for_region_loss)
    region_reserve: np.ndarray = field(default_factory=lambda: np.zeros(0))
    reserve_equivalents: np.ndarray = field(default_factory=lambda: np.zeros(0))  #: behind region_reserve
    #: replica-equivalents of the load at the within-hour peak (what spill-over compares with)
    load_equivalents: np.ndarray = field(default_factory=lambda: np.zeros(0))
    retry_failed: bool = True  #: requests in flight on a failed replica are retried elsewhere


@dataclass
class StageHours:
    """One pipeline stage of a workload (retrieval, a guardrail, a tool; see
    :mod:`simulator.economics.stages`), hour by hour: the requests it runs on, hours served,
    billed lines."""

    workload: str
    stage: Stage
    calls: np.ndarray  # requests the stage runs on in the hour
    hours: np.ndarray  # share of the hour the workload had a serving deployment
    items: list[LineItem]

    @property
    def pool(self) -> str:
        """The pseudo-pool its lines bill under, ``<stage>:<workload>``."""
        return stage_pool(self.workload, self.stage.name)

    @property
    def cost_usd(self) -> np.ndarray:
        return sum((item.cost("inference") for item in self.items), np.zeros_like(self.calls))


RetrievalHours = StageHours  # a workload's retrieval: is its stage 'retrieval'


@dataclass
class Projection:
    """Every hourly array of one run; :mod:`simulator.results.result` turns it into tables."""

    scenario: Scenario
    timeline: Timeline
    demand_rps: dict[str, np.ndarray]  # per workload, before the response cache
    cache_hit_rps: dict[str, np.ndarray]
    unrouted_rps: dict[str, np.ndarray]  # no serving deployment on any route: unserved
    routes: list[RouteHours]
    deployments: dict[str, DeploymentHours]
    pool_costs: dict[str, PoolCost]
    pool_inference_gpus: dict[str, np.ndarray]
    pool_training_gpus: dict[str, np.ndarray]
    pool_busy_gpus: dict[str, np.ndarray]
    job_cost_usd: dict[str, np.ndarray]
    training: object  # simulator.training.TrainingResult
    #: per pipeline stage of every workload (retrieval and the others), by its pseudo-pool label
    retrieval: dict[str, StageHours] = field(default_factory=dict)
    #: per workload given as concurrent users: its mean response time each hour (s)
    response_s: dict[str, np.ndarray] = field(default_factory=dict)
    #: per (workload, origin region): requests/s arriving from there, and those no region took
    origin_rps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    origin_unrouted_rps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    #: per region: the share of each hour it is up (outages)
    region_up: dict[str, np.ndarray] = field(default_factory=dict)


def too_long_share(scenario: Scenario, deployment, workload) -> float:
    """Share of a workload's requests a deployment refuses as too long (cached per inputs)."""
    from simulator.inference.api import too_long_share as estimate

    key = (deployment.model_dump_json(), workload.model_dump_json(), scenario.pool(deployment.pool).gpu,
           scenario.catalog.model_dump_json())  # fmt: skip
    if key not in _TOO_LONG:
        _TOO_LONG[key] = estimate(scenario, deployment, workload)
    return _TOO_LONG[key]


_TOO_LONG: dict[tuple[str, ...], float] = {}


def default_curve_provider(scenario: Scenario, deployment: str, workload: str) -> CurveLike:
    from simulator.inference import deployment_curve

    return deployment_curve(scenario, deployment, workload)


#: The engine's provider (callers that prebuild curves check that nobody swapped it out).
ENGINE_CURVE_PROVIDER = default_curve_provider


def project(
    scenario: Scenario,
    rng: np.random.Generator,
    curve_provider: CurveProvider = default_curve_provider,
) -> Projection:
    """Run the hourly projection of a (plan-applied) scenario."""
    from simulator.training import simulate_training

    line = timeline(scenario.horizon)
    capacity = _pool_capacities(scenario, line)
    # First pass: deployments tied to a training job are not serving yet (their launch date
    # comes from the training DES, which needs to know what serving leaves of shared pools).
    side = _demand_side(scenario, line, curve_provider, launch_hour={})
    active, regions, demand, cache_hits, unrouted, routes, deployments = side

    inference_first = [p.name for p in scenario.pools if p.priority == "inference"]
    training_first = [p.name for p in scenario.pools if p.priority == "training"]
    _allocate(scenario, deployments, capacity, inference_first, training_gpus={})
    available = {
        pool: capacity[pool] - _pool_inference_gpus(deployments, pool, line.hours)
        for pool in inference_first
    } | {pool: capacity[pool].copy() for pool in training_first}
    training = simulate_training(scenario, available, rng)
    if any(d.after_job for d in scenario.deployments):
        side = _demand_side(scenario, line, curve_provider, _launch_hours(scenario, training, line))
        active, regions, demand, cache_hits, unrouted, routes, deployments = side
    # Training-first pools serve with what training leaves. In inference-first pools this only
    # bites where a training run that started earlier still holds GPUs that grown serving
    # demand would want: running training is never pre-empted, so serving is squeezed there.
    _allocate(scenario, deployments, capacity, inference_first + training_first, training.gpus_held_by_pool)
    if _spill_over(scenario, line, curve_provider, active, routes, deployments, regions):
        # the reserve for a region's loss against the routing with the spill
        closed = _closed_loop_rates(scenario, line, curve_provider, active, regions)
        reserve = _region_reserve(scenario, line, curve_provider, active, closed, regions, routes)
        deployments = _requested_replicas(scenario, routes, line.hours, active, reserve)
        _allocate(scenario, deployments, capacity, inference_first + training_first, training.gpus_held_by_pool)

    for dep in deployments.values():
        policy = scenario.deployment(dep.name).autoscaling
        dep.serving = replicas_serving(dep.billed, policy.scale_up_delay_minutes) * (1 - dep.down_fraction)
    _serve_routes(routes, deployments)

    pool_costs, inf_gpus, train_gpus, busy = {}, {}, {}, {}
    for pool in scenario.pools:
        inf_gpus[pool.name] = _pool_inference_gpus(deployments, pool.name, line.hours)
        train_gpus[pool.name] = training.gpus_held_by_pool.get(pool.name, np.zeros(line.hours))
        busy[pool.name] = train_gpus[pool.name] + sum(
            (d.busy_gpus for d in deployments.values() if d.pool == pool.name), np.zeros(line.hours)
        )
        power_gpus = train_gpus[pool.name] + sum(
            (d.power_gpus for d in deployments.values() if d.pool == pool.name), np.zeros(line.hours)
        )  # energy follows the phase mix (training and prefill at TDP, decode below it)
        pool_costs[pool.name] = _pool_cost(scenario, pool, line, inf_gpus[pool.name],
                                           train_gpus[pool.name], power_gpus)  # fmt: skip
    _attribute_inference_cost(routes, deployments, pool_costs, inf_gpus)
    job_cost = _attribute_training_cost(scenario, training, pool_costs, train_gpus)
    return Projection(
        scenario=scenario, timeline=line, demand_rps=demand, cache_hit_rps=cache_hits,
        unrouted_rps=unrouted, routes=routes, deployments=deployments, pool_costs=pool_costs,
        pool_inference_gpus=inf_gpus, pool_training_gpus=train_gpus, pool_busy_gpus=busy,
        job_cost_usd=job_cost, training=training,
        retrieval=_retrieval_hours(scenario, routes, active, line.hours),
        response_s=_closed_loop_response_s(scenario, line, demand),
        origin_rps=regions.origin_rps, origin_unrouted_rps=regions.origin_unrouted_rps, region_up=regions.up,
    )  # fmt: skip


def _demand_side(
    scenario: Scenario, line: Timeline, curve_provider: CurveProvider, launch_hour: dict[str, float]
) -> tuple[dict[str, np.ndarray], RegionState, dict[str, np.ndarray], dict[str, np.ndarray],
           dict[str, np.ndarray], list[RouteHours], dict[str, DeploymentHours]]:  # fmt: skip
    """Serving windows cut by region outages, demand, routes and the replicas asked for."""
    windows = _serving_windows(scenario, line, launch_hour)
    regions = RegionState.of(scenario, line, windows)
    active = {d.name: windows[d.name] * regions.up[r] if (r := scenario.pool(d.pool).region) else windows[d.name]
              for d in scenario.deployments}  # fmt: skip
    closed = _closed_loop_rates(scenario, line, curve_provider, active, regions)
    demand, cache_hits, unrouted, routes = _demand_and_routes(scenario, line, curve_provider, active, closed, regions)
    reserve = _region_reserve(scenario, line, curve_provider, active, closed, regions, routes)
    deployments = _requested_replicas(scenario, routes, line.hours, active, reserve)
    return active, regions, demand, cache_hits, unrouted, routes, deployments


def _reserving(scenario: Scenario) -> set[str]:
    return {w.name for w in scenario.workloads if w.origins and w.routing.reserve_for_region_loss}


def _peak_equivalents(scenario: Scenario, routes: list[RouteHours], workloads: set[str]) -> dict[str, np.ndarray]:
    """Per deployment, the replica-equivalents at the within-hour peak of some workloads' routes."""
    peak = {w.name: w.traffic.peak_to_mean_within_hour for w in scenario.workloads}
    out: dict[str, np.ndarray] = {}
    for r in routes:
        if r.workload in workloads:
            out[r.deployment] = out.get(r.deployment, 0.0) + r.replica_equivalents * peak[r.workload]
    return out


def _region_reserve(
    scenario: Scenario, line: Timeline, curve_provider: CurveProvider, active: dict[str, np.ndarray],
    closed: dict[str, np.ndarray], regions: RegionState, routes: list[RouteHours],
) -> dict[str, np.ndarray]:
    """Per deployment, the replica-equivalents held beyond today's routing so that the loss of
    any one region (all of it, at any hour) is carried without scale-up: for each region the
    routing with it down, and per deployment the most it would then carry more than now."""
    reserving = _reserving(scenario)
    if not reserving:
        return {}
    now = _peak_equivalents(scenario, routes, reserving)
    hosts = {deployment_region(scenario, r.deployment) for w in reserving for r in scenario.workload(w).routes}
    out: dict[str, np.ndarray] = {}
    for region in sorted(hosts - {None}):  # type: ignore[operator]
        down = {d: a * (deployment_region(scenario, d) != region) for d, a in active.items()}
        _, _, _, lost = _demand_and_routes(scenario, line, curve_provider, down, closed, regions.without(region))
        for dep, carried in _peak_equivalents(scenario, lost, reserving).items():
            more = np.maximum(carried - now.get(dep, 0.0), 0.0)
            out[dep] = np.maximum(out.get(dep, 0.0), more)
    return out


def _spill_over(
    scenario: Scenario, line: Timeline, curve_provider: CurveProvider, active: dict[str, np.ndarray],
    routes: list[RouteHours], deployments: dict[str, DeploymentHours], regions: RegionState,
) -> bool:
    """Move what each spill-over route's deployment cannot hold (:func:`regions.spill_share`)
    to the nearest next region's deployments, as routes from the same origin; True if any moved."""
    moved_any = False
    eras_served = _serving_eras(scenario, line, active)
    for route in list(routes):
        workload = scenario.workload(route.workload)
        if route.origin is None or workload.routing.policy != "spill_over":
            continue
        dep = deployments[route.deployment]
        policy = scenario.deployment(route.deployment).autoscaling
        # what the replicas held for the load carry (spares, zone and region reserves held
        # apart: they are not spent on load), at the target utilisation, less spot reloads
        for_load = np.minimum(dep.billed, np.maximum(dep.requested - dep.redundant, 0.0))
        spot_up = divide(1 - dep.down_fraction, 1 - dep.failure_down, 1.0)
        share = spill_share(dep.load_equivalents, for_load * policy.target_utilization * spot_up)
        here = deployment_region(scenario, route.deployment)
        target = next_region(scenario, workload, route.origin, here) if here else None
        if target is None or not np.any(share * route.demand_rps > 0):
            continue
        shares = {r.deployment: route_share_hourly(r, scenario.horizon.start, line.hours) for r in workload.routes}
        split = region_split(scenario, workload, target, shares, active)
        share = share * (sum((part for _, part in split), np.zeros(line.hours)) > 0)  # where it serves
        moved = route.demand_rps * share
        route.demand_rps = route.demand_rps - moved
        route.replica_equivalents = route.replica_equivalents * (1 - share)
        ms = scenario.round_trip_ms(route.origin, target) or 0.0
        for name, part in split:
            _place(scenario, line, curve_provider, eras_served, workload, routes, name, moved * part, route.origin, ms)
        moved_any = True
    return moved_any


# ---------------------------------------------------------------------- demand


def _serving_windows(
    scenario: Scenario, line: Timeline, launch_hour: dict[str, float]
) -> dict[str, np.ndarray]:
    """Hourly fraction of each hour a deployment serves: its from/until window and, for
    ``after_job`` deployments, from the job's first finish (never, if it has not finished)."""
    hours = np.arange(line.hours, dtype=float)
    out = {}
    for dep in scenario.deployments:
        begin = hours_since(scenario.horizon.start, dep.from_date) if dep.from_date else -np.inf
        end = hours_since(scenario.horizon.start, dep.until) if dep.until else np.inf
        if dep.after_job is not None:
            begin = max(begin, launch_hour.get(dep.after_job, np.inf))
        # the share of [h, h + 1) inside [begin, end)
        out[dep.name] = np.clip(np.minimum(hours + 1, end) - np.maximum(hours, begin), 0.0, 1.0)
    return out


def _launch_hours(scenario: Scenario, training, line: Timeline) -> dict[str, float]:
    """Hours since the horizon start at which each job's first run finished."""
    runs = training.runs
    out = {}
    for job in scenario.training_jobs:
        finished = runs.loc[(runs["job"] == job.name), "finished_at"].dropna() if len(runs) else []
        if len(finished):
            out[job.name] = (finished.min() - line.start) / pd.Timedelta(hours=1)
    return out


def _closed_loop_rates(
    scenario: Scenario, line: Timeline, curve_provider: CurveProvider, active: dict[str, np.ndarray],
    regions: RegionState | None = None,
) -> dict[str, np.ndarray]:
    """Per workload given as concurrent users, its request rate X each hour where X = N / (R + Z)
    and R is the mean response time the autoscaler's replicas give at that rate.

    Bisection on every hour at once between N / (R_max + Z) and N / Z (R_max: the slowest mean
    the workload's curves hold), to CLOSED_LOOP_TOLERANCE: fixed-point steps oscillate where the
    latency climbs steeply near saturation, and R falls where a rise in rate adds a replica, so
    only a bracket is safe. Pool limits and training are left out: the rate is what the users
    send when the plan serves them as the autoscaler asks.
    """
    users = [w for w in scenario.workloads if w.traffic.concurrent_users is not None]
    if not users:
        return {}
    population = {w.name: hourly_users(w.traffic, line) for w in users}
    think = {w.name: float(w.users_think_s) for w in users}
    lo = dict.fromkeys(population)
    hi = {name: population[name] / think[name] for name in population}
    rate = dict(hi)
    for step in range(CLOSED_LOOP_MAX_STEPS):
        routes = _autoscaled_routes(scenario, line, curve_provider, active, rate, regions)
        for w in users:
            mine = [r for r in routes if r.workload == w.name]
            if step == 0:  # bracket: the slowest response the curves can give
                slowest = max((float(_mean_e2e_s(r.curve).max()) for r in mine), default=0.0)
                lo[w.name] = population[w.name] / (slowest + think[w.name])
            else:
                response = _mean_response_s(w, mine, line.hours)
                short = rate[w.name] < closed_loop_requests_per_s(population[w.name], response, think[w.name])
                lo[w.name] = np.where(short, rate[w.name], lo[w.name])
                hi[w.name] = np.where(short, hi[w.name], rate[w.name])
            rate[w.name] = (lo[w.name] + hi[w.name]) / 2
        width = max(float(np.max(divide(hi[n] - lo[n], hi[n]), initial=0.0)) for n in population)
        if width < CLOSED_LOOP_TOLERANCE:
            break
    return rate


#: Most bisection steps for closed-loop rates, and the relative width of the bracket accepted.
CLOSED_LOOP_MAX_STEPS = 60
CLOSED_LOOP_TOLERANCE = 1e-6


def _autoscaled_routes(
    scenario: Scenario, line: Timeline, curve_provider: CurveProvider, active: dict[str, np.ndarray],
    closed_rates: dict[str, np.ndarray], regions: RegionState | None = None,
) -> list[RouteHours]:
    """Routes served by the replicas the autoscaler asks for (no pool limits), loads set."""
    state = RegionState(regions.windows, regions.up) if regions is not None else None  # records apart
    _, _, _, routes = _demand_and_routes(scenario, line, curve_provider, active, closed_rates, state)
    deployments = _requested_replicas(scenario, routes, line.hours, active)
    for dep in deployments.values():
        dep.billed = dep.requested
        delay = scenario.deployment(dep.name).autoscaling.scale_up_delay_minutes
        dep.serving = replicas_serving(dep.billed, delay) * (1 - dep.down_fraction)
    _serve_routes(routes, deployments)
    return routes


def _mean_e2e_s(curve: CurveLike) -> np.ndarray:
    """Mean E2E (s) at each load point: the trapezoids of its quantile function over the levels
    (np.trapezoid needs numpy 2)."""
    levels = np.asarray(curve.quantile_levels, dtype=float)
    e2e = np.nan_to_num(np.asarray(curve.e2e_ms, dtype=float))
    return ((e2e[:, 1:] + e2e[:, :-1]) / 2 * np.diff(levels)).sum(axis=1) / 1000 / (levels[-1] - levels[0])


def _closed_loop_response_s(scenario: Scenario, line: Timeline, demand: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per concurrent-users workload, the response time its solved rate implies: N / X - Z."""
    out = {}
    for w in scenario.workloads:
        if w.traffic.concurrent_users is not None:
            users = hourly_users(w.traffic, line)
            out[w.name] = np.where(users > 0, divide(users, demand[w.name]) - w.users_think_s, 0.0)
    return out


def _mean_response_s(workload, routes: list[RouteHours], hours: int) -> np.ndarray:
    """Mean seconds from request to last token each hour, over the workload's requests: each
    route's mean E2E at its load, weighted by its demand; response-cache hits count as
    answered at once."""
    weighted, carried = np.zeros(hours), np.zeros(hours)
    for route in routes:
        weighted += route.demand_rps * (route.point_weights @ _mean_e2e_s(route.curve))
        carried += route.demand_rps
    return divide(weighted, carried) * (1 - workload.response_cache_hit_rate)


def _demand_and_routes(
    scenario: Scenario, line: Timeline, curve_provider: CurveProvider, active: dict[str, np.ndarray],
    closed_rates: dict[str, np.ndarray], regions: RegionState | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray], list[RouteHours]]:
    """Per workload its demand and cache hits; per route the demand it carries each hour.

    A workload given as concurrent users sends ``closed_rates[name]`` (see
    :func:`_closed_loop_rates`).

    A route's share follows its schedule; the shares of routes whose deployment is not serving
    go to the workload's serving routes in proportion to theirs (serving routes whose share is
    0 take it equally when no other serving route has a share); with no deployment serving, the
    demand is unrouted and reported unserved. A workload with origins is routed region by
    region (:mod:`simulator.fleet.regions`; ``regions`` gives the windows and regions up).
    """
    demand, cache_hits, unrouted, routes = {}, {}, {}, []
    eras_served = _serving_eras(scenario, line, active)
    for workload in scenario.workloads:
        if workload.origins:  # each origin peaks at its own local hour
            rate = sum((r for _, r in origin_rates(scenario, workload, line)), np.zeros(line.hours))
        elif workload.traffic.concurrent_users is None:
            rate = hourly_requests_per_s(workload.traffic, line)
        else:
            rate = closed_rates[workload.name]
        demand[workload.name] = rate
        cache_hits[workload.name] = rate * workload.response_cache_hit_rate
        gpu_rate = (rate - cache_hits[workload.name]) * model_share(workload)  # stages block some before it
        place = functools.partial(_place, scenario, line, curve_provider, eras_served, workload, routes)
        if workload.origins:
            state = regions or RegionState.of(scenario, line, active)
            unrouted[workload.name] = _route_origins(scenario, line, workload, state, place)
            continue
        up = [active[r.deployment] for r in workload.routes]
        raw = [route_share_hourly(r, scenario.horizon.start, line.hours) * a
               for r, a in zip(workload.routes, up, strict=True)]  # fmt: skip
        serving = sum(raw, np.zeros(line.hours))
        # no serving route has a share: serving routes with share 0 act as fallbacks, equally
        fallback = sum(up, np.zeros(line.hours))
        raw = [np.where(serving > 0, r, a) for r, a in zip(raw, up, strict=True)]
        total = np.where(serving > 0, serving, fallback)
        scale = divide(1.0, total)
        # with nowhere to go a request is unserved, whatever a stage would have made of it
        unrouted[workload.name] = np.where(total > 0, 0.0, rate - cache_hits[workload.name])
        for route, share in zip(workload.routes, raw, strict=True):
            place(route.deployment, gpu_rate * share * scale)
    return demand, cache_hits, unrouted, routes


def _place(
    scenario: Scenario, line: Timeline, curve_provider: CurveProvider,
    eras_served: dict[str, list[tuple[Era, Scenario]]], workload, routes: list[RouteHours],
    deployment: str, offered: np.ndarray, origin: str | None = None, rtt_ms: float = 0.0,
) -> None:
    """Append the routes that carry ``offered`` req/s of a workload on a deployment: one per GPU
    era of its pool, each with the era's curve (seen from the origin's region across ``rtt_ms``)."""
    for era, era_scenario in eras_served[deployment]:
        curve = curve_provider(remote_scenario(era_scenario, workload.name, rtt_ms), deployment, workload.name)
        if rtt_ms > 0:
            curve = NetworkDelayedCurve(curve, rtt_ms)
        carried = np.where(era.mask(line.hours), offered, 0.0)
        refused = too_long_share(era_scenario, scenario.deployment(deployment), workload)
        routes.append(
            RouteHours(
                workload=workload.name,
                deployment=deployment,
                curve=curve,
                demand_rps=carried,
                replica_equivalents=carried * (1 - refused) / sizing_capacity(curve),
                too_long_share=refused,
                origin=origin,
                network_rtt_ms=rtt_ms,
            )
        )


@dataclass
class RegionState:
    """What region routing reads: deployments' serving windows (before outages), each region's
    share of the hour up, and the origins' arrivals and unrouted requests it records."""

    windows: dict[str, np.ndarray]
    up: dict[str, np.ndarray]
    origin_rps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    origin_unrouted_rps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, scenario: Scenario, line: Timeline, windows: dict[str, np.ndarray]) -> RegionState:
        return cls(windows, region_up(scenario, line))

    def without(self, region: str) -> RegionState:
        """One region down all the time and every other up (sizing for the loss of one region;
        a planned outage is not compounded with a second one)."""
        return RegionState(self.windows, {name: np.full_like(up, float(name != region)) for name, up in self.up.items()})


def _route_origins(
    scenario: Scenario, line: Timeline, workload, state: RegionState, place: Callable[..., None]
) -> np.ndarray:
    """Place each origin's GPU-bound requests (past the response cache and the stages' blocks)
    on the nearest serving region; return the workload's unrouted req/s: requests past the
    cache that no region took (unserved, not blocked: no stage ran on them)."""
    shares = {r.deployment: route_share_hourly(r, scenario.horizon.start, line.hours) for r in workload.routes}
    unrouted = np.zeros(line.hours)
    for origin, rate in origin_rates(scenario, workload, line):
        past_cache = rate * (1 - workload.response_cache_hit_rate)
        placed, lost = origin_shares(scenario, workload, origin, shares, state.windows, state.up)
        for p in placed:
            place(p.deployment, past_cache * model_share(workload) * p.share, origin, p.rtt_ms)
        state.origin_rps[(workload.name, origin)] = rate
        state.origin_unrouted_rps[(workload.name, origin)] = past_cache * lost
        unrouted += past_cache * lost
    return unrouted


def _serving_eras(
    scenario: Scenario, line: Timeline, active: dict[str, np.ndarray]
) -> dict[str, list[tuple[Era, Scenario]]]:
    """Per deployment, the GPU eras of its pool that need its curves (the first always; later
    ones where it serves at all), each with the scenario as it stands in that era."""
    eras_of = {pool.name: pool_eras(scenario, pool, line.hours) for pool in scenario.pools}
    scenario_on = {era.start: scenario_at(scenario, era.start) for eras in eras_of.values() for era in eras}
    out = {}
    for dep in scenario.deployments:
        serving = active[dep.name]
        out[dep.name] = [(era, scenario_on[era.start]) for era in eras_of[dep.pool]
                         if era.index == 0 or np.any(serving[era.first_hour : era.end_hour] > 0)]  # fmt: skip
    return out


def curve_requests(scenario: Scenario) -> list[tuple[Scenario, str, str]]:
    """(scenario in a GPU era, deployment, workload) of every latency curve :func:`project` may
    ask its provider for, so they can be built beforehand in parallel (deployments that wait
    for a training job count as serving from the start: a curve too many at worst)."""
    line = timeline(scenario.horizon)
    active = _serving_windows(scenario, line, {job.name: 0.0 for job in scenario.training_jobs})
    eras = _serving_eras(scenario, line, active)
    out = []
    for workload in scenario.workloads:
        for route in workload.routes:
            for rtt in _round_trips(scenario, workload, route.deployment):
                out += [(remote_scenario(era_scenario, workload.name, rtt), route.deployment, workload.name)
                        for _, era_scenario in eras[route.deployment]]  # fmt: skip
    return out


def _round_trips(scenario: Scenario, workload, deployment: str) -> list[float]:
    """The round trips a deployment may be reached across by a workload's requests: 0 without
    origins; else from each origin whose nearest or next-nearest region it is in (failover and
    spill-over go one region on)."""
    if not workload.origins:
        return [0.0]
    here = deployment_region(scenario, deployment)
    regions = {deployment_region(scenario, r.deployment) for r in workload.routes} - {None}
    trips = set()
    for origin in workload.origins:
        order = nearest_first(scenario, origin.region, regions)  # type: ignore[arg-type]
        if here in order[:2]:
            trips.add(scenario.round_trip_ms(origin.region, here) or 0.0)
    return sorted(trips)


def _requested_replicas(
    scenario: Scenario, routes: list[RouteHours], hours: int, active: dict[str, np.ndarray],
    reserve: dict[str, np.ndarray] | None = None,
) -> dict[str, DeploymentHours]:
    """Replicas the autoscaler holds: sized for each workload's within-hour peak (plus any
    ``reserve`` of replica-equivalents held for a region's loss), kept through the scale-down
    delay; none while a deployment is outside its serving window."""
    out = {}
    peak = {w.name: w.traffic.peak_to_mean_within_hour for w in scenario.workloads}
    reserve = reserve or {}
    for dep in scenario.deployments:
        equivalents = sum(
            (r.replica_equivalents * peak[r.workload] for r in routes if r.deployment == dep.name),
            np.zeros(hours),
        )
        spot_down, rate = _spot_losses(scenario, dep, hours)
        failure_rate, failure_down = _failure_losses(scenario, dep, hours)
        down = 1.0 - (1.0 - spot_down) * (1.0 - failure_down)
        on = active[dep.name] > 0
        delay = dep.autoscaling.scale_down_delay_minutes
        extra = reserve.get(dep.name, np.zeros(hours))
        requested = _held(dep, equivalents + extra, down, on)
        plain = np.where(on, replicas_requested(equivalents / (1 - spot_down), dep.autoscaling), 0.0)
        region_reserve = (np.maximum(requested - _held(dep, equivalents, down, on), 0.0)
                          if np.any(extra) else np.zeros(hours))  # fmt: skip
        out[dep.name] = DeploymentHours(
            name=dep.name,
            pool=dep.pool,
            gpus_per_replica=dep.gpus_per_replica,
            requested=requested,
            down_fraction=down,
            preemptions_per_hour=rate,
            decode_power_fraction=gpu_of(scenario, scenario.pool(dep.pool)).decode_power_fraction,
            failures_per_hour=failure_rate,
            failure_down=failure_down,
            redundant=np.maximum(requested - np.where(on, held_through_scale_down(plain, delay), 0.0), 0.0),
            region_reserve=region_reserve,
            reserve_equivalents=extra,
            load_equivalents=equivalents,
            retry_failed=dep.failures.retry,
        )
    return out


def _held(dep, equivalents: np.ndarray, down: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Replicas held for a load of replica-equivalents: more by the share down, spread over
    zones to survive one's loss where asked, plus spares, kept through the scale-down delay;
    none outside the serving window."""
    needed = zone_spread(replicas_requested(equivalents / (1 - down), dep.autoscaling), dep.redundancy)
    asked = np.where(on, needed + spare_replicas(needed, down, dep.redundancy), 0.0)
    return np.where(on, held_through_scale_down(asked, dep.autoscaling.scale_down_delay_minutes), 0.0)


def _failure_losses(scenario: Scenario, dep, hours: int) -> tuple[np.ndarray, np.ndarray]:
    """Per hour, hardware failures per replica-hour and the share of replicas down after them
    (see :mod:`simulator.fleet.reliability`); the weights shard reload follows the GPU era."""
    rate, down = np.zeros(hours), np.zeros(hours)
    if dep.failures.per_gpu_day <= 0:
        return rate, down
    per_hour = failures_per_replica_hour(dep.failures, dep.gpus_per_replica)
    weights = weight_bytes(model_of(scenario, dep.model), dep.dtype)
    rate[:] = per_hour
    down[:] = down_share(per_hour, recovery_hours(dep.failures, dep.gpus_per_replica, weights))
    return rate, down


def _spot_losses(scenario: Scenario, dep, hours: int) -> tuple[np.ndarray, np.ndarray]:
    """Per hour, the share of a deployment's replicas down after spot pre-emptions (the
    autoscaler keeps that much more) and the pre-emptions per replica-hour (0 off spot)."""
    down, rate = np.zeros(hours), np.zeros(hours)
    weights = weight_bytes(model_of(scenario, dep.model), dep.dtype)
    for era in pool_eras(scenario, scenario.pool(dep.pool), hours):
        pricing = era.pool.pricing
        if isinstance(pricing, SpotPricing):
            mask = era.mask(hours)
            down[mask] = spot_down_fraction(pricing, dep.gpus_per_replica, weights)
            rate[mask] = spot_preemptions_per_replica_hour(pricing, dep.gpus_per_replica)
    return down, rate


# ---------------------------------------------------------------------- capacity


def _in_term(pricing: Pricing, contract_start: dt.date, line: Timeline) -> np.ndarray:
    """Hours inside a reserved term (all hours for other pricing kinds); the term starts at
    its ``start``, else when the pricing took effect (the horizon start, or a refresh)."""
    if not isinstance(pricing, ReservedPricing):
        return np.ones(line.hours, dtype=bool)
    start = pricing.start or contract_start
    first = line.hour_of(start)
    last = line.hour_of(add_months(start, pricing.term_months))
    hours = np.arange(line.hours)
    return (hours >= first) & (hours < last)


def _hour_of(scenario: Scenario) -> Callable[[dt.date], float]:
    """Hours from the horizon start to a date (what pricing needs to place dated steps)."""
    return lambda day: hours_since(scenario.horizon.start, day)


def _pool_capacities(scenario: Scenario, line: Timeline) -> dict[str, np.ndarray]:
    """GPUs each pool can hold per hour: pricing limits (of the GPUs in place), max_gpus steps."""
    out = {}
    for pool in scenario.pools:
        limit = np.zeros(line.hours)
        for era in pool_eras(scenario, pool, line.hours):
            era_limit = pool_capacity_gpus(era.pool.pricing, pool.max_gpus,
                                           _in_term(era.pool.pricing, era.contract_start, line),
                                           _hour_of(scenario))  # fmt: skip
            limit = np.where(era.mask(line.hours), era_limit, limit)
        steps = [(s.from_date, min(s.max_gpus, pool.max_gpus)) for s in pool.max_gpus_schedule]
        out[pool.name] = np.minimum(limit, stepped(pool.max_gpus, steps, scenario.horizon.start, line.hours))
    return out


def _pool_inference_gpus(deployments: dict[str, DeploymentHours], pool: str, hours: int) -> np.ndarray:
    held = [d.billed * d.gpus_per_replica for d in deployments.values() if d.pool == pool]
    return sum(held, np.zeros(hours))


def _allocate(
    scenario: Scenario,
    deployments: dict[str, DeploymentHours],
    capacity: dict[str, np.ndarray],
    pools: list[str],
    training_gpus: dict[str, np.ndarray],
) -> None:
    """Fit the requested replicas of the deployments on ``pools`` into what the pool has left."""
    for pool in pools:
        members = [d for d in deployments.values() if d.pool == pool]
        if not members:
            continue
        left = capacity[pool] - training_gpus.get(pool, 0.0)
        fitted = fit_to_pool(
            {d.name: d.requested * d.gpus_per_replica for d in members},
            np.maximum(left, 0.0),
            {d.name: d.gpus_per_replica for d in members},
        )
        for d in members:
            d.billed = fitted[d.name]


# ---------------------------------------------------------------------- cost


def _pool_cost(
    scenario: Scenario, pool: Pool, line: Timeline, inference_gpus: np.ndarray,
    training_gpus: np.ndarray, busy_gpus: np.ndarray,
) -> PoolCost:  # fmt: skip
    """The pool's hourly cost: one pricing per GPU era (see :mod:`simulator.economics.refresh`)."""
    parts = []
    for era in pool_eras(scenario, pool, line.hours):
        mask = era.mask(line.hours)
        cost = _era_cost(scenario, era, line, inference_gpus * mask, training_gpus * mask, busy_gpus * mask)
        items = [replace(i, name=f"{i.name} ({era.pool.gpu})", price_key=i.price_key + era.suffix)
                 for i in cost.items] if era.step is not None else list(cost.items)  # fmt: skip
        written_off = write_off_item(era, cost.owned_gpus, line.hours, owned_in_place(cost))
        capital = era_capital(era, cost, line.hours)
        if written_off:  # book value less residual: an accrual charge, the sale is the cash
            items.append(replace(written_off, cash_unit_price_usd=0.0))
        parts.append(replace(cost, items=items, capital=capital))
    return PoolCost(
        items=[item for part in parts for item in part.items],
        gpus_billed=sum((part.gpus_billed for part in parts), np.zeros(line.hours)),
        energy_kwh=sum((part.energy_kwh for part in parts), np.zeros(line.hours)),
        owned_gpus=max(part.owned_gpus for part in parts),
        capital=[c for part in parts for c in part.capital],
    )


def _era_cost(
    scenario: Scenario, era: Era, line: Timeline, inference_gpus: np.ndarray,
    training_gpus: np.ndarray, busy_gpus: np.ndarray,
) -> PoolCost:  # fmt: skip
    """Cost of one era's pricing. Owned GPUs are paid only within the era; a reserved
    commitment from the era's start to its term's end (or to the era's end if the next era
    keeps the same terms, which then pays the rest)."""
    pricing = era.pool.pricing
    hours = np.arange(line.hours)
    in_force = _in_term(pricing, era.contract_start, line) & (hours >= era.first_hour)
    if era.pricing_continues or not isinstance(pricing, ReservedPricing):
        in_force &= hours < era.end_hour
    gpu = gpu_of(scenario, era.pool)
    hour_of = _hour_of(scenario)
    return pool_hourly_cost(
        pricing, gpu, inference_gpus, training_gpus, busy_gpus, in_force,
        price_segments(pricing, hour_of, line.hours), gpus_per_node(era.pool, gpu), hour_of,
    )  # fmt: skip


# ---------------------------------------------------------------------- serving


def _serve_routes(routes: list[RouteHours], deployments: dict[str, DeploymentHours]) -> None:
    """Load per replica, served/unserved requests, curve weights and busy GPUs per route."""
    for dep in deployments.values():
        members = [r for r in routes if r.deployment == dep.name]
        dep.busy_gpus = np.zeros_like(dep.billed)
        dep.power_gpus = np.zeros_like(dep.billed)
        if not members:
            continue
        decode_power = dep.decode_power_fraction
        equivalents = sum((r.replica_equivalents for r in members), np.zeros_like(dep.billed))
        states = _serving_states(dep)
        busy_per_replica = np.zeros_like(dep.billed)
        power_per_replica = np.zeros_like(dep.billed)
        for route in members:
            curve = route.curve
            served_share, route.point_weights = 0.0, 0.0
            for weight, serving in states:  # one state, or the replicas up after failures
                share_k, weights_k = _at_load(curve, divide(equivalents, serving, np.inf) * sizing_capacity(curve))
                served_share = served_share + weight * share_k
                route.point_weights = route.point_weights + weight[:, None] * weights_k
            offered = route.demand_rps * SECONDS_PER_HOUR
            route.unserved_too_long = offered * route.too_long_share  # refused whatever the capacity
            route.served_requests = (offered - route.unserved_too_long) * served_share
            route.unserved_requests = offered - route.served_requests
            route.busy_fraction = route.point_weights @ np.asarray(curve.busy_fraction, dtype=float)
            share = divide(route.replica_equivalents, equivalents)
            busy_per_replica += share * route.busy_fraction
            prefill = np.minimum(route.point_weights @ np.asarray(curve.prefill_busy_fraction, dtype=float),
                                 route.busy_fraction)  # fmt: skip
            power_per_replica += share * (prefill + decode_power * (route.busy_fraction - prefill))
            route.requests_preempted = _preempted_requests(route, dep)
            lost = _in_flight_lost(route, dep, dep.failures_per_hour)
            if dep.retry_failed:
                route.requests_retried_after_failure = lost
            else:  # they fail: arrived = served + failed + unserved
                route.failed_requests = np.minimum(lost, route.served_requests)
                route.served_requests = route.served_requests - route.failed_requests
        dep.busy_gpus = np.minimum(busy_per_replica, 1.0) * dep.serving * dep.gpus_per_replica
        dep.power_gpus = np.minimum(power_per_replica, 1.0) * dep.serving * dep.gpus_per_replica


def _serving_states(dep: DeploymentHours) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, replicas serving) states of a deployment each hour: the mean serving alone, or,
    where failures leave some replicas down often enough (:func:`reliability.up_states`), the
    binomial states of replicas up, with the same mean."""
    failure_down = dep.failure_down if len(dep.failure_down) else np.zeros_like(dep.billed)
    states = up_states(dep.billed, failure_down)
    if len(states) == 1:
        return [(states[0][0], dep.serving)]
    every_up = divide(dep.serving, 1 - failure_down)
    return [(weight, every_up * up) for weight, up in states]


def _at_load(curve: CurveLike, load: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At a load per replica (req/s; inf where no replica serves): the share of requests served
    (the curve's top rate / the load above it) and the weights on the curve's points."""
    top = float(curve.rates_per_replica[-1])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        served_share = np.where(load > top, top / load, 1.0)
    served_share = np.where(np.isfinite(load), served_share, 0.0)
    return served_share, point_weights(curve, np.where(np.isfinite(load), load, top))


def _preempted_requests(route: RouteHours, dep: DeploymentHours) -> np.ndarray:
    """Requests in flight on replicas lost to spot pre-emptions each hour (they are retried):
    pre-emptions x requests in flight per replica, by Little's law (this route's served rate
    per serving replica x its median end-to-end latency at the hour's load; a simplification)."""
    return _in_flight_lost(route, dep, dep.preemptions_per_hour)


def _in_flight_lost(route: RouteHours, dep: DeploymentHours, per_replica_hour: np.ndarray) -> np.ndarray:
    """Requests in flight on replicas lost at ``per_replica_hour`` (pre-emptions or failures)."""
    if not len(per_replica_hour) or not np.any(per_replica_hour):
        return np.zeros_like(route.served_requests)
    curve = route.curve
    levels = np.asarray(curve.quantile_levels, dtype=float)
    median_s = np.array([np.interp(0.5, levels, row) for row in np.asarray(curve.e2e_ms, dtype=float)]) / 1000
    # on the replica: less the round trip of a request served from another region
    e2e_s = np.maximum(route.point_weights @ median_s - route.network_rtt_ms / 1000, 0.0)
    in_flight = divide(route.served_requests / SECONDS_PER_HOUR, dep.serving) * e2e_s
    return per_replica_hour * dep.billed * in_flight


# ---------------------------------------------------------------------- retrieval


def _retrieval_hours(
    scenario: Scenario, routes: list[RouteHours], active: dict[str, np.ndarray], hours: int
) -> dict[str, StageHours]:
    """Calls and hours of each workload's pipeline stages, ``retrieval:`` first (see
    :mod:`simulator.economics.stages`).

    Calls before the model: the requests routed to a serving deployment (served, or unserved for
    lack of capacity) that reached the stage, times its ``applies_share``; response-cache hits
    and unrouted requests call no stage. After the model: the requests served that reached it,
    times its ``applies_share``. Hours: the share of each hour in which some deployment on the
    workload's routes serves.
    """
    out = {}
    for workload in scenario.workloads:
        stages = flows(workload)
        if not stages:
            continue
        members = [r for r in routes if r.workload == workload.name]
        # the routes carry what passed the before-model stages: what reached them is that / the pass share
        routed = sum((r.demand_rps for r in members), np.zeros(hours)) * SECONDS_PER_HOUR / model_share(workload)
        answered = sum((r.served_requests for r in members), np.zeros(hours))
        served = np.max([active[r.deployment] for r in workload.routes], axis=0)
        for flow in stages:
            calls = (routed if flow.stage.position == BEFORE_MODEL else answered) * flow.runs
            stage = StageHours(workload.name, flow.stage, calls, served, stage_line_items(flow.stage, calls, served))
            out[stage.pool] = stage
    return out


# ---------------------------------------------------------------------- cost attribution


def _attribute_inference_cost(
    routes: list[RouteHours],
    deployments: dict[str, DeploymentHours],
    pool_costs: dict[str, PoolCost],
    pool_inference_gpus: dict[str, np.ndarray],
) -> None:
    """Pool inference cost -> deployments by GPUs held -> workloads by GPU-time (replica-equivalents).

    A deployment with no demand in an hour (its minimum replicas) splits by route share.
    """
    for dep in deployments.values():
        members = [r for r in routes if r.deployment == dep.name]
        pool_gpus = pool_inference_gpus[dep.pool]
        dep_share = divide(dep.billed * dep.gpus_per_replica, pool_gpus)
        dep_cost = pool_costs[dep.pool].inference_usd * dep_share
        equivalents = sum((r.replica_equivalents for r in members), np.zeros_like(dep_cost))
        shares = [r.demand_rps.mean() for r in members]
        fallback = [s / sum(shares) if sum(shares) > 0 else 1 / len(members) for s in shares]
        for route, fb in zip(members, fallback, strict=True):
            route.deployment_share = divide(route.replica_equivalents, equivalents, fb)
            route.cost_usd = dep_cost * route.deployment_share


def _attribute_training_cost(
    scenario: Scenario, training, pool_costs: dict[str, PoolCost], train_gpus: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Pool training cost -> jobs by the GPUs each holds."""
    out = {}
    for job in scenario.training_jobs:
        held = training.gpus_held_by_job.get(job.name)
        pool_held = train_gpus[job.pool]
        if held is None:
            out[job.name] = np.zeros_like(pool_held)
            continue
        share = divide(held, pool_held)
        out[job.name] = pool_costs[job.pool].training_usd * share
    return out
