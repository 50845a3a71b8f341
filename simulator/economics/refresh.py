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
- Owned GPUs are bought at the start of their era (the horizon start for the first) and retired
  at its end: their remaining straight-line book value less ``residual_usd_per_gpu`` is written
  off on the refresh day, as idle cost (paid, used by no workload). A sale above book value is
  a gain (a negative write-off).
- A reserved commitment that a refresh with new pricing leaves behind is still paid, as idle,
  to the end of its term: commitments are paid whether used or not.

A pool without ``refresh`` has one era, the pool itself, and nothing here changes its results.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from simulator.economics.pricing import HOURS_PER_YEAR, LineItem
from simulator.scenario.schedule import hours_since
from simulator.scenario.schema import GpuRefresh, OwnedPricing, Pool, Scenario

WRITE_OFF_LINE = "refresh_write_off"
WRITE_OFF_KEY = "refresh_write_off_usd_per_gpu"


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


def book_value_usd_per_gpu(pricing: OwnedPricing, bought: dt.date, retired: dt.date) -> float:
    """Straight-line book value of one GPU bought on ``bought`` when it is retired."""
    years = hours_since(bought, retired) / HOURS_PER_YEAR
    return pricing.capex_usd_per_gpu * max(0.0, 1.0 - years / pricing.lifetime_years)


def write_off_item(era: Era, owned_gpus: int, hours: int) -> LineItem | None:
    """The one-off write-off of an owned era's GPUs at the refresh that ends it (else None).

    Quantity: GPUs retired (in the hour of the refresh); unit price: book value - residual.
    """
    pricing = era.pool.pricing
    if era.next_step is None or not isinstance(pricing, OwnedPricing) or era.end_hour >= hours:
        return None
    if not owned_gpus:
        return None
    price = book_value_usd_per_gpu(pricing, era.start, era.next_step.from_date) - era.next_step.residual_usd_per_gpu
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
