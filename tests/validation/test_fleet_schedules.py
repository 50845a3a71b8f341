"""Scheduled changes: no schedule changes nothing; a change at D changes nothing before D;
after_job launches never precede the job's finish and move with it; canaries hold both."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.common.errors import ScenarioError
from simulator.results.runner import plan_names, run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import load_scenario
from tests.conftest import ROOT, minimal_scenario_dict
from tests.synthetic import mm1_provider, without_failures

MM1 = mm1_provider(2.0, 3000)
GOLDEN = json.loads((Path(__file__).parent.parent / "data" / "unscheduled_summaries.json").read_text())


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_unscheduled_bundled_scenarios_unchanged(key):
    name, plan = key.split(":")
    s = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    s = without_failures(s.model_copy(update={"horizon": s.horizon.model_copy(update={"months": 6})}))
    assert plan in plan_names(s)
    now = json.loads(json.dumps(run(s, plan=plan, curve_provider=MM1).summary, default=str))
    assert now == pytest.approx(GOLDEN[key], rel=1e-9) if False else _same(now, GOLDEN[key])


def _same(a, b) -> bool:
    if isinstance(a, dict):
        assert set(a) == set(b)
        return all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9)
        return True
    assert a == b
    return True


def two_deployments(**extra) -> dict:
    data = minimal_scenario_dict()
    data["horizon"]["months"] = 3
    data["pools"][0]["max_gpus"] = 128
    second = dict(data["deployments"][0], name="new")
    data["deployments"].append(second)
    data["workloads"][0]["traffic"]["requests_per_second"] = 6
    data["workloads"][0]["routes"] = [{"deployment": "small", "share": 1.0},
                                      {"deployment": "new", "share": 0.0}]  # fmt: skip
    data["training_jobs"][0]["failures_per_gpu_day"] = 0.0
    data.update(extra)
    return data


def hourly_before(result, day: dt.date) -> pd.DataFrame:
    h = result.hourly
    return h[h["time"] < pd.Timestamp(day)].reset_index(drop=True)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offset_days=st.integers(1, 85), ramp=st.sampled_from([0, 3]))
def test_change_at_d_changes_nothing_before_d(offset_days, ramp):
    day = dt.date(2027, 1, 1) + dt.timedelta(days=offset_days)
    plain = validate_scenario_data(two_deployments())
    changed_data = two_deployments()
    changed_data["workloads"][0]["routes"][0]["schedule"] = [{"from": day, "share": 0.4, "ramp_days": ramp}]
    changed_data["workloads"][0]["routes"][1]["schedule"] = [{"from": day, "share": 0.6, "ramp_days": ramp}]
    changed_data["pools"][0]["pricing"]["price_schedule"] = [{"from": day, "usd_per_gpu_hour": 1.0}]
    changed_data["pools"][0]["max_gpus_schedule"] = [{"from": day, "max_gpus": 9}]
    changed = validate_scenario_data(changed_data)
    a, b = run(plain, curve_provider=MM1), run(changed, curve_provider=MM1)
    pd.testing.assert_frame_equal(hourly_before(a, day), hourly_before(b, day))
    after = b.hourly[b.hourly["time"] >= pd.Timestamp(day)]
    assert (after["gpus_inference"] + after["gpus_training"] <= 9 + 1e-9).all()
    assert b.summary["total_cost_usd"] < a.summary["total_cost_usd"]


def launch_hour(result, deployment: str) -> pd.Timestamp:
    d = result.deployments_hourly
    serving = d[(d["deployment"] == deployment) & (d["replicas_serving"] > 0)]
    return serving["time"].min()


@pytest.mark.parametrize("delay_days", [0, 5, 12])
def test_after_job_launch_follows_the_job(delay_days):
    def scenario(delay):
        data = two_deployments()
        data["deployments"][1]["after_job"] = "ft"
        data["training_jobs"][0]["start"] = dt.date(2027, 1, 5) + dt.timedelta(days=delay)
        data["training_jobs"][0]["tokens"] = 2e10
        data["workloads"][0]["routes"][0]["schedule"] = [{"from": "2027-01-02", "share": 0.0}]
        data["workloads"][0]["routes"][1]["schedule"] = [{"from": "2027-01-02", "share": 1.0}]
        return validate_scenario_data(data)

    base, delayed = run(scenario(0), curve_provider=MM1), run(scenario(delay_days), curve_provider=MM1)
    finish = pd.Timestamp(base.jobs["finished_at"].min())
    assert launch_hour(base, "new") >= finish.floor("h")
    assert launch_hour(base, "new") - finish.floor("h") <= pd.Timedelta(hours=1)
    assert launch_hour(delayed, "new") - launch_hour(base, "new") == pd.Timedelta(days=delay_days)
    # before the launch the old deployment carries everything, nothing is unserved
    assert base.summary["workloads"]["chat"]["unserved_requests"] == 0


def test_canary_holds_both_deployments_during_overlap():
    data = two_deployments()
    data["workloads"][0]["routes"][0]["schedule"] = [{"from": "2027-02-01", "share": 0.0, "ramp_days": 14}]
    data["workloads"][0]["routes"][1]["schedule"] = [{"from": "2027-02-01", "share": 1.0, "ramp_days": 14}]
    data["deployments"][1]["from"] = "2027-02-01"
    result = run(validate_scenario_data(data), curve_provider=MM1)
    d = result.deployments_hourly.pivot(index="time", columns="deployment", values="replicas_held")
    overlap = d.loc["2027-02-03":"2027-02-12"]
    assert (overlap["small"] > 0).all() and (overlap["new"] > 0).all()
    assert (d.loc["2027-01-10":"2027-01-20", "new"] == 0).all()
    assert (d.loc["2027-03-01":, "small"] == 1).all()  # min_replicas keeps one


def test_scheduled_shares_must_sum_to_one():
    data = two_deployments()
    data["workloads"][0]["routes"][1]["schedule"] = [{"from": "2027-02-01", "share": 0.5}]
    with pytest.raises(ScenarioError, match="scheduled route shares sum to 1.5 on 2027-02-01"):
        validate_scenario_data(data)


def test_deployment_window_and_unknown_job():
    data = two_deployments()
    data["deployments"][1]["after_job"] = "nope"
    with pytest.raises(ScenarioError, match="unknown training job 'nope'"):
        validate_scenario_data(data)
    data = two_deployments()
    data["deployments"][0]["until"] = "2027-02-01"
    data["workloads"][0]["routes"][1]["share"] = 0.0
    result = run(validate_scenario_data(data), curve_provider=MM1)
    d = result.deployments_hourly
    small = d[d["deployment"] == "small"].set_index("time")
    assert (small.loc["2027-02-01":, "replicas_held"] == 0).all()
    # its traffic moved to the other route, nothing unserved
    assert result.summary["workloads"]["chat"]["unserved_requests"] == 0
