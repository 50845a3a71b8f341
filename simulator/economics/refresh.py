"""Hardware refresh: a pool changing GPU type on a date, split into eras of one GPU each.

A pool's ``refresh`` steps cut the horizon into **eras**; in each the pool is a plain pool of
one GPU type, pricing and calibration (:func:`pool_at`), so every engine runs unchanged on
:func:`scenario_at` the era's start. The rules the projection applies across a refresh:

- Capacity, latency curves, power and training speed follow the GPU in place each hour (a
  training run keeps the GPU it started on).
- Pricing: a step with its own ``pricing`` starts a new contract on the refresh day (a new
  reserved term starts then unless it names its ``start``). A step without one keeps the terms:
  a reserved commitment carries over to the new GPUs, an owned pool buys new GPUs at the same
  capex.
- Owned GPUs are bought as their era's pricing says (``gpus`` at its start, the horizon start for
  the first; ``purchases`` on their dates; by default ahead of each year's peak) and retired at
  its end: their straight-line book value at the GPUs' mean age less ``residual_usd_per_gpu``
  is written off on the refresh day, as idle cost (paid, used by no workload). A sale above
  book value is a gain (a negative write-off).
- A reserved commitment that a refresh with new pricing leaves behind is still paid, as idle,
  to the end of its term: commitments are paid whether used or not.

A pool without ``refresh`` has one era, the pool itself, and nothing here changes its results.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from simulator.economics.pricing import (
    HOURS_PER_YEAR,
    LineItem,
    PoolCost,
    network_capex_usd_per_gpu,
)
from simulator.scenario.schedule import hours_since
from simulator.scenario.schema import GpuRefresh, OwnedPricing, Pool, Scenario

WRITE_OFF_LINE = "refresh_write_off"
WRITE_OFF_KEY = "refresh_write_off_usd_per_gpu"
OWNED_RATE_KEY = "owned_usd_per_gpu_hour"  # price key of the owned GPU-hours line


@dataclass(frozen=True)
class Era:
    """One stretch of a pool on one GPU type: hours [first_hour, end_hour) of the horizon."""

    index: int
    pool: Pool  # the pool as it is in this era: gpu, pricing, calibration; no refresh steps
    start: dt.date  # the era's first day (the horizon start for the first era)
    first_hour: int
    end_hour: int
    contract_start: dt.date  # when its pricing took effect (earlier, if carried over)
    step: GpuRefresh | None  # the refresh that began it (None: the first era)
    next_step: GpuRefresh | None  # the refresh that ends it
    pricing_continues: bool  # the next era keeps these pricing terms

    @property
    def suffix(self) -> str:
        """Suffix of this era's price keys ('' for the first, so unrefreshed keys are unchanged)."""
        return "" if self.step is None else f"_{self.pool.gpu}_from_{self.start:%Y_%m_%d}"

    def mask(self, hours: int) -> np.ndarray:
        out = np.zeros(hours, dtype=bool)
        out[self.first_hour : self.end_hour] = True
        return out


def pool_at(pool: Pool, day: dt.date) -> Pool:
    """The pool as in force on ``day``: GPU, pricing and calibration of the last refresh by then."""
    current = pool.model_copy(update={"refresh": []})
    for step in pool.refresh:
        if step.from_date > day:
            break
        current = current.model_copy(update={
            "gpu": step.gpu,
            "pricing": step.pricing if step.pricing is not None else current.pricing,
            "calibration": step.calibration,
        })  # fmt: skip
    return current if pool.refresh else pool


def scenario_at(scenario: Scenario, day: dt.date) -> Scenario:
    """The scenario with every pool as in force on ``day`` (itself when no pool refreshes)."""
    if not any(p.refresh for p in scenario.pools):
        return scenario
    return scenario.model_copy(update={"pools": [pool_at(p, day) for p in scenario.pools]})


def gpus_between(pool: Pool, first: dt.date, end: dt.date) -> list[str]:
    """The GPU types the pool has at some time in [first, end), in order."""
    names = [pool_at(pool, first).gpu] + [s.gpu for s in pool.refresh if first < s.from_date < end]
    return list(dict.fromkeys(names))


def _hour_of(start: dt.date, day: dt.date, hours: int) -> int:
    return min(max(int(np.ceil(hours_since(start, day))), 0), hours)


def pool_eras(scenario: Scenario, pool: Pool, hours: int) -> list[Era]:
    """The eras of ``pool`` over ``hours`` hours from the horizon start (one when no refresh)."""
    start = scenario.horizon.start
    steps: list[GpuRefresh | None] = [None, *pool.refresh]
    days = [start] + [s.from_date for s in pool.refresh]
    bounds = [0] + [_hour_of(start, d, hours) for d in days[1:]] + [hours]
    out: list[Era] = []
    contract_start = start
    for i, step in enumerate(steps):
        if step is not None and step.pricing is not None:
            contract_start = step.from_date
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        out.append(Era(
            index=i, pool=pool_at(pool, days[i]), start=days[i], first_hour=bounds[i],
            end_hour=max(bounds[i + 1], bounds[i]), contract_start=contract_start, step=step,
            next_step=nxt, pricing_continues=nxt is not None and nxt.pricing is None,
        ))  # fmt: skip
    return out


def era_of_hour(eras: list[Era], hour: float) -> Era:
    """The era in force at ``hour`` (hours since the horizon start)."""
    for era in reversed(eras):
        if hour >= era.first_hour:
            return era
    return eras[0]


def book_value_usd_per_gpu(pricing: OwnedPricing, age_years: float) -> float:
    """Straight-line book value of one GPU ``age_years`` old, with its share of the cluster
    network (depreciated with it and retired with it): (capex + network) x max(0, 1 - age / life).

    Applied at the retired GPUs' mean age (:func:`retired_age_years`) it is their mean book value,
    exactly unless some cohorts are past the end of their life and others not (then it is lower).
    The workbook's write-off cells compute the same expression.
    """
    capital = pricing.capex_usd_per_gpu + network_capex_usd_per_gpu(pricing)
    return capital * max(0.0, 1.0 - age_years / pricing.lifetime_years)


def retired_age_years(era: Era, in_place: np.ndarray | None = None) -> float | None:
    """GPU-weighted mean age, in years, of the owned GPUs the refresh ending ``era`` retires.

    ``gpus`` are bought at the era's start; ``purchases`` tranches on their dates (at the era's
    start if dated earlier; those dated on or after the refresh are not this era's). Purchases
    made by default (ahead of each year's peak) depend on demand: their ages come from
    ``in_place``, the era's owned GPUs in place each hour from the horizon start (see
    :func:`owned_in_place`). None when the era retires no owned GPUs, or without ``in_place``
    for default purchases.
    """
    pricing = era.pool.pricing
    if era.next_step is None or not isinstance(pricing, OwnedPricing):
        return None
    retired = era.next_step.from_date
    if pricing.gpus is not None:
        return hours_since(era.start, retired) / HOURS_PER_YEAR
    if pricing.purchases:
        cohorts = [(t.gpus, max(t.from_date, era.start))
                   for t in pricing.purchases if t.from_date < retired]  # fmt: skip
        gpus = sum(n for n, _ in cohorts)
        if not gpus:
            return None
        mean_hours = sum(n * hours_since(bought, retired) for n, bought in cohorts) / gpus
        return mean_hours / HOURS_PER_YEAR
    if in_place is None:
        return None
    owned = np.asarray(in_place[: era.end_hour], dtype=float)
    arrived = np.maximum(np.diff(owned, prepend=0.0), 0.0)  # never sold: in place only grows
    if not arrived.sum():
        return None
    ages_h = era.end_hour - np.arange(len(owned))  # the GPUs arriving in hour h are end - h old
    return float(arrived @ ages_h / arrived.sum()) / HOURS_PER_YEAR


def owned_in_place(cost: PoolCost) -> np.ndarray:
    """Owned GPUs in place each hour of one era's cost (its owned GPU-hours, used and idle;
    zeros when the era owns none), in whole GPUs: what :func:`write_off_item` dates them by."""
    rate = [i for i in cost.items if i.price_key == OWNED_RATE_KEY]
    if not rate:
        return np.zeros_like(cost.gpus_billed)
    return np.round(rate[0].inference + rate[0].training + rate[0].idle, 6)


def write_off_item(
    era: Era, owned_gpus: int, hours: int, in_place: np.ndarray | None = None
) -> LineItem | None:
    """The one-off write-off of an owned era's GPUs at the refresh that ends it (else None).

    Quantity: GPUs retired (in the hour of the refresh); unit price: book value at their mean
    age (:func:`retired_age_years`) - residual. ``in_place`` (the era's owned GPUs per hour,
    :func:`owned_in_place`) dates purchases made by default; without it those GPUs are taken
    as bought at the era's start (their oldest possible age).
    """
    pricing = era.pool.pricing
    if era.next_step is None or not isinstance(pricing, OwnedPricing) or era.end_hour >= hours:
        return None
    if not owned_gpus:
        return None
    age = retired_age_years(era, in_place)
    if age is None:
        age = hours_since(era.start, era.next_step.from_date) / HOURS_PER_YEAR
    price = book_value_usd_per_gpu(pricing, age) - era.next_step.residual_usd_per_gpu
    quantity = np.zeros(hours)
    quantity[era.end_hour] = float(owned_gpus)
    zero = np.zeros(hours)
    return LineItem(write_off_line_name(era), "GPU", write_off_key(era), price, zero, zero, quantity)


def write_off_key(era: Era) -> str:
    """Price key of the write-off per GPU at the refresh ending ``era`` (which must have one)."""
    assert era.next_step is not None
    return f"{WRITE_OFF_KEY}_{era.pool.gpu}_{era.next_step.from_date:%Y_%m_%d}"


def write_off_line_name(era: Era) -> str:
    """Billing line of the write-off at the refresh ending ``era`` (which must have one), e.g.
    'refresh_write_off h100-sxm 2028-06-01'."""
    assert era.next_step is not None
    return f"{WRITE_OFF_LINE} {era.pool.gpu} {era.next_step.from_date:%Y-%m-%d}"
