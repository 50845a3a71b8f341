"""The buy-instead baseline: what a workload's traffic would cost on a hosted API.

A workload's ``api_baseline`` (else the scenario's) names a bundled public list price
(``provider``) or gives explicit prices. The baseline bills every request that would reach the
API: response-cache hits are answered by the user's own cache whichever way the model is served,
so they are not billed.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.catalog import bundled_api_prices
from simulator.scenario.schema import ApiBaseline, Scenario, Workload


@dataclass(frozen=True)
class ApiPriceUsed:
    """The API prices a workload is compared with, and where they come from."""

    usd_per_million_input_tokens: float
    usd_per_million_output_tokens: float
    source: str  # "explicit", or the bundled entry's name, provider, model, date and URL


def baseline_of(scenario: Scenario, workload: Workload) -> ApiBaseline | None:
    """The workload's own baseline, else the scenario's (None: no comparison)."""
    return workload.api_baseline or scenario.api_baseline


def api_price(scenario: Scenario, workload: Workload) -> ApiPriceUsed | None:
    """The resolved API prices for ``workload`` (None: no comparison)."""
    baseline = baseline_of(scenario, workload)
    return None if baseline is None else resolve_baseline(baseline)


def resolve_baseline(baseline: ApiBaseline) -> ApiPriceUsed:
    """Prices of a baseline; KeyError for an unknown provider name (validation reports it)."""
    if baseline.provider is None:
        assert baseline.usd_per_million_input_tokens is not None
        assert baseline.usd_per_million_output_tokens is not None
        return ApiPriceUsed(baseline.usd_per_million_input_tokens,
                            baseline.usd_per_million_output_tokens, "explicit")  # fmt: skip
    prices = bundled_api_prices()
    if baseline.provider not in prices:
        raise KeyError(f"unknown API price {baseline.provider!r} (known: {', '.join(prices)})")
    entry = prices[baseline.provider]
    return ApiPriceUsed(entry.usd_per_million_input_tokens, entry.usd_per_million_output_tokens,
                        f"{entry.name}: {entry.provider} {entry.model}, list price of {entry.date}, "
                        f"{entry.source}")  # fmt: skip


def api_group(workload: Workload) -> str:
    """The workbook's price group of a workload's baseline: its own, or the scenario's 'api'."""
    return f"api:{workload.name}" if workload.api_baseline is not None else "api"


def baseline_cost_usd(price: ApiPriceUsed, input_tokens: float, output_tokens: float) -> float:
    """API cost of the given tokens."""
    return (input_tokens * price.usd_per_million_input_tokens
            + output_tokens * price.usd_per_million_output_tokens) / 1e6  # fmt: skip
