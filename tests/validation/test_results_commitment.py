"""Reserved commitments sized and checked: the summary says how a commitment compares with the
need in its term, and warns (with the cost) when it exceeds the peak."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

MM1 = mm1_provider(2.0, 3000)


def reserved(committed: int) -> dict:
    data = minimal_scenario_dict()
    data["training_jobs"] = []
    data["pools"][0]["gpus_per_node"] = 1
    data["pools"][0]["pricing"] = {"kind": "reserved", "committed_gpus": committed, "term_months": 2,
                                   "usd_per_gpu_hour": 2.0}  # fmt: skip
    return data


def test_an_oversized_commitment_is_reported_with_what_it_costs():
    s = run(validate_scenario_data(reserved(40)), curve_provider=MM1).summary
    c = s["pools"]["gpus"]["commitment"]
    assert c["committed_gpus"] == 40 and 0 < c["median_need_gpus"] <= c["peak_need_gpus"] < 40
    hours = 59 * 24  # January and February 2027
    unused = sum(40 - need for need in [c["peak_need_gpus"]])  # at least this many are never used
    assert c["unused_commitment_usd"] >= unused * hours * 2.0 - 1e-6
    assert c["unused_commitment_usd"] == pytest.approx(s["idle_cost_usd"], rel=1e-9)
    (warning,) = s["warnings"]
    assert "40 GPUs committed" in warning and f"${c['unused_commitment_usd']:,.0f}" in warning


def test_a_commitment_within_the_peak_gives_no_warning():
    s = run(validate_scenario_data(reserved(1)), curve_provider=MM1).summary
    assert s["warnings"] == [] and s["pools"]["gpus"]["commitment"]["committed_gpus"] == 1


def test_run_prints_the_warning_on_stderr(tmp_path):
    import yaml

    path = tmp_path / "oversized.yaml"
    path.write_text(yaml.safe_dump(reserved(60) | {"horizon": {"start": "2027-01-01", "months": 1}}))
    result = CliRunner().invoke(app, ["run", str(path), "-q"])
    assert result.exit_code == 0, result.output
    assert "warning: plan base: pool gpus: 60 GPUs committed" in result.output


def test_validate_warns_of_a_commitment_nothing_could_use(tmp_path):
    import yaml

    data = reserved(60)  # one deployment of max 8 replicas x TP 1: at most 8 GPUs at once
    path = tmp_path / "oversized.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: plan base: pools.gpus.pricing.committed_gpus: 60 committed, but its deployments" in result.output
    path.write_text(yaml.safe_dump(reserved(4)))
    assert "warning" not in CliRunner().invoke(app, ["validate", str(path)]).output
