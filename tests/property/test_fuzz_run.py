"""Fuzz the run: numbers of bundled scenarios scaled by hypothesis-drawn factors (0 to 1e6) run
end to end (closed-form M/M/1 curves, 2 months) and either give finite, consistent results
written inside the output folder, or a ScenarioError; never another exception."""

from __future__ import annotations

import json
import math
import os
import random

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.common.errors import ScenarioError
from simulator.report.files import write_result_files
from simulator.results.runner import plan_names, run
from simulator.scenario.loading import _walk as walk
from simulator.scenario.loading import load_scenario
from tests.conftest import SCENARIOS
from tests.synthetic import mm1_provider

MM1 = mm1_provider(2.0, 3000)
FACTORS = [0, 1e-3, 0.5, 2, 10, 1e3, 1e6]


def numbers(data):
    return [p for p, v in walk(data) if p and isinstance(v, int | float) and not isinstance(v, bool)]


@settings(max_examples=int(os.environ.get("FLEETSIM_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=st.sampled_from(SCENARIOS), seed=st.integers(0, 2**32 - 1))
def test_scaled_numbers_give_finite_consistent_results_or_a_clear_error(tmp_path_factory, scenario, seed):
    rng = random.Random(seed)
    data = yaml.safe_load(scenario.read_text())
    for _ in range(rng.randint(1, 3)):
        where = rng.choice(numbers(data))
        parent = data
        for part in where[:-1]:
            parent = parent[part]
        value = parent[where[-1]] * rng.choice(FACTORS)
        parent[where[-1]] = round(value) if isinstance(parent[where[-1]], int) and value < 1e15 else value
    data["horizon"]["months"] = 2
    folder = tmp_path_factory.mktemp("fuzz-run")
    path = folder / "case.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        s = load_scenario(path)
        results = [run(s, plan=plan, curve_provider=MM1) for plan in plan_names(s)]
    except ScenarioError as error:
        assert error.format().startswith(str(path)) or "plan" in error.format() or "scenario" in error.format()
        return
    out = folder / "out"
    for result in results:
        summary = result.summary
        json.dumps(summary, allow_nan=False, default=str)  # finite
        parts = summary["inference_cost_usd"] + summary["training_cost_usd"] + summary["idle_cost_usd"]
        assert math.isfinite(summary["total_cost_usd"]) and summary["total_cost_usd"] >= 0
        assert parts == pytest.approx(summary["total_cost_usd"], rel=1e-9, abs=0.01)
        assert summary["gpu_hours_billed"] + 1e-6 >= summary["gpu_hours_busy"]
        write_result_files(result, out / summary["plan"], within=out)
    assert all(p.resolve().is_relative_to(folder.resolve()) for p in folder.rglob("*"))
