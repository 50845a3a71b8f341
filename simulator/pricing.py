"""Pricing of GPU capacity: what one GPU-hour costs under each way of buying it.

The lifetime projection applies these hour by hour (reserved commitments paid whether used or
not, owned hardware amortised); here are the per-GPU-hour rates they rest on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.catalog import GpuSpec
from simulator.scenario import OnDemandPricing, OwnedPricing, Pricing, ReservedPricing, SpotPricing

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
class PoolCost:
    """Hourly cost of one pool, split by who held the GPUs (arrays of shape (hours,))."""

    inference_usd: np.ndarray
    training_usd: np.ndarray
    idle_usd: np.ndarray
    gpus_billed: np.ndarray
    energy_kwh: np.ndarray
    owned_gpus: int

    @property
    def total_usd(self) -> np.ndarray:
        return self.inference_usd + self.training_usd + self.idle_usd


def pool_hourly_cost(
    pricing: Pricing,
    gpu: GpuSpec,
    inference_gpus: np.ndarray,
    training_gpus: np.ndarray,
    busy_gpus: np.ndarray,
    in_term: np.ndarray,
) -> PoolCost:
    """Cost of each hour of a pool holding the given GPUs (hour-averaged counts).

    The price of the GPUs held is shared between inference and training in proportion to what
    each holds; what is paid but held by nobody (unused commitment, idle owned GPUs) is idle.
    """
    held = inference_gpus + training_gpus
    with np.errstate(invalid="ignore", divide="ignore"):
        share_inf = np.where(held > 0, inference_gpus / np.where(held > 0, held, 1), 0.0)
        utilization = np.where(held > 0, np.minimum(busy_gpus / np.where(held > 0, held, 1), 1), 0.0)
    pue = pricing.pue if isinstance(pricing, OwnedPricing) else DEFAULT_CLOUD_PUE
    held_kw = held * _power_kw_array(gpu, utilization)
    owned = 0
    idle_usd = np.zeros_like(held)
    match pricing:
        case OnDemandPricing() | SpotPricing():
            used_usd = held * pricing.usd_per_gpu_hour
            billed = held.copy()
            energy = held_kw * pue
        case ReservedPricing():
            committed = np.where(in_term, float(pricing.committed_gpus), 0.0)
            over_price = overflow_usd_per_gpu_hour(pricing, gpu) or pricing.usd_per_gpu_hour
            within = np.minimum(held, committed)
            used_usd = within * pricing.usd_per_gpu_hour + (held - within) * over_price
            idle_usd = (committed - within) * pricing.usd_per_gpu_hour
            billed = np.maximum(held, committed)
            energy = (held_kw + (committed - within) * power_kw(gpu, 0.0)) * pue
        case OwnedPricing():
            peak = int(np.ceil(held.max() - 1e-9)) if len(held) else 0
            owned = pricing.gpus if pricing.gpus is not None else peak
            fixed_per_gpu = owned_capex_usd_per_gpu_hour(pricing) + owned_opex_usd_per_gpu_hour(pricing)
            over_price = overflow_usd_per_gpu_hour(pricing, gpu) or 0.0
            within = np.minimum(held, owned)
            idle_owned = owned - within
            # power of the owned GPUs that are held, at their utilisation
            held_power_usd = within * _power_kw_array(gpu, utilization) * pue * pricing.power_usd_per_kwh
            used_usd = within * fixed_per_gpu + held_power_usd + (held - within) * over_price
            idle_usd = idle_owned * (fixed_per_gpu + power_kw(gpu, 0.0) * pue * pricing.power_usd_per_kwh)
            billed = np.maximum(held, float(owned))
            energy = (held_kw + idle_owned * power_kw(gpu, 0.0)) * pue
        case _:
            raise TypeError(f"unknown pricing {pricing!r}")
    return PoolCost(
        inference_usd=used_usd * share_inf,
        training_usd=used_usd * (1 - share_inf),
        idle_usd=idle_usd,
        gpus_billed=billed,
        energy_kwh=energy,
        owned_gpus=owned,
    )


def _power_kw_array(gpu: GpuSpec, utilization: np.ndarray) -> np.ndarray:
    idle = gpu.idle_power_fraction
    return gpu.tdp_w / 1000 * (idle + (1 - idle) * utilization)
