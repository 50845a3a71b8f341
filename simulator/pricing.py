"""Pricing of GPU capacity: what one GPU-hour costs under each way of buying it.

The lifetime projection applies these hour by hour (reserved commitments paid whether used or
not, owned hardware amortised); here are the per-GPU-hour rates they rest on.
"""

from __future__ import annotations

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
    idle = gpu.idle_power_fraction
    return gpu.tdp_w / 1000 * (idle + (1 - idle) * utilization)


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
