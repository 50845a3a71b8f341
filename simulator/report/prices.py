"""The named price cells of the workbook: every price a run's cost is linear in.

Each pool's billed line items (:class:`simulator.economics.pricing.LineItem`) name the price they are paid
at (``price_key``); each becomes a named cell ``<pool>_<price_key>`` (e.g.
``serving_usd_per_gpu_hour``, ``serving_power_usd_per_kwh``). The owned-hardware rate
``<pool>_owned_usd_per_gpu_hour`` is itself a formula of the named capex, lifetime and opex cells.
API baseline prices are ``api_usd_per_million_input_tokens`` / ``..._output_tokens``. A
workload's retrieval stage bills under the pseudo-pool ``retrieval:<workload>``: its prices are
``retrieval_<workload>_usd_per_thousand_queries`` and ``retrieval_<workload>_usd_per_hour``.

Where runs (plans, scenario files) use different values for the same name, each run gets its own
cell, the name suffixed by the run label (``serving_usd_per_gpu_hour_owned_hardware``); where
they agree, one cell serves all, so changing it changes every plan that uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from simulator.economics.api import api_group, resolve_baseline
from simulator.economics.pricing import HOURS_PER_YEAR
from simulator.economics.refresh import WRITE_OFF_KEY, pool_eras, write_off_key
from simulator.economics.retrieval import is_retrieval_pool
from simulator.scenario.schema import OwnedPricing, Scenario

HOURS_PER_YEAR_NAME = "hours_per_year"
OWNED_KEY = "owned_usd_per_gpu_hour"
OWNED_PARTS = ("capex_usd_per_gpu", "lifetime_years", "opex_fraction_per_year")
API_GROUP = "api"
API_KEYS = ("usd_per_million_input_tokens", "usd_per_million_output_tokens")

_UNITS = {
    "usd_per_gpu_hour": "$/GPU-hour",
    "overflow_usd_per_gpu_hour": "$/GPU-hour",
    OWNED_KEY: "$/GPU-hour",
    "power_usd_per_kwh": "$/kWh",
    "capex_usd_per_gpu": "$ per GPU",
    "lifetime_years": "years",
    "opex_fraction_per_year": "share of capex per year",
    "usd_per_million_input_tokens": "$/1M input tokens",
    "usd_per_million_output_tokens": "$/1M output tokens",
    "usd_per_thousand_queries": "$/1k queries",
    "usd_per_hour": "$/hour",
    WRITE_OFF_KEY: "$ per GPU",
    "colocation_usd_per_kw_month": "$/kW-month",
    "network_capex_usd_per_gpu": "$ per GPU",
    "support_fraction_per_year": "share of capex per year",
    "staff_usd_per_year": "$/year",
    "cost_of_capital_per_year": "rate per year",
}
_LABELS = {
    ("on_demand", "usd_per_gpu_hour"): "on-demand price",
    ("spot", "usd_per_gpu_hour"): "spot price",
    ("reserved", "usd_per_gpu_hour"): "committed (reserved) price",
    ("reserved", "overflow_usd_per_gpu_hour"): "overflow price beyond the commitment",
    ("owned", "overflow_usd_per_gpu_hour"): "overflow price beyond the owned GPUs",
    (
        "owned",
        OWNED_KEY,
    ): "owned cost per GPU-hour = capex/(life x hours/yr) + capex x opex/hours/yr",
    ("owned", "power_usd_per_kwh"): "electricity price",
    ("owned", "capex_usd_per_gpu"): "capex per GPU",
    ("owned", "lifetime_years"): "depreciation life",
    ("owned", "opex_fraction_per_year"): "operations overhead per year",
    ("api", "usd_per_million_input_tokens"): "API baseline price, input tokens",
    ("api", "usd_per_million_output_tokens"): "API baseline price, output tokens",
    ("retrieval", "usd_per_thousand_queries"): "retrieval price per 1,000 queries",
    ("retrieval", "usd_per_hour"): "retrieval stage price per hour (CPU instances, vector DB)",
    ("owned", WRITE_OFF_KEY): "book value less residual per GPU, written off at the refresh",
    ("owned", "colocation_usd_per_kw_month"): "colocation per kW of IT load (GPU TDP + host) per month",
    ("owned", "network_capex_usd_per_gpu"): "cluster network capex per GPU (depreciated with it)",
    ("owned", "support_fraction_per_year"): "hardware support per year, share of capex",
    ("owned", "staff_usd_per_year"): "operations staff per year",
    ("owned", "cost_of_capital_per_year"): "cost of capital on the average book value (half the capex)",
}


def base_key(key: str) -> str:
    """The pricing field a price key names, without its date or hardware-era suffix
    ('usd_per_gpu_hour_b200_from_2028_06_01' -> 'usd_per_gpu_hour')."""
    known = sorted(_UNITS, key=len, reverse=True)
    return next((k for k in known if key == k or key.startswith(k + "_")), key)


def _label(kind: str, key: str, era_note: str) -> str:
    label = _LABELS.get((kind, base_key(key)), key)
    suffix = key.removeprefix(base_key(key))
    dated = re.sub(r"(\d{4})_(\d{2})_(\d{2})", r"\1-\2-\3", suffix.strip("_")).replace("_", " ")
    return f"{label} ({era_note or dated})" if suffix else label


@dataclass(frozen=True)
class PriceCell:
    """One named cell: a price (or a part of one) and the runs that use it."""

    name: str
    group: str  # pool name, "api", or "constants"
    key: str
    label: str
    unit: str
    value: float
    runs: tuple[str, ...]
    formula: str | None = None  # Excel formula over other names (the value is its result)


@dataclass
class PriceBook:
    """Every named price cell, and which name each run's (group, key) uses."""

    cells: list[PriceCell] = field(default_factory=list)
    names: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def name_for(self, run: str, group: str, key: str) -> str:
        """The defined name run ``run`` uses for ``key`` of ``group`` (a pool or 'api')."""
        return self.names[(run, group, key)]

    def has(self, run: str, group: str, key: str) -> bool:
        return (run, group, key) in self.names


@dataclass(frozen=True)
class PricedRun:
    """What the price book needs of one run: its label, plan-applied scenario and billing."""

    label: str
    scenario: Scenario
    billing: pd.DataFrame


@dataclass(frozen=True)
class _Candidate:
    run: str
    group: str
    key: str
    kind: str
    value: float
    decision: str  # candidates with the same decision key share names or are all suffixed
    identity: tuple[Any, ...]
    era_note: str = ""  # 'b200 from 2028-06-01' for the prices of a refreshed pool's later GPUs


def excel_name(text: str) -> str:
    """``text`` made a valid Excel defined name (letters, digits, _ and .; not a cell reference)."""
    name = re.sub(r"[^A-Za-z0-9_.]", "_", text)
    if not re.match(r"[A-Za-z_]", name):
        name = "_" + name
    if re.fullmatch(r"[A-Za-z]{1,3}[0-9]+", name) or re.fullmatch(
        r"[RrCc][0-9]*([RrCc][0-9]*)?", name
    ):
        name = "_" + name
    return name[:250]


def build_price_book(runs: list[PricedRun]) -> PriceBook:
    """Named cells for every price the runs' billing uses, plus the API baseline prices."""
    candidates: list[_Candidate] = []
    for run in runs:
        candidates += _pool_candidates(run) + _retrieval_candidates(run) + _api_candidates(run)
    book = PriceBook()
    if any(c.key == OWNED_KEY for c in candidates):
        book.cells.append(PriceCell(HOURS_PER_YEAR_NAME, "constants", HOURS_PER_YEAR_NAME,
                                    "hours in a year (365.25 days)", "hours", HOURS_PER_YEAR,
                                    tuple(r.label for r in runs)))  # fmt: skip
    shared = _shared_decisions(candidates)
    taken: set[str] = {HOURS_PER_YEAR_NAME}
    by_name: dict[str, PriceCell] = {}
    for c in candidates:
        base = excel_name(f"{c.group}_{c.key}")
        wanted = base if shared[c.decision] else excel_name(f"{base}_{c.run}")
        if wanted not in by_name:
            wanted = _unique(wanted, taken)
            by_name[wanted] = PriceCell(wanted, c.group, c.key, _label(c.kind, c.key, c.era_note),
                                        _UNITS.get(base_key(c.key), "$"), c.value, ())  # fmt: skip
        cell = by_name[wanted]
        by_name[wanted] = PriceCell(**{**cell.__dict__, "runs": cell.runs + (c.run,)})
        book.names[(c.run, c.group, c.key)] = wanted
    groups = list(dict.fromkeys(c.group for c in by_name.values()))
    ordered = sorted(by_name.values(), key=lambda c: groups.index(c.group))  # stable: by pool
    book.cells += [_with_formula(cell, book) for cell in ordered]
    return book


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out.lower() in taken:
        out, i = f"{name}_{i}", i + 1
    taken.add(out.lower())
    return out


def _shared_decisions(candidates: list[_Candidate]) -> dict[str, bool]:
    identities: dict[str, set[tuple[Any, ...]]] = {}
    for c in candidates:
        identities.setdefault(c.decision, set()).add(c.identity)
    return {decision: len(ids) == 1 for decision, ids in identities.items()}


def _pool_candidates(run: PricedRun) -> list[_Candidate]:
    out = []
    billing = run.billing
    for pool in run.scenario.pools:
        pricing = pool.pricing
        rows = (
            billing[(billing["pool"] == pool.name) & (billing["quantity"] != 0)]
            if len(billing)
            else billing
        )
        keys = (
            dict(zip(rows["price_key"], rows["unit_price_usd"], strict=True)) if len(rows) else {}
        )
        for key, price in keys.items():
            if (
                key == OWNED_KEY
                and isinstance(pricing, OwnedPricing)
                and _owned_formula_holds(pricing, price)
            ):
                parts = tuple(float(getattr(pricing, p)) for p in OWNED_PARTS)
                decision = f"{pool.name}\0owned"
                for part, value in zip(OWNED_PARTS, parts, strict=True):
                    out.append(
                        _Candidate(run.label, pool.name, part, "owned", value, decision, parts)
                    )
                out.append(
                    _Candidate(run.label, pool.name, key, "owned", float(price), decision, parts)
                )
            else:
                kind, note = _era_of_key(run.scenario, pool, key)
                identity = (kind, float(price))
                out.append(_Candidate(run.label, pool.name, key, kind, float(price),
                                      f"{pool.name}\0{key}", identity, note))  # fmt: skip
    return out


def _era_of_key(scenario: Scenario, pool, key: str) -> tuple[str, str]:
    """Pricing kind and era note of a pool's price key (the GPU era whose suffix it ends with)."""
    eras = pool_eras(scenario, pool, 0)
    for era in eras:
        if era.next_step is not None and key == write_off_key(era):
            return "owned", f"{era.pool.gpu} retired {era.next_step.from_date}"
    for era in reversed(eras):
        if era.suffix and key.endswith(era.suffix):
            return era.pool.pricing.kind, f"{era.pool.gpu} from {era.start}"
    return pool.pricing.kind, ""


def _retrieval_candidates(run: PricedRun) -> list[_Candidate]:
    """Prices of the retrieval stages' billed lines (pseudo-pools ``retrieval:<workload>``)."""
    billing = run.billing
    if not len(billing):
        return []
    rows = billing[billing["pool"].map(is_retrieval_pool) & (billing["quantity"] != 0)]
    out = []
    for (group, key), price in rows.groupby(["pool", "price_key"], sort=False)["unit_price_usd"].first().items():
        out.append(_Candidate(run.label, str(group), str(key), "retrieval", float(price),
                              f"{group}\0{key}", (float(price),)))  # fmt: skip
    return out


def _api_candidates(run: PricedRun) -> list[_Candidate]:
    """The scenario's API prices (group 'api') and each workload's own (group 'api:<name>')."""
    groups = [(API_GROUP, run.scenario.api_baseline)]
    groups += [(api_group(w), w.api_baseline) for w in run.scenario.workloads if w.api_baseline is not None]
    out = []
    for group, baseline in groups:
        if baseline is None:
            continue
        price = resolve_baseline(baseline)
        for key in API_KEYS:
            value = float(getattr(price, key))
            out.append(_Candidate(run.label, group, key, "api", value, f"{group}\0{key}", (value,)))
    return out


def owned_usd_per_gpu_hour(capex: float, lifetime_years: float, opex_fraction: float) -> float:
    """The owned rate as the workbook's formula computes it (see simulator.economics.pricing)."""
    return capex / (lifetime_years * HOURS_PER_YEAR) + capex * opex_fraction / HOURS_PER_YEAR


def _owned_formula_holds(pricing: OwnedPricing, price: float) -> bool:
    rebuilt = owned_usd_per_gpu_hour(
        pricing.capex_usd_per_gpu, pricing.lifetime_years, pricing.opex_fraction_per_year
    )
    return abs(rebuilt - price) <= 1e-12 * max(1.0, abs(price))


def _with_formula(cell: PriceCell, book: PriceBook) -> PriceCell:
    """The owned rate cell as a formula of the capex, lifetime and opex cells of its run."""
    if cell.key != OWNED_KEY:
        return cell
    run = cell.runs[0]
    capex, life, opex = (book.name_for(run, cell.group, part) for part in OWNED_PARTS)
    formula = f"={capex}/({life}*{HOURS_PER_YEAR_NAME})+{capex}*{opex}/{HOURS_PER_YEAR_NAME}"
    return PriceCell(**{**cell.__dict__, "formula": formula})
