"""Capacity bought as it really is: whole nodes, minimum rentals, yearly purchases, and the total
cost of ownership of owned GPUs, each line against a hand calculation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.catalog import bundled_catalog
from simulator.economics.pricing import (
    HOURS_PER_MONTH,
    HOURS_PER_YEAR,
    full_load_usd_per_gpu_hour,
    network_capex_usd_per_gpu,
    owned_gpus_in_place,
    pool_hourly_cost,
    rented_gpus,
)
from simulator.scenario.schema import OnDemandPricing, OwnedPricing

H100 = bundled_catalog().gpus["h100-sxm"]


def cost(pricing, held, node=1, busy=None, hour_of=None):
    held = np.asarray(held, dtype=float)
    return pool_hourly_cost(pricing, H100, held, np.zeros_like(held), held if busy is None else busy,
                            np.ones(len(held), dtype=bool), gpus_per_node=node, hour_of=hour_of)  # fmt: skip


def by_name(pool_cost):
    return {i.name: i for i in pool_cost.items}


def test_on_demand_rents_whole_nodes():
    c = cost(OnDemandPricing(kind="on_demand", usd_per_gpu_hour=3.0), [10.0, 10.0, 3.0], node=8)
    assert c.gpus_billed.tolist() == [16, 16, 8]
    assert c.inference_usd.tolist() == pytest.approx([30, 30, 9])
    assert c.idle_usd.tolist() == pytest.approx([18, 18, 15])  # the rest of the nodes: paid, unused


def test_a_minimum_rental_keeps_a_peak_paid_for_its_term():
    held = np.zeros(10)
    held[2] = 8.0
    assert rented_gpus(held, 8, 1).tolist() == held.tolist()
    assert rented_gpus(held, 8, 4).tolist() == [0, 0, 8, 8, 8, 8, 0, 0, 0, 0]
    monthly = cost(OnDemandPricing(kind="on_demand", usd_per_gpu_hour=2.0, min_rental_hours=4), held, node=8)
    assert monthly.total_usd.sum() == pytest.approx(8 * 4 * 2.0)
    assert monthly.idle_usd.sum() == pytest.approx(8 * 3 * 2.0)


def test_owned_gpus_are_bought_ahead_of_each_years_peak_and_never_sold():
    hours = round(HOURS_PER_YEAR) * 3
    held = np.full(hours, 10.0)
    held[: hours // 3] = 3.0  # year 1 peak 3, year 2 peak 10, year 3 dips to 2
    held[2 * hours // 3 :] = 2.0
    pricing = OwnedPricing(kind="owned", capex_usd_per_gpu=30000, lifetime_years=5)
    owned = owned_gpus_in_place(pricing, held, np.ones(hours, dtype=bool), 8)
    year = hours // 3
    assert (owned[:year] == 8).all() and (owned[year : 2 * year] == 16).all() and (owned[2 * year :] == 16).all()


def test_purchases_in_tranches_from_their_dates():
    start = dt.date(2027, 1, 1)
    pricing = OwnedPricing(kind="owned", capex_usd_per_gpu=30000, lifetime_years=5,
                           purchases=[{"from": "2027-01-01", "gpus": 8}, {"from": "2027-01-03", "gpus": 16}])  # fmt: skip
    owned = owned_gpus_in_place(pricing, np.zeros(96), np.ones(96, dtype=bool), 8,
                                lambda d: (d - start).days * 24.0)  # fmt: skip
    assert owned[:48].tolist() == [8] * 48 and owned[48:].tolist() == [24] * 48


def test_each_ownership_line_against_a_hand_calculation():
    pricing = OwnedPricing(kind="owned", capex_usd_per_gpu=30000, lifetime_years=4, gpus=8,
                           power_usd_per_kwh=0.10, pue=1.3, host_power_w_per_gpu=500,
                           colocation_usd_per_kw_month=150, network_capex_usd_per_gpu=3000,
                           support_fraction_per_year=0.05, staff_usd_per_year=87660,
                           cost_of_capital_per_year=0.08)  # fmt: skip
    hours = 100
    c = by_name(cost(pricing, np.full(hours, 6.0)))  # 6 of 8 owned GPUs held, fully busy

    def total(name):
        item = c[name]
        return float((item.inference + item.training + item.idle).sum() * item.unit_price_usd)

    gpu_hours = 8 * hours
    assert total("host_energy_kwh") == pytest.approx(gpu_hours * 0.5 * 1.3 * 0.10)
    assert total("colocation_kw_months") == pytest.approx(gpu_hours * (0.7 + 0.5) / HOURS_PER_MONTH * 150)
    assert total("network_gpu_hours") == pytest.approx(gpu_hours / (4 * HOURS_PER_YEAR) * 3000)
    assert total("support_gpu_hours") == pytest.approx(gpu_hours * 30000 / HOURS_PER_YEAR * 0.05)
    assert total("capital_gpu_hours") == pytest.approx(gpu_hours * 33000 / 2 / HOURS_PER_YEAR * 0.08)
    # GPU-hour lines at a derived $/GPU-hour rate: the quantity holds no price (capex, network)
    for name, key, rate in (("network_gpu_hours", "network_usd_per_gpu_hour", 3000 / (4 * HOURS_PER_YEAR)),
                            ("support_gpu_hours", "support_usd_per_gpu_hour", 30000 * 0.05 / HOURS_PER_YEAR),
                            ("capital_gpu_hours", "capital_usd_per_gpu_hour", 33000 / 2 * 0.08 / HOURS_PER_YEAR)):
        item = c[name]
        assert (item.unit, item.price_key) == ("GPU-hour", key)
        assert item.unit_price_usd == pytest.approx(rate, rel=1e-15)
        assert float((item.inference + item.training).sum()) == pytest.approx(6 * hours)
        assert float(item.idle.sum()) == pytest.approx(2 * hours)
    # accrual only: the network is paid with the GPUs, the cost of capital to no one
    assert (c["network_gpu_hours"].cash_price_usd, c["capital_gpu_hours"].cash_price_usd) == (0.0, 0.0)
    assert c["support_gpu_hours"].cash_unit_price_usd is None  # paid as incurred
    assert total("staff_years") == pytest.approx(hours / HOURS_PER_YEAR * 87660)
    # the 2 unheld GPUs' share of each line is idle
    assert float(c["colocation_kw_months"].idle.sum()) == pytest.approx(
        2 * hours * 1.2 / HOURS_PER_MONTH)


@pytest.mark.parametrize("network", [None, 4200.0])
def test_gpu_hour_lines_cost_what_the_former_money_quantities_did(network):
    """The network, support and cost-of-capital lines were quantities holding the capex (GPU-lives,
    capex-years, book value-years) at the scenario field; as GPU-hours at the derived rate they cost
    the same, hour by hour, to rounding; so does a fully used GPU-hour (the replica cost)."""
    pricing = OwnedPricing(kind="owned", capex_usd_per_gpu=31000, lifetime_years=4.5, gpus=8,
                           opex_fraction_per_year=0.03, network_capex_usd_per_gpu=network,
                           support_fraction_per_year=0.07, cost_of_capital_per_year=0.09)  # fmt: skip
    held = np.linspace(0.0, 8.0, 50)
    c = by_name(cost(pricing, held))
    in_place = np.full(50, 8.0)
    net = network_capex_usd_per_gpu(pricing)
    assert net == (4200.0 if network else 3100.0)
    former = {
        "network_gpu_hours": in_place / (4.5 * HOURS_PER_YEAR) * net,
        "support_gpu_hours": in_place * 31000 / HOURS_PER_YEAR * 0.07,
        "capital_gpu_hours": in_place * (31000 + net) / 2 / HOURS_PER_YEAR * 0.09,
    }
    for name, hourly in former.items():
        item = c[name]
        now = sum(item.cost(k) for k in ("inference", "training", "idle"))
        np.testing.assert_allclose(now, hourly, rtol=1e-14)
    gpu = H100
    power = gpu.tdp_w / 1000 * pricing.pue * pricing.power_usd_per_kwh
    host = 1 * gpu.host_power_w_per_gpu / 1000 * pricing.pue * pricing.power_usd_per_kwh
    colocation = (gpu.tdp_w + gpu.host_power_w_per_gpu) / 1000 / HOURS_PER_MONTH * 150
    by_hand = (31000 / (4.5 * HOURS_PER_YEAR) + 31000 * 0.03 / HOURS_PER_YEAR + power + host + colocation
               + net / (4.5 * HOURS_PER_YEAR) + 31000 * 0.07 / HOURS_PER_YEAR + (31000 + net) / 2 * 0.09 / HOURS_PER_YEAR)
    assert full_load_usd_per_gpu_hour(pricing, gpu) == pytest.approx(by_hand, rel=1e-14)


def test_defaults_are_documented_and_not_zero():
    p = OwnedPricing(kind="owned", capex_usd_per_gpu=30000, lifetime_years=4)
    assert (p.colocation_usd_per_kw_month, p.support_fraction_per_year, p.cost_of_capital_per_year) == (150, 0.05, 0.08)
    c = by_name(cost(p.model_copy(update={"gpus": 8}), np.full(10, 8.0)))
    assert network_capex_usd_per_gpu(p) == 3000  # 10% of the capex
    assert c["network_gpu_hours"].unit_price_usd == 3000 / (4 * HOURS_PER_YEAR)
    assert c["host_energy_kwh"].inference.sum() == pytest.approx(8 * 10 * 0.575 * 1.3)  # DGX H100 host share


@settings(max_examples=40, deadline=None)
@given(
    held=st.lists(st.floats(0, 40), min_size=1, max_size=48),
    node=st.sampled_from([1, 2, 4, 8]),
    bigger_node=st.sampled_from([1, 2, 4, 8]),
    rental=st.floats(1, 30),
    more_rental=st.floats(0, 30),
    adder=st.sampled_from(["host_power_w_per_gpu", "colocation_usd_per_kw_month", "network_capex_usd_per_gpu",
                           "support_fraction_per_year", "staff_usd_per_year", "cost_of_capital_per_year"]),
    raise_by=st.floats(0.0, 1000.0),
)  # fmt: skip
def test_total_cost_never_falls_when_an_adder_the_node_or_the_rental_rises(
    held, node, bigger_node, rental, more_rental, adder, raise_by
):
    held = np.array(held)
    wide = node * bigger_node  # a node size that is a multiple (node boundaries nest)
    on_demand = OnDemandPricing(kind="on_demand", usd_per_gpu_hour=2.0, min_rental_hours=rental)
    longer = on_demand.model_copy(update={"min_rental_hours": rental + more_rental})
    base = cost(on_demand, held, node).total_usd.sum()
    assert cost(on_demand, held, wide).total_usd.sum() >= base - 1e-6
    assert cost(longer, held, node).total_usd.sum() >= base - 1e-6
    owned = OwnedPricing(kind="owned", capex_usd_per_gpu=30000, lifetime_years=4, host_power_w_per_gpu=500,
                         network_capex_usd_per_gpu=3000)  # fmt: skip
    raised = owned.model_copy(update={adder: getattr(owned, adder) + raise_by})
    assert cost(raised, held, node).total_usd.sum() >= cost(owned, held, node).total_usd.sum() - 1e-6
