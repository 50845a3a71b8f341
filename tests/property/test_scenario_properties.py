"""Hypothesis: random valid scenarios round-trip; random corruptions give clean errors only."""

from __future__ import annotations

import copy
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.common.errors import ScenarioError
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.paths import scenario_data
from simulator.scenario.yamlio import parse_yaml
from tests.conftest import minimal_scenario_dict

names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
positive = st.floats(min_value=0.01, max_value=1e4, allow_nan=False)

pricing = st.one_of(
    st.builds(lambda p: {"kind": "on_demand", "usd_per_gpu_hour": p}, positive),
    st.builds(lambda p, c, t: {"kind": "reserved", "usd_per_gpu_hour": p, "committed_gpus": c,
                               "term_months": t}, positive, st.integers(0, 64), st.integers(1, 60)),
    st.builds(lambda p, r: {"kind": "spot", "usd_per_gpu_hour": p, "preemptions_per_gpu_day": r},
              positive, st.floats(0, 5)),
    st.builds(lambda c, y: {"kind": "owned", "capex_usd_per_gpu": c, "lifetime_years": y},
              positive, st.floats(0.5, 8)),
)  # fmt: skip
token_dist = st.one_of(
    st.builds(lambda v: {"distribution": "fixed", "value": v}, st.integers(1, 4000)),
    st.builds(lambda m, s: {"distribution": "lognormal", "mean": m, "sigma": s},
              st.floats(1, 4000), st.floats(0, 2)),
    st.builds(lambda m: {"distribution": "exponential", "mean": m}, st.floats(1, 4000)),
    st.builds(lambda lo, w: {"distribution": "uniform", "low": lo, "high": lo + w},
              st.floats(1, 1000), st.floats(0, 1000)),
)  # fmt: skip


@st.composite
def scenarios(draw) -> dict:
    data = minimal_scenario_dict()
    data["name"] = draw(names)
    data["seed"] = draw(st.integers(0, 2**31))
    data["horizon"]["months"] = draw(st.integers(1, 60))
    data["pools"][0]["pricing"] = draw(pricing)
    dep = data["deployments"][0]
    dep["model"] = draw(st.sampled_from(["llama-3-8b", "mistral-7b", "llama-2-7b"]))
    dep["dtype"] = draw(st.sampled_from(["bf16", "fp8", "int8", "int4"]))
    dep["tensor_parallel"] = draw(st.sampled_from([1, 2, 4, 8]))
    dep["max_batch_size"] = draw(st.integers(1, 512))
    wl = data["workloads"][0]
    wl["traffic"]["requests_per_second"] = draw(positive)
    wl["traffic"]["growth_per_month"] = draw(st.floats(-0.5, 0.5))
    wl["prompt_tokens"] = draw(token_dist)
    wl["output_tokens"] = draw(token_dist)
    wl["prefix_cache_hit_rate"] = draw(st.floats(0, 1))
    return data


def to_yaml_text(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_valid_scenarios_round_trip(data):
    first = validate_scenario_data(data)
    text = to_yaml_text(scenario_data(first))
    parsed, lines = parse_yaml(text)
    second = validate_scenario_data(parsed, lines)
    assert second == first


PROBLEM_LINE = re.compile(r"^[^:]+(:\d+)?: \S+: .+$")
junk = st.one_of(st.none(), st.text(max_size=5), st.integers(-10, 10), st.floats(allow_nan=True),
                 st.lists(st.integers(), max_size=2), st.dictionaries(names, st.integers(), max_size=2))  # fmt: skip


def paths_of(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths_of(v, prefix + (i,))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.data())
def test_corruptions_give_clean_errors(data, draw):
    corrupted = copy.deepcopy(data)
    paths = [p for p in paths_of(corrupted) if p]
    path = draw.draw(st.sampled_from(paths))
    parent = corrupted
    for part in path[:-1]:
        parent = parent[part]
    action = draw.draw(st.sampled_from(["replace", "delete", "extra_key"]))
    if action == "replace":
        parent[path[-1]] = draw.draw(junk)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw.draw(names) + "_x"] = 1
    try:
        text = to_yaml_text(corrupted)
        parsed, lines = parse_yaml(text, "x.yaml")
        validate_scenario_data(parsed, lines, "x.yaml")
    except ScenarioError as error:
        assert error.problems
        for line in error.format().splitlines():
            assert PROBLEM_LINE.match(line), line
