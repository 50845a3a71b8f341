"""The buy-instead API baseline: bundled list prices by name, per workload, cache hits unbilled."""

from __future__ import annotations

import pytest

from simulator.catalog import bundled_api_prices
from simulator.common.errors import ScenarioError
from simulator.economics.api import api_price
from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

MM1 = mm1_provider(2.0, 3000)


def test_every_bundled_price_has_a_date_and_a_source():
    prices = bundled_api_prices()
    assert {"together-llama-3.1-8b", "together-llama-3.1-70b", "deepseek-v3"} <= set(prices)
    for p in prices.values():
        assert p.source.startswith("https://") and len(p.date) == 10
        assert 0 < p.usd_per_million_input_tokens < 20 and 0 < p.usd_per_million_output_tokens < 20


def test_provider_global_and_per_workload():
    data = minimal_scenario_dict()
    data["api_baseline"] = {"provider": "together-llama-3.1-70b"}
    s = validate_scenario_data(data)
    price = api_price(s, s.workloads[0])
    assert (price.usd_per_million_input_tokens, price.usd_per_million_output_tokens) == (0.88, 0.88)
    assert "together.ai" in price.source
    data["workloads"][0]["api_baseline"] = {"usd_per_million_input_tokens": 0.1,
                                            "usd_per_million_output_tokens": 0.3}  # fmt: skip
    s = validate_scenario_data(data)
    price = api_price(s, s.workloads[0])
    assert (price.usd_per_million_input_tokens, price.usd_per_million_output_tokens, price.source) == (0.1, 0.3, "explicit")


@pytest.mark.parametrize("baseline, message", [
    ({"provider": "togethr-llama-3.1-70b"}, "did you mean 'together-llama-3.1-70b'"),
    ({"provider": "groq-llama-3.1-8b", "usd_per_million_input_tokens": 1.0}, "not both"),
    ({"usd_per_million_input_tokens": 1.0}, "give provider, or both"),
])  # fmt: skip
def test_bad_baselines_are_clear_errors(baseline, message):
    data = minimal_scenario_dict()
    data["api_baseline"] = baseline
    with pytest.raises(ScenarioError, match=message):
        validate_scenario_data(data)


def test_response_cache_hits_are_not_billed_by_the_api():
    data = minimal_scenario_dict()
    data["api_baseline"] = {"usd_per_million_input_tokens": 1.0, "usd_per_million_output_tokens": 2.0}
    data["workloads"][0]["response_cache_hit_rate"] = 0.4
    w = run(validate_scenario_data(data), curve_provider=MM1).summary["workloads"]["chat"]
    reaching = w["requests_served"] + w["unserved_requests"]
    assert w["requests_cache_hits"] == pytest.approx(0.4 * w["requests"], rel=1e-9)
    assert w["api_baseline_cost_usd"] == pytest.approx(reaching * (500 * 1.0 + 100 * 2.0) / 1e6, rel=1e-9)
