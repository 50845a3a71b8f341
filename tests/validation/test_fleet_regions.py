"""Regions: traffic follows the sun, goes to the nearest region, fails over, spills over, and
is conserved; a round trip is paid in TTFT; capacity held for a region's loss is sized for it.

The curves are M/M/1 sojourn times (tests/synthetic.py) with the SLO read from the scenario, so a
request served across a round trip of r ms meets a TTFT target T exactly when an M/M/1 sojourn
meets T - r: the curve for the tightened target is the exact one.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.common.errors import ScenarioError
from simulator.fleet.regions import NetworkDelayedCurve, origin_rates
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from tests.synthetic import MM1Curve, without_failures

SERVICE_RATE = 4.0  # req/s per replica


def slo_provider(scenario, deployment, workload):
    """M/M/1 curves whose attainment is read against the scenario's TTFT target."""
    return MM1Curve(service_rate=SERVICE_RATE, slo_ms=scenario.workload(workload).slo.ttft_p95_ms,
                    deployment=deployment, workload=workload)  # fmt: skip


def _deployment(name: str, pool: str, most: int = 64) -> dict:
    return {"name": name, "pool": pool, "model": "llama-3-8b", "dtype": "bf16", "tensor_parallel": 1,
            "autoscaling": {"min_replicas": 1, "max_replicas": most, "scale_up_delay_minutes": 10}}  # fmt: skip


def three_regions(**routing) -> dict:
    """Users in us (-5 h), eu (0) and ap (+9 h); a deployment in us and eu only."""
    return {
        "name": "regions", "seed": 3, "horizon": {"start": "2027-01-01", "months": 1},
        "regions": [{"name": "us", "utc_offset_hours": -5, "rtt_ms": {"eu": 80, "ap": 150}},
                    {"name": "eu", "utc_offset_hours": 0, "rtt_ms": {"ap": 210}},
                    {"name": "ap", "utc_offset_hours": 9}],
        "pools": [{"name": "p-us", "gpu": "h100-sxm", "max_gpus": 64, "region": "us",
                   "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 3.0}},
                  {"name": "p-eu", "gpu": "h100-sxm", "max_gpus": 64, "region": "eu",
                   "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 3.5}}],
        "deployments": [_deployment("d-us", "p-us"), _deployment("d-eu", "p-eu")],
        "workloads": [{
            "name": "chat", "traffic": {"requests_per_second": 6.0, "diurnal_peak_to_mean": 2.0},
            "prompt_tokens": {"distribution": "fixed", "value": 500},
            "output_tokens": {"distribution": "fixed", "value": 100},
            "slo": {"ttft_p95_ms": 1500},
            "origins": [{"region": "us", "share": 0.5}, {"region": "eu", "share": 0.3},
                        {"region": "ap", "share": 0.2}],
            "routing": routing,
            "routes": [{"deployment": "d-us", "share": 0.6}, {"deployment": "d-eu", "share": 0.4}],
        }],
    }  # fmt: skip


def _run(data: dict, plan=None):
    return run(without_failures(validate_scenario_data(data)), plan=plan, curve_provider=slo_provider)


def _origins(result) -> dict:
    return result.summary["workloads"]["chat"]["origins"]


def _conserved(result) -> None:
    workload = result.summary["workloads"]["chat"]
    total = 0.0
    for origin in _origins(result).values():
        parts = (origin["requests_cache_hits"] + origin["requests_served"] + origin["unserved_requests"]
                 + origin["failed_requests"] + origin["requests_blocked"])  # fmt: skip
        assert parts == pytest.approx(origin["requests"], rel=1e-9)
        total += origin["requests"]
    assert total == pytest.approx(workload["requests"], rel=1e-9)
    for key in ("requests_served", "requests_blocked", "requests_cache_hits", "unserved_requests"):
        assert sum(o[key] for o in _origins(result).values()) == pytest.approx(
            workload.get(key, 0.0), rel=1e-9, abs=1e-6), key


def test_each_origin_peaks_at_its_local_hour():
    scenario = validate_scenario_data(three_regions())
    from simulator.fleet.demand import timeline

    line = timeline(scenario.horizon)
    rates = dict(origin_rates(scenario, scenario.workload("chat"), line))
    first_day = {region: int(np.argmax(rate[:24])) for region, rate in rates.items()}
    # 15:00 local: 20 UTC in us (-5), 15 UTC in eu, 6 UTC in ap (+9)
    assert first_day == {"us": 20, "eu": 15, "ap": 6}
    total = sum(rates.values())
    assert total.mean() == pytest.approx(6.0)  # the shares sum to 1 and each day shape has mean 1


def test_one_origin_in_one_region_is_the_single_site_result():
    single = three_regions()
    single["regions"] = [{"name": "eu", "utc_offset_hours": 0}]
    single["pools"] = single["pools"][1:]
    single["deployments"] = single["deployments"][1:]
    workload = single["workloads"][0]
    workload["origins"] = [{"region": "eu", "share": 1.0, "peak_hour_local": 15}]
    workload["routes"] = [{"deployment": "d-eu", "share": 1.0}]
    plain = copy.deepcopy(single)
    plain["workloads"][0].pop("origins")
    with_origin, without = _run(single).summary, _run(plain).summary
    assert with_origin["total_cost_usd"] == without["total_cost_usd"]
    for key in ("requests", "requests_served", "unserved_requests", "slo_attainment", "ttft_p95_ms"):
        assert with_origin["workloads"]["chat"][key] == without["workloads"]["chat"][key]


def test_nearest_region_serves_and_the_round_trip_is_in_ttft():
    result = _run(three_regions())
    origins = _origins(result)
    assert origins["us"]["requests_served_in_other_regions"] == 0
    assert origins["eu"]["requests_served_in_other_regions"] == 0
    # ap has no deployment: all of it is served in us, 150 ms away
    assert origins["ap"]["requests_served_in_other_regions"] == pytest.approx(origins["ap"]["requests_served"])
    assert origins["ap"]["mean_network_rtt_ms"] == pytest.approx(150)
    _conserved(result)


def test_delayed_curve_adds_the_trip_and_tightens_the_slo():
    base = MM1Curve(service_rate=SERVICE_RATE, slo_ms=1500)
    tight = MM1Curve(service_rate=SERVICE_RATE, slo_ms=1500 - 150)
    seen = NetworkDelayedCurve(tight, 150)
    np.testing.assert_allclose(seen.ttft_ms, base.ttft_ms + 150)
    np.testing.assert_allclose(seen.e2e_ms, base.e2e_ms + 150)
    np.testing.assert_allclose(seen.tpot_ms, base.tpot_ms)
    assert np.all(seen.slo_attainment < base.slo_attainment)
    assert seen.capacity_per_replica < base.capacity_per_replica


def test_outage_fails_over_to_the_next_region_or_is_lost_without_failover():
    data = three_regions()
    data["region_outages"] = [{"region": "us", "start": "2027-01-12", "start_hour_utc": 18, "hours": 6}]
    on = _run(data)
    outage = on.summary["region_outages"][0]
    assert outage["hours"] == 6
    assert outage["requests_served_in_other_regions"] > 0
    assert on.summary["regions"]["us"]["hours_down"] == pytest.approx(6)
    _conserved(on)
    data["workloads"][0]["routing"] = {"failover": False}
    off = _run(data)
    _conserved(off)
    lost = off.summary["workloads"]["chat"]["unserved_requests"] - on.summary["workloads"]["chat"]["unserved_requests"]
    # without failover the outage's us-bound traffic (us and ap users) is unserved: 6 hours of it
    assert lost > 0.5 * outage["requests_served_in_other_regions"]
    assert off.summary["region_outages"][0]["requests_served_in_other_regions"] < outage["requests_served_in_other_regions"]


def test_reserve_for_region_loss_holds_what_survivors_would_need():
    data = three_regions(reserve_for_region_loss=True)
    reserved = _run(data)
    plain = _run(three_regions())
    deps = reserved.summary["deployments"]
    assert reserved.summary["region_reserve_cost_usd"] > 0
    assert all(d["reliability"]["region_reserve_replica_hours"] >= 0 for d in deps.values())
    assert reserved.summary["total_cost_usd"] > plain.summary["total_cost_usd"]
    # held capacity: each survivor's replicas cover the traffic it would carry with the other down
    down = three_regions()
    down["region_outages"] = [{"region": "us", "start": "2027-01-01", "hours": 24 * 31}]
    us_down = _run(down)
    def held(result, deployment):
        table = result.deployments_hourly
        return table.loc[table["deployment"] == deployment, "replicas_held"].to_numpy()

    assert np.all(held(reserved, "d-eu") >= held(us_down, "d-eu"))
    assert np.any(held(reserved, "d-eu") > held(plain, "d-eu"))


def test_spill_over_moves_what_a_full_region_cannot_hold():
    data = three_regions(policy="spill_over")
    data["deployments"][1]["autoscaling"]["max_replicas"] = 1  # eu holds one replica at most
    spilled = _run(data)
    data["workloads"][0]["routing"] = {"policy": "nearest"}
    nearest = _run(data)
    assert _origins(spilled)["eu"]["requests_served_in_other_regions"] > 0
    assert _origins(nearest)["eu"]["requests_served_in_other_regions"] == 0
    assert (spilled.summary["workloads"]["chat"]["slo_attainment"]
            > nearest.summary["workloads"]["chat"]["slo_attainment"])  # fmt: skip
    _conserved(spilled)


@settings(max_examples=12, deadline=None)
@given(
    us=st.floats(0.0, 1.0), eu_of_rest=st.floats(0.0, 1.0),
    start=st.integers(0, 24 * 28), hours=st.floats(0.5, 72),
    region=st.sampled_from(["us", "eu"]), failover=st.booleans(),
    policy=st.sampled_from(["nearest", "spill_over"]), eu_max=st.integers(1, 8),
    before=st.floats(0.0, 0.5), after=st.floats(0.0, 0.5),
)  # fmt: skip
def test_traffic_is_conserved_per_origin_and_in_total(us, eu_of_rest, start, hours, region, failover, policy, eu_max,
                                                      before, after):  # fmt: skip
    data = three_regions(policy=policy, failover=failover)
    data["workloads"][0]["response_cache_hit_rate"] = 0.1
    data["workloads"][0]["stages"] = [  # guardrails that refuse some requests before and after the model
        {"name": "in", "kind": "moderation", "position": "before_model", "block_share": before,
         "latency_ms": {"distribution": "fixed", "value": 20}},
        {"name": "out", "kind": "moderation", "position": "after_model", "block_share": after,
         "latency_ms": {"distribution": "fixed", "value": 20}}]  # fmt: skip
    eu = (1 - us) * eu_of_rest
    data["workloads"][0]["origins"] = [{"region": "us", "share": us}, {"region": "eu", "share": eu},
                                       {"region": "ap", "share": 1 - us - eu}]  # fmt: skip
    day = 1 + start // 24
    data["region_outages"] = [{"region": region, "start": f"2027-01-{day:02d}", "start_hour_utc": start % 24,
                               "hours": hours}]  # fmt: skip
    data["deployments"][1]["autoscaling"]["max_replicas"] = eu_max
    _conserved(_run(data))


def _problems(data: dict) -> str:
    with pytest.raises(ScenarioError) as err:
        validate_scenario_data(data, source="s.yaml")
    return str(err.value)


def test_bad_region_input_is_a_located_error():
    data = three_regions()
    data["pools"][0]["region"] = "mars"
    assert "pools.p-us.region: unknown region 'mars'" in _problems(data)
    data = three_regions()
    data["workloads"][0]["origins"][0]["share"] = 0.4
    assert "origin shares sum to 0.9 (expected 1)" in _problems(data)
    data = three_regions()
    data["regions"][0]["rtt_ms"]["moon"] = 5
    assert "unknown region 'moon'" in _problems(data)
    data = three_regions()
    data["regions"][1]["rtt_ms"]["us"] = 90
    assert "80 ms the other way" in _problems(data) or "90 ms here" in _problems(data)
    data = three_regions()
    data["workloads"][0]["slo"] = {"ttft_p95_ms": 120}
    assert "leaves no time within the 120 ms latency target" in _problems(data)
    data = three_regions()
    del data["regions"][0]["rtt_ms"]["ap"], data["regions"][1]["rtt_ms"]["ap"]
    assert "no deployment of 'chat' in 'ap' and no rtt_ms" in _problems(data)
    data = three_regions()
    del data["pools"][1]["region"]
    assert "has no region" in _problems(data)
    data = three_regions()
    data["region_outages"] = [{"region": "nowhere", "start": "2027-01-02", "hours": 2}]
    assert "unknown region 'nowhere'" in _problems(data)
    data = three_regions()
    data["regions"][0]["rtt_ms"]["eu"] = -1
    assert "a round trip is >= 0 ms" in _problems(data)


@settings(max_examples=80, deadline=None)
@given(need=st.integers(0, 500), zones=st.integers(2, 6))
def test_zone_spread_is_the_fewest_surviving_a_zone_loss(need, zones):
    from simulator.fleet.reliability import zone_spread
    from simulator.scenario.schema import Redundancy

    held = int(zone_spread(np.array([float(need)]), Redundancy(zones=zones, survive_zone_loss=True))[0])
    left = held - -(-held // zones)  # the fullest zone holds ceil(held / zones)
    assert left >= need
    if need > 0:
        assert (held - 1) - -(-(held - 1) // zones) < need
    assert zone_spread(np.array([7.0]), Redundancy(zones=zones))[0] == 7.0  # spreading alone adds nothing


def test_surviving_a_zone_loss_holds_more_replicas_and_shows_as_redundancy():
    from tests.conftest import minimal_scenario_dict

    data = minimal_scenario_dict()
    data["workloads"][0]["traffic"]["requests_per_second"] = 12.0
    plain = run(without_failures(validate_scenario_data(data)), curve_provider=slo_provider)
    data["deployments"][0]["redundancy"] = {"zones": 3, "survive_zone_loss": True}
    spread = run(without_failures(validate_scenario_data(data)), curve_provider=slo_provider)
    need = plain.deployments_hourly["replicas_held"].to_numpy()
    held = spread.deployments_hourly["replicas_held"].to_numpy()
    assert np.all(held - np.ceil(held / 3 - 1e-9) >= need - 1e-9)  # one zone lost, the need remains
    assert spread.summary["redundancy_cost_usd"] > 0 == plain.summary["redundancy_cost_usd"]


def test_more_region_input_errors():
    data = three_regions()
    data["workloads"][0]["origins"].append({"region": "us", "share": 0.0})
    assert "origin 'us' is given twice" in _problems(data)
    data = three_regions()
    data["region_outages"] = [{"region": "us", "start": "2027-01-02", "hours": 2},
                              {"region": "eu", "start": "2027-01-03", "hours": 2}]
    assert "duplicate outage name 'outage'" in _problems(data)
    data = three_regions()  # a guard served across a 150 ms trip cannot answer within 100 ms
    data["deployments"].append(_deployment("guard-us", "p-us"))
    data["workloads"][0]["stages"] = [{"name": "guard", "kind": "moderation", "latency_ms": {"distribution": "fixed",
                                       "value": 30}, "deployment": ["guard-us"], "latency_budget_ms": 100}]  # fmt: skip
    assert "the 150 ms round trip from 'ap' to 'us' leaves no time within the 100 ms latency budget" in _problems(data)
    data["pools"].append({"name": "p-none", "gpu": "h100-sxm", "max_gpus": 8,
                          "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 3.0}})  # fmt: skip
    data["deployments"][-1]["pool"] = "p-none"
    assert "a stage of a workload with origins needs one" in _problems(data)


def test_overlapping_outages_do_not_compound():
    from simulator.fleet.demand import timeline
    from simulator.fleet.regions import region_up

    data = three_regions()
    data["region_outages"] = [{"name": "a", "region": "us", "start": "2027-01-02", "start_hour_utc": 3, "hours": 0.5},
                              {"name": "b", "region": "us", "start": "2027-01-02", "start_hour_utc": 3, "hours": 0.5}]
    scenario = validate_scenario_data(data)
    up = region_up(scenario, timeline(scenario.horizon))["us"]
    assert up[24 + 3] == pytest.approx(0.5) and up.sum() == pytest.approx(len(up) - 0.5)


def test_requests_with_nowhere_to_go_are_unserved_not_blocked():
    from tests.conftest import minimal_scenario_dict

    data = minimal_scenario_dict()
    data.pop("training_jobs")
    data["deployments"][0]["from"] = "2027-02-01"  # nothing serves in January
    data["workloads"][0]["stages"] = [{"name": "guard", "kind": "moderation", "block_share": 0.5,
                                       "latency_ms": {"distribution": "fixed", "value": 20}}]  # fmt: skip
    result = run(without_failures(validate_scenario_data(data)), curve_provider=slo_provider)
    january = result.latency.iloc[0]
    assert january["requests_blocked"] == 0 and january["requests_served"] == 0
    assert january["requests_unserved"] > 0
    february = result.latency.iloc[1]
    assert february["requests_blocked"] == pytest.approx(0.5 * (february["requests_blocked"] + february["requests_served"]
                                                                + february["requests_unserved"]), rel=1e-6)
