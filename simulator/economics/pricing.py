"""Pricing of GPU capacity: what one GPU-hour costs under each way of buying it.

The lifetime projection applies these hour by hour (reserved commitments paid whether used or
not, owned hardware amortised); here are the per-GPU-hour rates they rest on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.catalog import GpuSpec
from simulator.common.arrays import divide
from simulator.scenario.schema import (
    OnDemandPricing,
    OwnedPricing,
    Pricing,
    ReservedPricing,
    SpotPricing,
)

HOURS_PER_YEAR = 365.25 * 24


def owned_capex_usd_per_gpu_hour(pricing: OwnedPricing) -> float:
    """Straight-line depreciation of one GPU over its lifetime, per hour."""
    return pricing.capex_usd_per_gpu / (pricing.lifetime_years * HOURS_PER_YEAR)


def owned_opex_usd_per_gpu_hour(pricing: OwnedPricing) -> float:
    """Operations overhead (a yearly fraction of capex), per hour."""
    return pricing.capex_usd_per_gpu * pricing.opex_fraction_per_year / HOURS_PER_YEAR


def power_kw(gpu: GpuSpec, utilization: float) -> float:
    """Electrical power of one GPU at a busy fraction, linear between idle and TDP (kW)."""
    return float(_power_kw_array(gpu, np.asarray(utilization, dtype=float)))


def overflow_usd_per_gpu_hour(pricing: ReservedPricing | OwnedPricing, gpu: GpuSpec) -> float | None:
    """Price of capacity beyond a commitment, or None when there is none to buy."""
    if pricing.overflow == "none":
        return None
    if pricing.overflow_usd_per_gpu_hour is not None:
        return pricing.overflow_usd_per_gpu_hour
    return gpu.usd_per_gpu_hour_on_demand


def full_load_usd_per_gpu_hour(pricing: Pricing, gpu: GpuSpec) -> float:
    """What one fully used GPU-hour costs (power at TDP for owned hardware)."""
    match pricing:
        case OnDemandPricing() | SpotPricing() | ReservedPricing():
            return pricing.usd_per_gpu_hour
        case OwnedPricing():
            power = power_kw(gpu, 1.0) * pricing.pue * pricing.power_usd_per_kwh
            return (
                owned_capex_usd_per_gpu_hour(pricing) + owned_opex_usd_per_gpu_hour(pricing) + power
            )
    raise TypeError(f"unknown pricing {pricing!r}")


# ---------------------------------------------------------------------- hour by hour

#: PUE assumed for cloud data centres when reporting energy (Google and AWS report fleet-wide
#: PUE of about 1.1-1.2; cloud prices already include power, so this only scales kWh figures).
DEFAULT_CLOUD_PUE = 1.2


def pool_capacity_gpus(pricing: Pricing, max_gpus: int, in_term: np.ndarray) -> np.ndarray:
    """GPUs the pool can hold each hour: max_gpus, or the commitment/ownership without overflow."""
    capacity = np.full(in_term.shape, float(max_gpus))
    if isinstance(pricing, ReservedPricing) and pricing.overflow == "none":
        capacity = np.where(in_term, min(max_gpus, pricing.committed_gpus), 0.0)
    if isinstance(pricing, OwnedPricing) and pricing.overflow == "none" and pricing.gpus:
        capacity[:] = min(max_gpus, pricing.gpus)
    return capacity


@dataclass(frozen=True)
class LineItem:
    """One billed quantity of a pool with its unit price, split by who used it.

    Cost = quantity x unit price, exactly; the workbook rebuilds costs by formula from these.
    ``price_key`` names the pricing field (or derived rate) the price comes from.
    """

    name: str  # e.g. "gpu_hours", "committed_gpu_hours", "overflow_gpu_hours", "energy_kwh"
    unit: str  # "GPU-hour" or "kWh"
    price_key: str
    unit_price_usd: float
    inference: np.ndarray
    training: np.ndarray
    idle: np.ndarray

    def cost(self, category: str) -> np.ndarray:
        return getattr(self, category) * self.unit_price_usd


@dataclass(frozen=True)
class PoolCost:
    """Hourly cost of one pool as line items, plus GPUs billed and energy (arrays (hours,))."""

    items: list[LineItem]
    gpus_billed: np.ndarray
    energy_kwh: np.ndarray
    owned_gpus: int

    def _sum(self, category: str) -> np.ndarray:
        return sum((item.cost(category) for item in self.items), np.zeros_like(self.gpus_billed))

    @property
    def inference_usd(self) -> np.ndarray:
        return self._sum("inference")

    @property
    def training_usd(self) -> np.ndarray:
        return self._sum("training")

    @property
    def idle_usd(self) -> np.ndarray:
        return self._sum("idle")

    @property
    def total_usd(self) -> np.ndarray:
        return self.inference_usd + self.training_usd + self.idle_usd


def price_segments(
    pricing: Pricing, hour_of: Callable[[dt.date], float], hours: int
) -> list[tuple[str, float, np.ndarray]]:
    """(key suffix, $/GPU-hour, hour mask) for each period of constant price of ``pricing``.

    Without a ``price_schedule`` there is one segment, suffix '' (so results are unchanged).
    """
    steps = getattr(pricing, "price_schedule", [])
    base = float(getattr(pricing, "usd_per_gpu_hour", 0.0))
    bounds = [0] + [min(max(int(np.ceil(hour_of(s.from_date))), 0), hours) for s in steps] + [hours]
    prices = [base] + [s.usd_per_gpu_hour for s in steps]
    suffixes = [""] + [f"_from_{s.from_date:%Y_%m_%d}" for s in steps]
    out = []
    for suffix, price, lo, hi in zip(suffixes, prices, bounds[:-1], bounds[1:], strict=True):
        mask = np.zeros(hours, dtype=bool)
        mask[lo:hi] = True
        out.append((suffix, price, mask))
    return out


def pool_hourly_cost(
    pricing: Pricing,
    gpu: GpuSpec,
    inference_gpus: np.ndarray,
    training_gpus: np.ndarray,
    busy_gpus: np.ndarray,
    in_term: np.ndarray,
    segments: list[tuple[str, float, np.ndarray]] | None = None,
) -> PoolCost:
    """Cost of each hour of a pool holding the given GPUs (hour-averaged counts).

    The GPUs held are shared between inference and training in proportion to what each holds;
    what is paid but held by nobody (unused commitment, idle owned GPUs) is idle. ``in_term``
    marks the hours the commitment is paid: a reserved term, the hours owned GPUs are in place.
    """
    held = inference_gpus + training_gpus
    zero = np.zeros_like(held)
    share_inf = divide(inference_gpus, held)
    utilization = np.minimum(divide(busy_gpus, held), 1.0)
    pue = pricing.pue if isinstance(pricing, OwnedPricing) else DEFAULT_CLOUD_PUE
    held_kw = held * _power_kw_array(gpu, utilization)
    idle_kw = power_kw(gpu, 0.0)

    def item(name: str, key: str, price: float, used: np.ndarray, idle: np.ndarray, unit: str = "GPU-hour") -> LineItem:
        return LineItem(name, unit, key, price, used * share_inf, used * (1 - share_inf), idle)

    if segments is None:
        segments = [("", float(getattr(pricing, "usd_per_gpu_hour", 0.0)), np.ones(len(held), dtype=bool))]

    def priced(name: str, used: np.ndarray, idle: np.ndarray) -> list[LineItem]:
        """One item per price segment (the scheduled steps of usd_per_gpu_hour)."""
        return [item(name + suffix.replace("_from_", " from ").replace("_", "-"), "usd_per_gpu_hour" + suffix,
                     price, used * mask, idle * mask)
                for suffix, price, mask in segments]  # fmt: skip

    owned = 0
    match pricing:
        case OnDemandPricing() | SpotPricing():
            items = priced("gpu_hours", held, zero)
            billed = held.copy()
            energy = held_kw * pue
        case ReservedPricing():
            committed = np.where(in_term, float(pricing.committed_gpus), 0.0)
            within = np.minimum(held, committed)
            over_price = overflow_usd_per_gpu_hour(pricing, gpu)
            items = [
                *priced("committed_gpu_hours", within, committed - within),
                item("overflow_gpu_hours", "overflow_usd_per_gpu_hour",
                     pricing.usd_per_gpu_hour if over_price is None else over_price, held - within, zero),
            ]  # fmt: skip
            billed = np.maximum(held, committed)
            energy = (held_kw + (committed - within) * idle_kw) * pue
        case OwnedPricing():
            peak = int(np.ceil(held.max() - 1e-9)) if len(held) else 0
            owned = pricing.gpus if pricing.gpus is not None else peak
            owned_held = np.where(in_term, float(owned), 0.0)
            within = np.minimum(held, owned_held)
            idle_owned = owned_held - within
            fixed = owned_capex_usd_per_gpu_hour(pricing) + owned_opex_usd_per_gpu_hour(pricing)
            over_price = overflow_usd_per_gpu_hour(pricing, gpu) or 0.0
            within_kwh = within * _power_kw_array(gpu, utilization) * pue
            items = [
                item("owned_gpu_hours", "owned_usd_per_gpu_hour", fixed, within, idle_owned),
                item("energy_kwh", "power_usd_per_kwh", pricing.power_usd_per_kwh, within_kwh,
                     idle_owned * idle_kw * pue, unit="kWh"),
                item("overflow_gpu_hours", "overflow_usd_per_gpu_hour", over_price, held - within, zero),
            ]  # fmt: skip
            billed = np.maximum(held, owned_held)
            energy = (held_kw + idle_owned * idle_kw) * pue
        case _:
            raise TypeError(f"unknown pricing {pricing!r}")
    return PoolCost(items=items, gpus_billed=billed, energy_kwh=energy, owned_gpus=owned)


def _power_kw_array(gpu: GpuSpec, utilization: np.ndarray) -> np.ndarray:
    idle = gpu.idle_power_fraction
    return gpu.tdp_w / 1000 * (idle + (1 - idle) * utilization)
