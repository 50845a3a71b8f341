"""Grid files: schema, FILE:LINE errors, checks against the scenario, expansion, overrides."""

from __future__ import annotations

import pytest

from simulator.common.errors import ScenarioError
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.yamlio import parse_yaml
from simulator.sweep.grid import (
    apply_overrides,
    column_values,
    expand,
    load_grid,
    parse_grid,
    short_names,
    without_overridden,
)


@pytest.fixture
def scenario(mini):
    return validate_scenario_data(mini)


def grid_from(text, scenario=None, source="grid.yaml"):
    data, lines = parse_yaml(text, source)
    return parse_grid(data, lines, source, scenario)


def errors_of(text, scenario):
    with pytest.raises(ScenarioError) as info:
        grid_from(text, scenario)
    return info.value.format().splitlines()


GRID = """\
deployments.small.tensor_parallel: [1, 2]
pools.gpus.gpu: [h100-sxm, h200]
fixed:
  horizon.months: 1
pricing:
  - name: od
    set: {pools.gpus.pricing.usd_per_gpu_hour: 2.5}
  - name: res
    set: {pools.gpus.pricing: {kind: reserved, committed_gpus: 2, term_months: 1, usd_per_gpu_hour: 2.0}}
replications: 3
"""


def test_expansion_is_the_cartesian_product_in_file_order(scenario):
    grid = grid_from(GRID, scenario)
    plans = expand(grid)
    assert grid.size == len(plans) == 8
    assert grid.replications == 3
    assert [p.plan_id for p in plans] == list(range(8))
    first, last = plans[0], plans[-1]
    # alternatives first, then the axes; the last axis varies fastest
    assert first.label == "pricing=od, tensor_parallel=1, gpu=h100-sxm"
    assert plans[1].columns["set.pools.gpus.gpu"] == "h200"
    assert last.columns == {"alt.pricing": "res", "set.deployments.small.tensor_parallel": 2,
                            "set.pools.gpus.gpu": "h200"}  # fmt: skip
    # fixed first, then the alternative, then the axes
    assert list(first.overrides) == ["horizon.months", "pools.gpus.pricing.usd_per_gpu_hour",
                                     "deployments.small.tensor_parallel", "pools.gpus.gpu"]  # fmt: skip
    assert last.overrides["pools.gpus.pricing"]["kind"] == "reserved"


def test_every_plan_applies_to_a_valid_scenario(scenario):
    for plan in expand(grid_from(GRID, scenario)):
        variant = apply_overrides(scenario, plan.overrides)
        assert variant.horizon.months == 1
        assert variant.pool("gpus").gpu == plan.columns["set.pools.gpus.gpu"]


def test_empty_grid_is_one_plan_as_written(scenario):
    plans = expand(grid_from("", scenario))
    assert len(plans) == 1 and plans[0].overrides == {} and plans[0].label == "base"


def test_bad_paths_give_file_line_and_what_exists(scenario):
    lines = errors_of("deployments.small.tensor_paralel: [1, 2]\nfixed: {horizon.month: 2}\n", scenario)
    assert lines[0].startswith("grid.yaml:1: deployments.small.tensor_paralel: no field "
                               "'deployments.small.tensor_paralel' to set (fields here:")  # fmt: skip
    assert "tensor_parallel" in lines[0]
    assert lines[1].startswith("grid.yaml:2: fixed.horizon.month: no field 'horizon.month'")


def test_unknown_list_item_names_the_known_ones(scenario):
    (line,) = errors_of("deployments.big.dtype: [fp8]\n", scenario)
    assert line == "grid.yaml:1: deployments.big.dtype: no item named 'big' at 'deployments.big' (names: small)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pools.gpus.gpu: h200\n", "grid.yaml:1: pools.gpus.gpu: expected a list of values to sweep (got 'h200')"),
        ("pools.gpus.gpu: []\n", "grid.yaml:1: pools.gpus.gpu: the list of values is empty"),
        ("fixd: {horizon.months: 2}\n", "grid.yaml:1: fixd: unknown key 'fixd' (did you mean 'fixed'?)"),
        ("pricing:\n  - name: a\n    sett: {x: 1}\n",
         "grid.yaml:3: pricing.a.sett: unknown key 'sett' (expected one of: description, name, set)"),
        ("replications: 0\n", "grid.yaml:1: replications: Input should be greater than or equal to 1 (got 0)"),
        ("pools.gpus.gpu: [h200]\nfixed: {pools.gpus.gpu: h100-sxm}\n",
         "grid.yaml:1: pools.gpus.gpu: also set under fixed: (give it in one place)"),
        ("pricing:\n  - {name: a, set: {seed: 1}}\n  - {name: a, set: {seed: 2}}\n",
         "grid.yaml:3: pricing.a.name: duplicate name 'a'"),
        ("pools.gpus.gpu: [h200\n", "grid.yaml:2: (root): not valid YAML"),
    ],
)  # fmt: skip
def test_grid_errors(scenario, text, expected):
    lines = errors_of(text, scenario)
    assert any(line.startswith(expected) for line in lines), lines


def test_a_path_that_exists_only_under_an_alternative_is_accepted(scenario):
    text = """\
pools.gpus.pricing.committed_gpus: [1, 2]
pricing:
  - name: res
    set: {pools.gpus.pricing: {kind: reserved, committed_gpus: 1, term_months: 2, usd_per_gpu_hour: 2.0}}
"""
    assert grid_from(text, scenario).size == 2
    assert errors_of("pools.gpus.pricing.committed_gpus: [1, 2]\n", scenario)  # on-demand has no commitment


def test_invalid_combination_is_not_a_grid_error(scenario):
    """A model that does not fit at that TP is for the sweep to record, not a bad grid."""
    grid = grid_from("deployments.small.model: [llama-3-8b, llama-3-70b]\n", scenario)
    bad = expand(grid)[1]
    with pytest.raises(ScenarioError, match="weights at bf16 take"):
        apply_overrides(scenario, bad.overrides)


def test_load_grid_reads_the_file(tmp_path, scenario):
    path = tmp_path / "g.yaml"
    path.write_text("deployments.small.max_batch_size: [64, 128]\n")
    assert load_grid(path, scenario).axes == {"deployments.small.max_batch_size": [64, 128]}
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_grid(tmp_path / "missing.yaml", scenario)


def test_column_values_keep_numbers_and_strings_else_json():
    assert column_values([1, 2.5]) == [1, 2.5]
    assert column_values(["a", "b"]) == ["a", "b"]
    assert column_values([True, False]) == [True, False]
    assert column_values([1, "auto"]) == ["1", "auto"]
    assert column_values([{"kind": "spot"}, None]) == ['{"kind": "spot"}', "null"]


def test_short_names_tell_paths_apart():
    paths = ["deployments.a.tensor_parallel", "deployments.b.tensor_parallel", "pools.x.gpu"]
    assert short_names(paths) == {"deployments.a.tensor_parallel": "a.tensor_parallel",
                                  "deployments.b.tensor_parallel": "b.tensor_parallel", "pools.x.gpu": "gpu"}  # fmt: skip


def test_overridden_uncertain_inputs_are_dropped(mini):
    mini["uncertainty"] = {
        "pools.gpus.pricing.usd_per_gpu_hour": {"distribution": "normal", "mean": 3.0, "sd": 0.3},
        "workloads.chat.traffic.requests_per_second": {"distribution": "uniform", "low": 1, "high": 3},
    }
    scenario = validate_scenario_data(mini)
    variant = apply_overrides(scenario, {"pools.gpus.pricing": {"kind": "on_demand", "usd_per_gpu_hour": 2.0}})
    assert set(variant.uncertainty) == {"workloads.chat.traffic.requests_per_second"}
    assert without_overridden({"a.b": 1, "a.bc": 2, "a.b.c": 3}, ["a.b"]) == {"a.bc": 2}
