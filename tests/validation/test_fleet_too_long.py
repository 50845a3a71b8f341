"""Requests longer than the model's context are refused by the engine; the projection counts them
as unserved with their reason instead of dropping them silently."""

from __future__ import annotations

import pytest

from simulator.catalog import bundled_catalog
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

MM1 = mm1_provider(2.0, 3000)


def test_too_long_prompts_are_unserved_with_their_reason():
    context = bundled_catalog().models["llama-3-8b"].max_context_tokens
    data = minimal_scenario_dict()
    data["training_jobs"] = []
    data["workloads"][0]["prompt_tokens"] = {"distribution": "uniform", "low": 100, "high": 2 * context}
    w = run(validate_scenario_data(data), curve_provider=MM1).summary["workloads"]["chat"]
    share = (2 * context - context) / (2 * context - 100)  # prompts at or past the context limit
    assert w["unserved_too_long_requests"] == pytest.approx(share * w["requests"], rel=0.02)
    assert w["unserved_requests"] >= w["unserved_too_long_requests"] * (1 - 1e-9)
    assert w["requests_served"] + w["unserved_requests"] + w["requests_cache_hits"] == pytest.approx(w["requests"])


def test_requests_within_the_context_are_all_served():
    w = run(validate_scenario_data(minimal_scenario_dict()), curve_provider=MM1).summary["workloads"]["chat"]
    assert w["unserved_too_long_requests"] == 0
