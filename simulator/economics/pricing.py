"""Pricing of GPU capacity: what one GPU-hour costs under each way of buying it.

The lifetime projection applies these hour by hour (reserved commitments paid whether used or
not, owned hardware amortised); here are the per-GPU-hour rates they rest on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from simulator.catalog import GpuSpec
from simulator.common.arrays import divide, window_max
from simulator.scenario.schema import (
    OnDemandPricing,
    OwnedPricing,
    Pool,
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
            adders = ownership_items(pricing, gpu, np.ones(1), np.zeros(1), _unsplit_item)
            per_gpu = sum(float(i.inference[0] * i.unit_price_usd) for i in adders if i.name != "staff_years")
            return (
                owned_capex_usd_per_gpu_hour(pricing) + owned_opex_usd_per_gpu_hour(pricing) + power + per_gpu
            )
    raise TypeError(f"unknown pricing {pricing!r}")


def _unsplit_item(name: str, key: str, price: float, used: np.ndarray, idle: np.ndarray, unit: str = "GPU-hour") -> LineItem:
    return LineItem(name, unit, key, price, used, np.zeros_like(used), idle)


# ---------------------------------------------------------------------- hour by hour

#: PUE assumed for cloud data centres when reporting energy (Google and AWS report fleet-wide
#: PUE of about 1.1-1.2; cloud prices already include power, so this only scales kWh figures).
DEFAULT_CLOUD_PUE = 1.2


def pool_capacity_gpus(
    pricing: Pricing, max_gpus: int, in_term: np.ndarray,
    hour_of: Callable[[dt.date], float] | None = None,
) -> np.ndarray:  # fmt: skip
    """GPUs the pool can hold each hour: max_gpus, or the commitment/ownership without overflow."""
    capacity = np.full(in_term.shape, float(max_gpus))
    if isinstance(pricing, ReservedPricing) and pricing.overflow == "none":
        capacity = np.where(in_term, min(max_gpus, pricing.committed_gpus), 0.0)
    if isinstance(pricing, OwnedPricing) and pricing.overflow == "none" and (pricing.gpus or pricing.purchases):
        bought = owned_gpus_in_place(pricing, np.zeros(in_term.shape), np.ones(in_term.shape, dtype=bool), 1, hour_of)
        capacity = np.minimum(float(max_gpus), bought)
    return capacity


@dataclass(frozen=True)
class LineItem:
    """One billed quantity of a pool with its unit price, split by who used it.

    Cost = quantity x unit price, exactly; the workbook rebuilds costs by formula from these.
    ``price_key`` names the pricing field (or derived rate) the price comes from.

    This is the accrual (amortised) view. ``cash_unit_price_usd`` is the part of the unit price
    paid in the hour it accrues (None: all of it): 0 for depreciation-like lines (network
    capex, cost of capital, write-offs), the operations overhead alone for owned GPU-hours,
    whose capex is paid when the GPUs are bought (:class:`CapitalLine`).
    """

    name: str  # e.g. "gpu_hours", "committed_gpu_hours", "overflow_gpu_hours", "energy_kwh"
    unit: str  # "GPU-hour" or "kWh"
    price_key: str
    unit_price_usd: float
    inference: np.ndarray
    training: np.ndarray
    idle: np.ndarray
    cash_unit_price_usd: float | None = None

    def cost(self, category: str) -> np.ndarray:
        return getattr(self, category) * self.unit_price_usd

    @property
    def cash_price_usd(self) -> float:
        """The part of the unit price paid as it accrues."""
        return self.unit_price_usd if self.cash_unit_price_usd is None else self.cash_unit_price_usd


@dataclass(frozen=True)
class CapitalLine:
    """A cash flow that is not a usage charge: owned GPUs (and their network) paid in the hour
    they are bought (``kind`` "purchase"), retired GPUs sold at their residual value ("sale",
    an inflow). Cash = quantity x unit price, negative for a sale.

    ``life_hours``: the depreciation life of what was bought; ``retired_hour``: the hour it was
    sold (None: still owned at the horizon's end, when it has book value left).
    """

    name: str
    kind: str  # "purchase" or "sale"
    unit: str
    price_key: str
    unit_price_usd: float
    quantity: np.ndarray  # hourly: GPUs bought or sold in that hour
    life_hours: float = 0.0
    retired_hour: int | None = None

    @property
    def cash_usd(self) -> np.ndarray:
        return self.quantity * self.unit_price_usd * (-1.0 if self.kind == "sale" else 1.0)

    def book_value_usd(self, hours: int) -> float:
        """Book value left at the end of ``hours`` (straight line; 0 once retired or sold)."""
        if self.kind != "purchase" or self.retired_hour is not None or self.life_hours <= 0:
            return 0.0
        age = hours - np.arange(len(self.quantity))
        return float((self.quantity * self.unit_price_usd * np.maximum(0.0, 1.0 - age / self.life_hours)).sum())


@dataclass(frozen=True)
class PoolCost:
    """Hourly cost of one pool as line items, plus GPUs billed and energy (arrays (hours,))."""

    items: list[LineItem]
    gpus_billed: np.ndarray
    energy_kwh: np.ndarray
    owned_gpus: int
    capital: list[CapitalLine] = field(default_factory=list)  # purchases and sales (cash view)

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


def spot_preemptions_per_replica_hour(pricing: SpotPricing, tensor_parallel: int) -> float:
    """Pre-emptions of one serving replica per hour: it is lost when any of its GPUs is."""
    return pricing.preemptions_per_gpu_day * tensor_parallel / 24


def spot_down_fraction(pricing: SpotPricing, tensor_parallel: int, weights_bytes: float) -> float:
    """Expected share of spot serving replicas down at any time, reloading after pre-emptions.

    A replica of ``tensor_parallel`` GPUs is lost when any of them is pre-empted (rate x GPUs);
    it is back after the startup and its weights shard load (each GPU loads its shard in
    parallel at ``reload_gb_per_s``). Share down = rate x reload time (capped at 0.5: beyond
    that, spot cannot carry the deployment). Pre-emptions are taken as independent.
    """
    reload_h = replica_reload_hours(pricing.startup_s, weights_bytes, tensor_parallel, pricing.reload_gb_per_s)
    return min(spot_preemptions_per_replica_hour(pricing, tensor_parallel) * reload_h, 0.5)


def replica_reload_hours(startup_s: float, weights_bytes: float, tensor_parallel: int, gb_per_s: float) -> float:
    """Hours until a lost replica serves again: the start, then each GPU loading its weights
    shard in parallel at ``gb_per_s`` (after a pre-emption or a failure)."""
    return (startup_s + weights_bytes / tensor_parallel / (gb_per_s * 1e9)) / 3600


def gpus_per_node(pool: Pool, gpu: GpuSpec) -> int:
    """The pool's node size: its own, else the catalog GPU's."""
    return pool.gpus_per_node or gpu.gpus_per_node


def whole_nodes(gpus: np.ndarray, gpus_per_node: int) -> np.ndarray:
    """GPUs rounded up to whole nodes (the unit capacity is rented and bought in); a millionth
    of a GPU over a boundary is rounding noise, the same for every node size (so a larger node
    never bills fewer GPUs)."""
    return np.maximum(np.ceil((np.asarray(gpus, dtype=float) - 1e-6) / gpus_per_node), 0.0) * gpus_per_node


def rented_gpus(held: np.ndarray, gpus_per_node: int, min_rental_hours: float = 1.0) -> np.ndarray:
    """GPUs paid for when renting whole nodes for at least ``min_rental_hours`` each.

    A simplification of a rental book: a node rented at hour t is paid through t + m - 1 and
    reused while it is; the nodes paid at hour h are the most needed in the last m hours.
    """
    return window_max(whole_nodes(held, gpus_per_node), max(min_rental_hours - 1.0, 0.0))


def owned_gpus_in_place(
    pricing: OwnedPricing, held: np.ndarray, in_term: np.ndarray, gpus_per_node: int,
    hour_of: Callable[[dt.date], float] | None = None,
) -> np.ndarray:  # fmt: skip
    """Owned GPUs in place each hour: ``gpus`` from day one, the ``purchases`` tranches from
    their dates, or by default bought ahead of each year's peak (whole nodes; never sold):
    year k of the horizon holds max(year k-1, the peak needed in year k)."""
    hours = len(held)
    if pricing.gpus is not None:
        owned = np.full(hours, float(pricing.gpus))
    elif pricing.purchases:
        index = np.arange(hours)
        owned = np.zeros(hours)
        for tranche in pricing.purchases:
            first = 0.0 if hour_of is None else hour_of(tranche.from_date)
            owned += np.where(index >= np.ceil(first - 1e-9), float(tranche.gpus), 0.0)
    else:
        year = round(HOURS_PER_YEAR)
        active = np.where(in_term, held, 0.0)
        peaks = [float(active[i : i + year].max()) if len(active[i : i + year]) else 0.0
                 for i in range(0, hours, year)]  # fmt: skip
        bought = np.maximum.accumulate(whole_nodes(np.array(peaks), gpus_per_node)) if peaks else np.zeros(0)
        owned = np.repeat(bought, year)[:hours] if hours else np.zeros(0)
    return np.where(in_term, owned, 0.0)


def pool_hourly_cost(
    pricing: Pricing,
    gpu: GpuSpec,
    inference_gpus: np.ndarray,
    training_gpus: np.ndarray,
    busy_gpus: np.ndarray,
    in_term: np.ndarray,
    segments: list[tuple[str, float, np.ndarray]] | None = None,
    gpus_per_node: int = 1,
    hour_of: Callable[[dt.date], float] | None = None,
) -> PoolCost:
    """Cost of each hour of a pool holding the given GPUs (hour-averaged counts).

    The GPUs held are shared between inference and training in proportion to what each holds;
    what is paid but held by nobody (unused commitment, idle owned GPUs, the rest of a node
    or of a minimum rental) is idle. ``in_term`` marks the hours the commitment is paid: a
    reserved term, the hours owned GPUs are in place. Capacity is rented and bought in whole
    nodes of ``gpus_per_node``.
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
    capital: list[CapitalLine] = []
    match pricing:
        case OnDemandPricing() | SpotPricing():
            minimum = pricing.min_rental_hours if isinstance(pricing, OnDemandPricing) else 1.0
            billed = np.maximum(rented_gpus(held, gpus_per_node, minimum), held)
            items = priced("gpu_hours", held, billed - held)
            energy = (held_kw + (billed - held) * idle_kw) * pue
        case ReservedPricing():
            committed = np.where(in_term, float(pricing.committed_gpus), 0.0)
            within = np.minimum(held, committed)
            over_price = overflow_usd_per_gpu_hour(pricing, gpu)
            over_held = held - within
            over_billed = np.maximum(whole_nodes(over_held, gpus_per_node), over_held)
            items = [
                *priced("committed_gpu_hours", within, committed - within),
                item("overflow_gpu_hours", "overflow_usd_per_gpu_hour",
                     pricing.usd_per_gpu_hour if over_price is None else over_price, over_held,
                     over_billed - over_held),
            ]  # fmt: skip
            billed = np.maximum(held, committed) + (over_billed - over_held)
            energy = (held_kw + (committed - within + over_billed - over_held) * idle_kw) * pue
        case OwnedPricing():
            owned_held = owned_gpus_in_place(pricing, held, in_term, gpus_per_node, hour_of)
            owned = int(np.ceil(owned_held.max() - 1e-9)) if len(owned_held) else 0
            within = np.minimum(held, owned_held)
            idle_owned = owned_held - within
            fixed = owned_capex_usd_per_gpu_hour(pricing) + owned_opex_usd_per_gpu_hour(pricing)
            over_price = overflow_usd_per_gpu_hour(pricing, gpu) or 0.0
            within_kwh = within * _power_kw_array(gpu, utilization) * pue
            opex_rate = owned_opex_usd_per_gpu_hour(pricing)
            items = [
                replace(item("owned_gpu_hours", "owned_usd_per_gpu_hour", fixed, within, idle_owned),
                        cash_unit_price_usd=opex_rate),
                item("energy_kwh", "power_usd_per_kwh", pricing.power_usd_per_kwh, within_kwh,
                     idle_owned * idle_kw * pue, unit="kWh"),
                item("overflow_gpu_hours", "overflow_usd_per_gpu_hour", over_price, held - within, zero),
                *ownership_items(pricing, gpu, within, idle_owned, item),
            ]  # fmt: skip
            billed = np.maximum(held, owned_held)
            capital = owned_purchases(pricing, owned_held)
            host_kw = host_power_w_per_gpu(pricing, gpu) / 1000
            energy = (held_kw + idle_owned * idle_kw + owned_held * host_kw) * pue
        case _:
            raise TypeError(f"unknown pricing {pricing!r}")
    return PoolCost(items=items, gpus_billed=billed, energy_kwh=energy, owned_gpus=owned, capital=capital)


HOURS_PER_MONTH = HOURS_PER_YEAR / 12

#: cluster network capex per GPU, as a share of the GPU capex, where the pricing gives none
DEFAULT_NETWORK_SHARE = 0.10


def host_power_w_per_gpu(pricing: OwnedPricing, gpu: GpuSpec) -> float:
    """Server power beyond the GPU: the pricing's, else the catalog GPU's."""
    return gpu.host_power_w_per_gpu if pricing.host_power_w_per_gpu is None else pricing.host_power_w_per_gpu


def network_capex_usd_per_gpu(pricing: OwnedPricing) -> float:
    """Cluster network per GPU: the pricing's, else 10% of the GPU capex."""
    if pricing.network_capex_usd_per_gpu is not None:
        return pricing.network_capex_usd_per_gpu
    return DEFAULT_NETWORK_SHARE * pricing.capex_usd_per_gpu


def network_usd_per_gpu_hour(pricing: OwnedPricing) -> float:
    """Cluster network depreciated over the GPU's life, per owned GPU-hour:
    network capex / (life x hours per year) (the workbook's formula, in its order)."""
    return network_capex_usd_per_gpu(pricing) / (pricing.lifetime_years * HOURS_PER_YEAR)


def support_usd_per_gpu_hour(pricing: OwnedPricing) -> float:
    """Hardware support, per owned GPU-hour: capex x support fraction / hours per year."""
    return pricing.capex_usd_per_gpu * pricing.support_fraction_per_year / HOURS_PER_YEAR


def capital_usd_per_gpu_hour(pricing: OwnedPricing) -> float:
    """Cost of capital on the average book value (half of capex + network), per owned GPU-hour:
    (capex + network capex) / 2 x rate / hours per year."""
    capital = pricing.capex_usd_per_gpu + network_capex_usd_per_gpu(pricing)
    return capital / 2 * pricing.cost_of_capital_per_year / HOURS_PER_YEAR


#: price keys of the owned lines priced per GPU-hour at a rate derived from the pricing's fields
NETWORK_KEY = "network_usd_per_gpu_hour"
SUPPORT_KEY = "support_usd_per_gpu_hour"
CAPITAL_KEY = "capital_usd_per_gpu_hour"


def ownership_items(
    pricing: OwnedPricing, gpu: GpuSpec, within: np.ndarray, idle: np.ndarray,
    item: Callable[..., LineItem],
) -> list[LineItem]:  # fmt: skip
    """Total cost of ownership beyond capex, GPU power and opex, one line item each:

    - host power: owned GPUs in place x host W x PUE, kWh at the electricity price;
    - colocation: kW of IT load (GPU TDP + host) in place, in kW-months;
    - network capex: owned GPU-hours at :func:`network_usd_per_gpu_hour` (network / life);
    - support: owned GPU-hours at :func:`support_usd_per_gpu_hour` (capex x yearly fraction);
    - cost of capital: owned GPU-hours at :func:`capital_usd_per_gpu_hour` (the rate on the
      average book value, (capex + network) / 2);
    - staff: the years the pool holds owned GPUs x $/year, split like the GPUs.

    Quantities are GPU-hours, kWh, kW-months or years, never money: every price linear in a
    pricing field is the field itself or a rate derived from the fields (so a workbook prices
    it by a formula of named cells). Every quantity splits into used (``within``) and idle
    (``idle``) like the owned GPU-hours. Network capex and the cost of capital are accrual
    charges only: the network is paid when the GPUs are bought (:func:`owned_purchases`), and
    the cost of capital is the return the money could earn elsewhere, paid to no one (a cash
    view discounts at a rate instead).
    """
    in_place = within + idle
    host_kwh_per_gpu_hour = host_power_w_per_gpu(pricing, gpu) / 1000 * pricing.pue
    kw_per_gpu = (gpu.tdp_w + host_power_w_per_gpu(pricing, gpu)) / 1000
    held_share = divide(within, in_place)
    years = np.where(in_place > 0, 1.0 / HOURS_PER_YEAR, 0.0)
    return [
        item("host_energy_kwh", "power_usd_per_kwh", pricing.power_usd_per_kwh,
             within * host_kwh_per_gpu_hour, idle * host_kwh_per_gpu_hour, unit="kWh"),
        item("colocation_kw_months", "colocation_usd_per_kw_month", pricing.colocation_usd_per_kw_month,
             within * kw_per_gpu / HOURS_PER_MONTH, idle * kw_per_gpu / HOURS_PER_MONTH, unit="kW-month"),
        replace(item("network_gpu_hours", NETWORK_KEY, network_usd_per_gpu_hour(pricing), within, idle),
                cash_unit_price_usd=0.0),
        item("support_gpu_hours", SUPPORT_KEY, support_usd_per_gpu_hour(pricing), within, idle),
        replace(item("capital_gpu_hours", CAPITAL_KEY, capital_usd_per_gpu_hour(pricing), within, idle),
                cash_unit_price_usd=0.0),
        item("staff_years", "staff_usd_per_year", pricing.staff_usd_per_year,
             years * held_share, years * (1 - held_share), unit="year"),
    ]  # fmt: skip


def owned_purchases(pricing: OwnedPricing, owned_in_place: np.ndarray) -> list[CapitalLine]:
    """Cash paid for owned GPUs and their network in the hours the GPUs arrive (each rise of
    the GPUs in place; GPUs are never sold within an era)."""
    bought = np.maximum(np.diff(owned_in_place, prepend=0.0), 0.0)
    life_hours = pricing.lifetime_years * HOURS_PER_YEAR
    return [
        CapitalLine("gpu_purchase", "purchase", "GPU", "capex_usd_per_gpu", pricing.capex_usd_per_gpu,
                    bought, life_hours),
        CapitalLine("network_purchase", "purchase", "GPU", "network_capex_usd_per_gpu",
                    network_capex_usd_per_gpu(pricing), bought, life_hours),
    ]  # fmt: skip


def _power_kw_array(gpu: GpuSpec, utilization: np.ndarray) -> np.ndarray:
    idle = gpu.idle_power_fraction
    return gpu.tdp_w / 1000 * (idle + (1 - idle) * utilization)
