"""Hardware refresh in place: a pool changes GPU type on a date.

Nothing changes before the date (hypothesis over it); after it capacity, power, prices and
training speed follow the new GPU; owned GPUs' remaining book value (GPU and its share of the
cluster network) less the residual is written off on the day, so amortised capex + network +
write-off = GPUs x (capex + network - residual); reserved commitments are paid to the end of
their term or carried over; bad refresh steps are clean errors.
"""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.common.errors import ScenarioError
from simulator.economics.pricing import HOURS_PER_YEAR
from simulator.economics.refresh import WRITE_OFF_LINE, pool_at, scenario_at
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.resolve import gpu_of
from tests.conftest import minimal_scenario_dict
from tests.synthetic import MM1Curve

OWNED = {"kind": "owned", "capex_usd_per_gpu": 30000.0, "lifetime_years": 4.0, "gpus": 40}
NETWORK = 0.1 * 30000.0  # the default network capex per GPU: 10% of the capex


def bandwidth_provider(scenario, deployment, workload):
    """M/M/1 curves whose service rate is the pool's HBM bandwidth (TB/s): a faster GPU serves more."""
    pool = scenario.pool(scenario.deployment(deployment).pool)
    rate = gpu_of(scenario, pool).hbm_tb_per_s
    return MM1Curve(service_rate=rate, slo_ms=3000, deployment=deployment, workload=workload)


def scenario_data(pricing=None, refresh=None, months=4) -> dict:
    data = minimal_scenario_dict()
    data["horizon"]["months"] = months
    data["pools"][0]["max_gpus"] = 128
    data["pools"][0]["pricing"] = copy.deepcopy(pricing or OWNED)
    data["workloads"][0]["traffic"]["requests_per_second"] = 30
    data["deployments"][0]["autoscaling"]["max_replicas"] = 64
    data["training_jobs"][0].update(failures_per_gpu_day=0.0, start="2027-03-05", tokens=5e10, mfu=0.4)
    if refresh is not None:
        data["pools"][0]["refresh"] = refresh
    return data


def b200_step(day, **extra) -> list[dict]:
    return [{"from": str(day), "gpu": "b200", **extra}]


def simulate(data):
    return run(validate_scenario_data(data), curve_provider=bandwidth_provider)


def hourly_before(result, day: dt.date) -> pd.DataFrame:
    h = result.hourly
    return h[h["time"] < pd.Timestamp(day)].reset_index(drop=True)


def billed(result, prefix: str) -> pd.DataFrame:
    b = result.billing
    return b[b["line_item"].str.startswith(prefix) & (b["quantity"] != 0)]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offset_days=st.integers(1, 110))
def test_refresh_at_d_changes_nothing_before_d(offset_days):
    day = dt.date(2027, 1, 1) + dt.timedelta(days=offset_days)
    plain = simulate(scenario_data())
    step = b200_step(day, residual_usd_per_gpu=5000,
                     pricing={"kind": "owned", "capex_usd_per_gpu": 45000.0, "lifetime_years": 4.0, "gpus": 24})  # fmt: skip
    refreshed = simulate(scenario_data(refresh=step))
    pd.testing.assert_frame_equal(hourly_before(plain, day), hourly_before(refreshed, day))
    d_plain, d_new = plain.deployments_hourly, refreshed.deployments_hourly
    before = d_plain["time"] < pd.Timestamp(day)
    pd.testing.assert_frame_equal(d_plain[before], d_new[before])
    after = ~before
    # B200's 8 TB/s serve the same load with fewer replicas than H100's 3.35 TB/s
    assert d_new.loc[after, "replicas_held"].sum() < d_plain.loc[after, "replicas_held"].sum()
    s = refreshed.summary
    assert s["training_cost_usd"] + s["inference_cost_usd"] + s["idle_cost_usd"] == pytest.approx(
        s["total_cost_usd"], abs=1e-6
    )
    monthly_total = refreshed.monthly["cost_usd"].sum()
    assert monthly_total == pytest.approx(s["total_cost_usd"], abs=1e-6)


def test_refresh_after_the_horizon_changes_nothing():
    plain = simulate(scenario_data())
    late = simulate(scenario_data(refresh=b200_step("2028-01-01")))
    pd.testing.assert_frame_equal(plain.hourly, late.hourly)
    assert plain.summary["total_cost_usd"] == pytest.approx(late.summary["total_cost_usd"], rel=1e-12)
    assert billed(late, WRITE_OFF_LINE).empty


def test_owned_capex_plus_write_off_is_purchase_less_residual():
    """Straight-line: capex and the GPUs' share of the network amortised over the old era + book
    value of both left - residual = GPUs x (capex + network - residual), to the cent (the cash
    view: capex + network paid, residual received); the write-off lands on the refresh day, as idle."""
    day = dt.date(2027, 3, 1)
    residual = 7000.0
    result = simulate(scenario_data(refresh=b200_step(day, residual_usd_per_gpu=residual)))
    b = result.billing
    h100 = b[(b["line_item"] == "owned_gpu_hours")]
    network = b[(b["line_item"] == "network_gpu_hours")]
    assert network["quantity"].sum() == h100["quantity"].sum() == 40 * (day - dt.date(2027, 1, 1)).days * 24
    assert network["cost_usd"].sum() == pytest.approx(
        h100["quantity"].sum() * NETWORK / (4.0 * HOURS_PER_YEAR), abs=1e-6)  # fmt: skip
    amortised = h100["cost_usd"].sum() + network["cost_usd"].sum()
    write_off = billed(result, WRITE_OFF_LINE)
    assert set(write_off["category"]) == {"idle"}
    assert write_off["month"].tolist() == ["2027-03"]
    assert write_off["quantity"].sum() == 40
    assert amortised + write_off["cost_usd"].sum() == pytest.approx(40 * (30000 + NETWORK - residual), abs=0.01)
    years = (day - dt.date(2027, 1, 1)).days * 24 / HOURS_PER_YEAR
    book = (30000 + NETWORK) * (1 - years / 4.0)  # 33,000 x (1 - 1,416 h / (4 x 8,766 h))
    assert write_off["unit_price_usd"].iloc[0] == pytest.approx(book - residual)
    # the B200 era inherits the owned terms: 40 new GPUs at the same capex, billed from the day
    b200 = b[b["line_item"] == "owned_gpu_hours (b200)"]
    hours_after = (dt.date(2027, 5, 1) - day).days * 24
    assert b200["quantity"].sum() == pytest.approx(40 * hours_after)
    pool = result.summary["pools"]["gpus"]
    assert [e["gpu"] for e in pool["refresh"]] == ["h100-sxm", "b200"]
    assert pool["refresh"][0]["write_off_usd"] == pytest.approx(write_off["cost_usd"].sum())
    keys = ["month", "pool", "entity_kind", "entity", "category"]
    assert not result.monthly.duplicated(keys).any()  # one row per workload, across GPU eras
    idle = result.monthly[result.monthly["entity"] == "(refresh write-off gpus)"]
    assert idle["cost_usd"].sum() == pytest.approx(write_off["cost_usd"].sum())


def test_sale_above_book_value_is_a_gain():
    """Book value on 1 March: (30,000 + 3,000 network) x (1 - 1,416 h / (4 x 8,766 h)) = $31,667.35
    a GPU; sold at $32,000 the write-off is a gain of $332.65 a GPU."""
    residual = 32000.0
    result = simulate(scenario_data(refresh=b200_step("2027-03-01", residual_usd_per_gpu=residual)))
    book = (30000 + NETWORK) * (1 - 59 * 24 / (4.0 * HOURS_PER_YEAR))
    assert book < residual
    assert billed(result, WRITE_OFF_LINE)["cost_usd"].sum() == pytest.approx(40 * (book - residual), abs=0.01)
    assert billed(result, WRITE_OFF_LINE)["cost_usd"].sum() < 0


def test_energy_and_on_demand_price_follow_the_gpu():
    on_demand = {"kind": "on_demand", "usd_per_gpu_hour": 3.0}
    new_price = {"kind": "on_demand", "usd_per_gpu_hour": 5.0}
    day = dt.date(2027, 3, 1)
    result = simulate(scenario_data(pricing=on_demand, refresh=b200_step(day, pricing=new_price)))
    b = result.billing
    after = b[b["line_item"] == "gpu_hours (b200)"]
    assert set(after["unit_price_usd"]) == {5.0}
    assert set(after.loc[after["quantity"] != 0, "month"]) == {"2027-03", "2027-04"}
    before = b[(b["line_item"] == "gpu_hours") & (b["quantity"] != 0)]
    assert set(before["month"]) == {"2027-01", "2027-02"}
    assert billed(result, WRITE_OFF_LINE).empty  # nothing owned, nothing written off
    h = result.hourly.set_index("time")
    # a B200 at 1000 W draws more per GPU than an H100 at 700 W
    per_gpu_before = (h.loc[:"2027-02-27", "energy_kwh"] / h.loc[:"2027-02-27", "gpus_billed"]).mean()
    per_gpu_after = (h.loc["2027-03-02":, "energy_kwh"] / h.loc["2027-03-02":, "gpus_billed"]).mean()
    assert per_gpu_after > per_gpu_before


def test_reserved_commitment_is_paid_to_its_term_end_or_carried_over():
    reserved = {"kind": "reserved", "committed_gpus": 10, "term_months": 3, "usd_per_gpu_hour": 2.0}
    day = dt.date(2027, 2, 1)
    term_hours = (dt.date(2027, 4, 1) - dt.date(2027, 1, 1)).days * 24
    new_terms = simulate(scenario_data(pricing=reserved, refresh=b200_step(
        day, pricing={"kind": "on_demand", "usd_per_gpu_hour": 5.0})))  # fmt: skip
    committed = new_terms.billing[new_terms.billing["line_item"] == "committed_gpu_hours"]
    assert committed["quantity"].sum() == pytest.approx(10 * term_hours)  # all paid, H100s gone
    left = committed[committed["month"].isin(["2027-02", "2027-03"])]
    assert set(left.loc[left["quantity"] != 0, "category"]) == {"idle"}
    carried = simulate(scenario_data(pricing=reserved, refresh=b200_step(day)))
    b = carried.billing
    lines = b[b["line_item"].str.startswith("committed_gpu_hours")]
    assert lines["quantity"].sum() == pytest.approx(10 * term_hours)  # paid once, not twice
    assert lines.loc[lines["line_item"] == "committed_gpu_hours (b200)", "quantity"].sum() > 0


def test_training_run_uses_the_gpu_in_place_at_its_start():
    """A job starting after the refresh runs at B200 speed: compute time scales with 1/peak."""
    before = simulate(scenario_data(refresh=b200_step("2027-04-01")))
    after = simulate(scenario_data(refresh=b200_step("2027-02-01")))
    h100, b200 = (gpu_of(validate_scenario_data(scenario_data()), p) for p in (
        pool_at(validate_scenario_data(scenario_data()).pools[0], dt.date(2027, 1, 1)),
        pool_at(validate_scenario_data(scenario_data(refresh=b200_step("2027-02-01"))).pools[0],
                dt.date(2027, 2, 1)),
    ))  # fmt: skip
    ratio = before.jobs["compute_hours"].iloc[0] / after.jobs["compute_hours"].iloc[0]
    peak = b200.peak_flops_per_s("bf16") / h100.peak_flops_per_s("bf16")
    assert b200.name == "b200" and h100.name == "h100-sxm"
    assert ratio == pytest.approx(peak, rel=0.02)


def test_scenario_at_is_identity_without_refresh_and_switches_on_the_day():
    plain = validate_scenario_data(scenario_data())
    assert scenario_at(plain, dt.date(2027, 3, 1)) is plain
    s = validate_scenario_data(scenario_data(refresh=b200_step("2027-03-01", calibration="b200")))
    assert scenario_at(s, dt.date(2027, 2, 28)).pools[0].gpu == "h100-sxm"
    assert scenario_at(s, dt.date(2027, 3, 1)).pools[0].gpu == "b200"
    assert scenario_at(s, dt.date(2027, 3, 1)).pools[0].pricing == s.pools[0].pricing


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"from": "2027-03-01", "gpu": "b300x"}, "unknown GPU 'b300x'"),
        ({"from": "2027-01-01", "gpu": "b200"}, "must be after the horizon start"),
        ({"from": "2027-03-01", "gpu": "b200", "calibration": "nope"}, "unknown calibration profile"),
        ({"from": "2027-03-01", "gpu": "b200", "pricing": dict(OWNED, gpus=500)}, "exceed max_gpus"),
        ({"from": "2027-03-01", "gpu": "b200", "residual_usd_per_gpu": -1}, "greater than or equal to 0"),
        ({"from": "2027-03-01", "gpu": "b200", "colour": "red"}, "unknown key 'colour'"),
    ],
)
def test_bad_refresh_steps_are_clean_errors(step, message):
    with pytest.raises(ScenarioError, match=message) as err:
        validate_scenario_data(scenario_data(refresh=[step]))
    assert "pools.gpus.refresh.0" in str(err.value)  # the field path of the bad step


def test_model_that_does_not_fit_the_new_gpu_is_an_error():
    data = scenario_data(refresh=[{"from": "2027-03-01", "gpu": "l4"}])
    data["deployments"][0]["model"] = "llama-3-70b"
    data["deployments"][0]["dtype"] = "fp8"
    data["deployments"][0]["tensor_parallel"] = 2
    data["training_jobs"] = []
    with pytest.raises(ScenarioError, match="after pool 'gpus' moves to l4 on 2027-03-01"):
        validate_scenario_data(data)


def test_refresh_steps_must_be_in_date_order():
    steps = b200_step("2027-03-01") + [{"from": "2027-02-01", "gpu": "h200"}]
    with pytest.raises(ScenarioError, match="increasing date order"):
        validate_scenario_data(scenario_data(refresh=steps))


def test_two_refreshes_write_off_each_owned_era():
    steps = b200_step("2027-02-01") + [{"from": "2027-03-15", "gpu": "h200", "residual_usd_per_gpu": 1000}]
    result = simulate(scenario_data(refresh=steps))
    offs = billed(result, WRITE_OFF_LINE)
    assert sorted(offs["line_item"]) == ["refresh_write_off b200 2027-03-15", "refresh_write_off h100-sxm 2027-02-01"]
    eras = result.summary["pools"]["gpus"]["refresh"]
    assert [e["gpu"] for e in eras] == ["h100-sxm", "b200", "h200"]
    assert np.isclose(sum(e["write_off_usd"] for e in eras), offs["cost_usd"].sum())
