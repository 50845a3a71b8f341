"""Scenario schema: valid files load, bad ones give FILE:LINE: path: message problems."""

from __future__ import annotations

import copy
import textwrap

import pytest

from simulator.common.errors import ScenarioError
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import load_scenario, scenario_for_plan
from simulator.scenario.paths import set_by_path
from simulator.scenario.schema import ReservedPricing, add_months
from tests.conftest import SCENARIOS, minimal_scenario_dict


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_bundled_scenarios_validate(path):
    scenario = load_scenario(path)
    assert scenario.pools
    for plan in scenario.plans:
        scenario_for_plan(scenario, plan.name)


def test_chat_scenario_fields(chat_path):
    s = load_scenario(chat_path)
    assert isinstance(s.pool("serving").pricing, ReservedPricing)
    assert s.training_jobs[0].tokens == 2.0e12  # YAML 1.2 float without exponent sign
    assert s.workload("chat").prompt_tokens.mean == 1200
    assert s.horizon.end.isoformat() == "2030-01-01"


def write(tmp_path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return path


BASE = """\
name: t
horizon: {start: 2027-01-01, months: 3}
pools:
  - name: serving
    gpu: h100-sxm
    max_gpus: 16
    pricing: {kind: on_demand, usd_per_gpu_hour: 3.0}
deployments:
  - name: d
    pool: serving
    model: llama-3-8b
workloads:
  - name: w
    traffic: {requests_per_second: 1}
    prompt_tokens: {distribution: fixed, value: 100}
    output_tokens: {distribution: fixed, value: 10}
    routes: [{deployment: d, share: 1.0}]
"""


def problems_of(tmp_path, text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    return info.value.format().splitlines()


def test_unknown_key_names_line_and_suggests(tmp_path):
    lines = problems_of(tmp_path, BASE.replace("max_gpus: 16", "max_gpu: 16"))
    assert len(lines) == 2  # the typo, and the now-missing max_gpus
    typo = next(line for line in lines if "max_gpu'" in line)
    assert typo.endswith("s.yaml:6: pools.serving.max_gpu: unknown key 'max_gpu' (did you mean 'max_gpus'?)")


def test_wrong_type_and_range(tmp_path):
    lines = problems_of(tmp_path, BASE.replace("requests_per_second: 1", "requests_per_second: -1"))
    assert len(lines) == 1
    assert ":14: workloads.w.traffic.requests_per_second:" in lines[0]
    assert "greater than or equal to 0" in lines[0]


def test_unknown_pricing_kind(tmp_path):
    lines = problems_of(tmp_path, BASE.replace("kind: on_demand", "kind: rented"))
    assert "pools.serving.pricing.kind" in lines[0] or "pools.serving.pricing" in lines[0]
    assert "'rented'" in lines[0] and "on_demand" in lines[0]


def test_unknown_catalog_name_suggests(tmp_path):
    lines = problems_of(tmp_path, BASE.replace("gpu: h100-sxm", "gpu: h100-sxn"))
    assert lines == [f"{tmp_path / 's.yaml'}:5: pools.serving.gpu: unknown GPU 'h100-sxn' (did you mean 'h100-sxm'?)"]


def test_route_to_missing_deployment_and_share_sum(tmp_path):
    text = BASE.replace("routes: [{deployment: d, share: 1.0}]",
                        "routes: [{deployment: e, share: 0.5}]")
    lines = problems_of(tmp_path, text)
    assert any("workloads.w.routes.0.deployment: unknown deployment 'e'" in ln for ln in lines)
    assert any("route shares sum to 0.5 (expected 1)" in ln for ln in lines)


def test_model_that_does_not_fit_says_by_how_much(tmp_path):
    text = BASE.replace("model: llama-3-8b", "model: llama-3-70b")
    (line,) = problems_of(tmp_path, text)
    assert "deployments.d.tensor_parallel" in line
    assert "short by" in line and "GiB" in line


def test_yaml_syntax_error_has_line(tmp_path):
    (line,) = problems_of(tmp_path, BASE + "  - oops: [unclosed\n")
    assert "s.yaml:" in line and "not valid YAML" in line


def test_duplicate_key_is_an_error(tmp_path):
    (line,) = problems_of(tmp_path, BASE.replace("max_gpus: 16", "max_gpus: 16\n    max_gpus: 8"))
    assert ":7: pools.0.max_gpus: duplicate key" in line


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "nope.yaml")


def test_empirical_distribution_reads_csv(tmp_path):
    (tmp_path / "lengths.csv").write_text("prompt\n10\n20\n30\n")
    text = BASE.replace("prompt_tokens: {distribution: fixed, value: 100}",
                        "prompt_tokens: {distribution: empirical, path: lengths.csv, column: prompt}")
    s = load_scenario(write(tmp_path, text))
    assert s.workload("w").prompt_tokens.mean == pytest.approx(20)


def test_empirical_bad_column(tmp_path):
    (tmp_path / "lengths.csv").write_text("prompt\n10\n")
    text = BASE.replace("prompt_tokens: {distribution: fixed, value: 100}",
                        "prompt_tokens: {distribution: empirical, path: lengths.csv, column: nope}")
    (line,) = problems_of(tmp_path, text)
    assert "workloads.w.prompt_tokens.path" in line and "'nope'" in line


def test_plan_overrides_by_name_path(chat_path):
    s = load_scenario(chat_path)
    owned = scenario_for_plan(s, "owned-hardware")
    assert owned.pool("serving").pricing.kind == "owned"
    assert s.pool("serving").pricing.kind == "reserved"  # original untouched


def test_plan_with_bad_path_is_clear(mini):
    mini["plans"] = [{"name": "p", "set": {"pools.gpus.max_gpu": 3}}]
    s = validate_scenario_data(mini)
    with pytest.raises(ScenarioError, match="no field 'pools.gpus.max_gpu'"):
        scenario_for_plan(s, "p")


def test_plan_value_revalidated(mini):
    mini["plans"] = [{"name": "p", "set": {"pools.gpus.max_gpus": -3}}]
    s = validate_scenario_data(mini)
    with pytest.raises(ScenarioError, match="pools.gpus.max_gpus"):
        scenario_for_plan(s, "p")


def test_set_by_path_list_by_index_and_name():
    data = {"a": [{"name": "x", "v": 1}, {"name": "y", "v": 2}]}
    set_by_path(data, "a.y.v", 5)
    set_by_path(data, "a.0.v", 7)
    assert data == {"a": [{"name": "x", "v": 7}, {"name": "y", "v": 5}]}
    with pytest.raises(KeyError):
        set_by_path(data, "a.z.v", 1)


def test_duplicate_names(mini):
    mini["pools"].append(copy.deepcopy(mini["pools"][0]))
    with pytest.raises(ScenarioError, match="duplicate name 'gpus'"):
        validate_scenario_data(mini)


def test_add_months_clamps_day():
    import datetime as dt

    assert add_months(dt.date(2027, 1, 31), 1) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2027, 11, 15), 3) == dt.date(2028, 2, 15)


def test_minimal_dict_is_valid():
    validate_scenario_data(minimal_scenario_dict())


def test_inline_distribution_becomes_uncertain_input(tmp_path):
    text = BASE.replace("traffic: {requests_per_second: 1}",
                        "traffic: {requests_per_second: 1, growth_per_month: {distribution: normal, mean: 0.05, sd: 0.02}}")
    s = load_scenario(write(tmp_path, text))
    assert s.workload("w").traffic.growth_per_month == pytest.approx(0.05)
    assert set(s.uncertainty) == {"workloads.w.traffic.growth_per_month"}


def test_sampled_scenarios_follow_the_distribution(tmp_path):
    import numpy as np

    from simulator.scenario.loading import sample_scenario

    text = BASE.replace("usd_per_gpu_hour: 3.0", "usd_per_gpu_hour: {distribution: uniform, low: 2, high: 4}")
    s = load_scenario(write(tmp_path, text))
    rng = np.random.default_rng(0)
    prices = [sample_scenario(s, rng).pool("serving").pricing.usd_per_gpu_hour for _ in range(400)]
    assert 2 <= min(prices) and max(prices) <= 4
    assert np.mean(prices) == pytest.approx(3.0, abs=3 * (2 / 12**0.5) / 20)


def test_uncertainty_path_must_exist(mini):
    mini["uncertainty"] = {"pools.gpus.price": {"distribution": "normal", "mean": 1, "sd": 0.1}}
    with pytest.raises(ScenarioError, match="uncertainty.pools.gpus.price: no field 'pools.gpus.price'"):
        validate_scenario_data(mini)


@pytest.mark.parametrize(("model", "tp", "ep", "message"), [
    ("llama-3-8b", 8, 8, "needs a mixture-of-experts model"),
    ("mixtral-8x7b", 4, 8, "must divide tensor_parallel=4"),
    ("deepseek-v3", 8, 8, None),
])  # fmt: skip
def test_expert_parallel_is_checked(model, tp, ep, message):
    from simulator.catalog import bundled_catalog
    from simulator.scenario.checks import _expert_parallel_problem

    why = _expert_parallel_problem(ep, tp, bundled_catalog().models[model])
    assert (why is None) if message is None else (message in why)


def test_engine_preset_fills_the_fields_the_file_leaves_out():
    from simulator.scenario.schema import Deployment

    trt = Deployment.model_validate({"name": "d", "pool": "p", "model": "llama-3-8b", "engine": "tensorrt-llm"})
    assert (trt.max_batch_size, trt.max_batched_tokens, trt.kv_block_tokens) == (2048, 8192, 32)
    assert trt.preset.admission == "reserve" and trt.preset.memory_fraction_of_free
    mine = Deployment.model_validate({"name": "d", "pool": "p", "model": "llama-3-8b",
                                      "engine": "tensorrt-llm", "max_batch_size": 64})  # fmt: skip
    assert mine.max_batch_size == 64
    vllm = Deployment.model_validate({"name": "d", "pool": "p", "model": "llama-3-8b"})
    assert (vllm.engine, vllm.max_batch_size, vllm.preset.admission) == ("vllm", 256, "preempt")


def test_conversations_of_absurd_length_are_refused_not_simulated():
    """A fuzzed 4,000,000-turn mean once tried to sample ~2e10 turns (a MemoryError, a
    traceback): the mean is bounded, with the reason."""
    data = minimal_scenario_dict()
    data["workloads"][0]["sessions"] = {"turns": {"distribution": "fixed", "value": 1000}, "think_s": 30}
    validate_scenario_data(copy.deepcopy(data))
    data["workloads"][0]["sessions"]["turns"] = {"distribution": "lognormal", "mean": 4_000_000, "sigma": 0.5}
    with pytest.raises(ScenarioError, match="mean turns per conversation 4e\\+06 is above 1000"):
        validate_scenario_data(data)
