"""The named price cells of the workbook: every price a run's cost is linear in.

Each pool's billed line items (:class:`simulator.economics.pricing.LineItem`) name the price they are paid
at (``price_key``); each becomes a named cell ``<pool>_<price_key>`` (e.g.
``serving_usd_per_gpu_hour``, ``serving_power_usd_per_kwh``). The owned-hardware rate
``<pool>_owned_usd_per_gpu_hour`` is itself a formula of the named capex, lifetime and opex cells,
and so are the owned pool's other per-GPU-hour rates: network (``<pool>_network_usd_per_gpu_hour``
= network capex / (life x hours per year)), support (``<pool>_support_usd_per_gpu_hour`` = capex x
support fraction / hours per year) and the cost of capital (``<pool>_capital_usd_per_gpu_hour`` =
(capex + network capex) / 2 x rate / hours per year), of the named support fraction, cost of
capital and network capex cells; the network capex is an input where the scenario gives it, else
a formula of the capex (the default share of it).
After a hardware refresh each GPU era has its own cells, named with the era's suffix
(``serving_capex_usd_per_gpu_b200_from_2028_06_01``, see :mod:`simulator.economics.refresh`),
and the write-off per retired GPU (``<pool>_refresh_write_off_usd_per_gpu_<gpu>_<date>``) is a
formula of the retiring era's capex and life, the named residual (sale value) and the retired
GPUs' mean age (a constant derived from their purchase dates).
API baseline prices are ``api_usd_per_million_input_tokens`` / ``..._output_tokens``. A
workload's retrieval stage bills under the pseudo-pool ``retrieval:<workload>``: its prices are
``retrieval_<workload>_usd_per_thousand_queries`` and ``retrieval_<workload>_usd_per_hour``;
any other pipeline stage under ``<stage>:<workload>``, its prices
``<stage>_<workload>_usd_per_thousand_calls`` and ``<stage>_<workload>_usd_per_hour``.

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
from simulator.economics.pricing import (
    CAPITAL_KEY,
    DEFAULT_NETWORK_SHARE,
    HOURS_PER_YEAR,
    NETWORK_KEY,
    SUPPORT_KEY,
    capital_usd_per_gpu_hour,
    network_capex_usd_per_gpu,
    network_usd_per_gpu_hour,
    support_usd_per_gpu_hour,
)
from simulator.economics.refresh import (
    WRITE_OFF_KEY,
    Era,
    book_value_usd_per_gpu,
    pool_eras,
    retired_age_years,
    write_off_key,
)
from simulator.economics.stages import is_stage_pool, pool_stage_of
from simulator.scenario.schema import OwnedPricing, Pricing, Scenario

HOURS_PER_YEAR_NAME = "hours_per_year"
OWNED_KEY = "owned_usd_per_gpu_hour"
OWNED_PARTS = ("capex_usd_per_gpu", "lifetime_years", "opex_fraction_per_year")
API_GROUP = "api"
FINANCE_GROUP = "finance"
DISCOUNT_KEY = "discount_rate_per_year"
USD_RATE_KEY = "usd_rate"  # units of the report's currency per US dollar (only when it is not USD)
FISCAL_KEY = "fiscal_year_start_month"
API_KEYS = ("usd_per_million_input_tokens", "usd_per_million_output_tokens")
#: keys of a refresh's residual (sale) value and retired GPUs' mean age: + '_<gpu>_<date>' of
#: its write-off key (the residual's is the cash view's sale key, simulator.economics.cashflow)
RESIDUAL_KEY = "residual_usd_per_gpu"
AGE_KEY = "retired_age_years"
#: formulas of the derived cells: {capex}, {life}, ... stand for the names of their parts' cells,
#: {hours} for the hours_per_year constant
OWNED_FORMULA = "={capex}/({life}*{hours})+{capex}*{opex}/{hours}"
WRITE_OFF_FORMULA = "=({capex}+{network})*MAX(0,1-{age}/{life})-{residual}"
#: the owned pool's other per-GPU-hour rates (simulator.economics.pricing computes them in the
#: same order), and their inputs beyond capex and life
NETWORK_CAPEX_KEY = "network_capex_usd_per_gpu"
SUPPORT_FRACTION_KEY = "support_fraction_per_year"
CAPITAL_RATE_KEY = "cost_of_capital_per_year"
NETWORK_DEFAULT_FORMULA = f"={DEFAULT_NETWORK_SHARE!r}*{{capex}}"
TCO_FORMULAS = {
    NETWORK_KEY: "={network}/({life}*{hours})",
    SUPPORT_KEY: "={capex}*{support}/{hours}",
    CAPITAL_KEY: "=({capex}+{network})/2*{rate}/{hours}",
}
_TCO_RATES = {NETWORK_KEY: network_usd_per_gpu_hour, SUPPORT_KEY: support_usd_per_gpu_hour,
              CAPITAL_KEY: capital_usd_per_gpu_hour}  # fmt: skip

_UNITS = {
    "usd_per_gpu_hour": "$/GPU-hour",
    "overflow_usd_per_gpu_hour": "$/GPU-hour",
    OWNED_KEY: "$/GPU-hour",
    NETWORK_KEY: "$/GPU-hour",
    SUPPORT_KEY: "$/GPU-hour",
    CAPITAL_KEY: "$/GPU-hour",
    "power_usd_per_kwh": "$/kWh",
    "capex_usd_per_gpu": "$ per GPU",
    "lifetime_years": "years",
    "opex_fraction_per_year": "share of capex per year",
    DISCOUNT_KEY: "rate per year",
    USD_RATE_KEY: "per US dollar",
    FISCAL_KEY: "month (1-12)",
    "usd_per_million_input_tokens": "$/1M input tokens",
    "usd_per_million_output_tokens": "$/1M output tokens",
    "usd_per_thousand_queries": "$/1k queries",
    "usd_per_hour": "$/hour",
    WRITE_OFF_KEY: "$ per GPU",
    RESIDUAL_KEY: "$ per GPU",
    AGE_KEY: "years",
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
    ("finance", DISCOUNT_KEY): "discount rate per year for the net present value of the cash flow",
    ("finance", USD_RATE_KEY): "exchange rate: units of the report's currency per US dollar (every cost x it)",
    ("finance", FISCAL_KEY): "month the fiscal year starts (1 = January); FY named by the year it ends in",
    ("retrieval", "usd_per_thousand_queries"): "retrieval price per 1,000 queries",
    ("retrieval", "usd_per_hour"): "retrieval stage price per hour (CPU instances, vector DB)",
    ("stage", "usd_per_thousand_calls"): "pipeline stage price per 1,000 calls (moderation, tool calls)",
    ("stage", "usd_per_hour"): "pipeline stage price per hour while the workload is served",
    (
        "owned",
        WRITE_OFF_KEY,
    ): "written off per retired GPU = capex x MAX(0, 1 - mean age/life) - residual",
    ("owned", RESIDUAL_KEY): "residual (sale) value per retired GPU",
    ("owned", AGE_KEY): "mean age of the retired GPUs (from purchase dates; derived, not an input)",
    ("owned", "colocation_usd_per_kw_month"): "colocation per kW of IT load (GPU TDP + host) per month",
    ("owned", NETWORK_CAPEX_KEY): "cluster network capex per GPU (depreciated with it)",
    ("owned", SUPPORT_FRACTION_KEY): "hardware support per year, share of capex",
    ("owned", "staff_usd_per_year"): "operations staff per year",
    ("owned", CAPITAL_RATE_KEY): "cost of capital per year on the average book value (half of capex + network)",
    ("owned", NETWORK_KEY): "network per owned GPU-hour = network capex/(life x hours/yr)",
    ("owned", SUPPORT_KEY): "support per owned GPU-hour = capex x support fraction/hours/yr",
    ("owned", CAPITAL_KEY): "cost of capital per owned GPU-hour = (capex + network capex)/2 x rate/hours/yr",
}
#: label of the network capex cell where the scenario gives none (a formula of the capex)
NETWORK_DEFAULT_LABEL = (f"cluster network capex per GPU (depreciated with it) = default, "
                         f"{DEFAULT_NETWORK_SHARE:.0%} of capex")  # fmt: skip


def base_key(key: str) -> str:
    """The pricing field a price key names, without its date or hardware-era suffix
    ('usd_per_gpu_hour_b200_from_2028_06_01' -> 'usd_per_gpu_hour')."""
    known = sorted(_UNITS, key=len, reverse=True)
    return next((k for k in known if key == k or key.startswith(k + "_")), key)


def _label(kind: str, key: str, era_note: str, label: str = "") -> str:
    label = label or _LABELS.get((kind, base_key(key)), key)
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
    editable: bool = True  # False: a figure derived from the run (a date difference), not a price


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

    def fx(self, run: str) -> str:
        """'*<exchange rate name>' to append to a cost formula of run ``run`` ('' in US dollars)."""
        return f"*{self.name_for(run, FINANCE_GROUP, USD_RATE_KEY)}" if self.has(run, FINANCE_GROUP, USD_RATE_KEY) else ""


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
    formula: tuple[str, dict[str, str]] | None = None  # template, its {part}: price key
    depends: tuple[str, ...] = ()  # decisions of the cells its formula uses (and theirs)
    editable: bool = True
    label: str = ""  # instead of the key's usual label


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
        candidates += (_pool_candidates(run) + _retrieval_candidates(run) + _api_candidates(run)
                       + _finance_candidates(run))
    book = PriceBook()
    if any(c.formula and "{hours}" in c.formula[0] for c in candidates):
        book.cells.append(PriceCell(HOURS_PER_YEAR_NAME, "constants", HOURS_PER_YEAR_NAME,
                                    "hours in a year (365.25 days)", "hours", HOURS_PER_YEAR,
                                    tuple(r.label for r in runs)))  # fmt: skip
    shared = _shared_decisions(candidates)
    taken: set[str] = {HOURS_PER_YEAR_NAME}
    by_name: dict[str, PriceCell] = {}
    formulas: dict[str, tuple[str, dict[str, str]]] = {}
    for c in candidates:
        base = excel_name(f"{c.group}_{c.key}")
        wanted = base if shared[c.decision] else excel_name(f"{base}_{c.run}")
        if wanted not in by_name:
            wanted = _unique(wanted, taken)
            by_name[wanted] = PriceCell(wanted, c.group, c.key, _label(c.kind, c.key, c.era_note, c.label),
                                        _UNITS.get(base_key(c.key), "$"), c.value, (),
                                        editable=c.editable)  # fmt: skip
            if c.formula is not None:
                formulas[wanted] = c.formula
        cell = by_name[wanted]
        by_name[wanted] = PriceCell(**{**cell.__dict__, "runs": cell.runs + (c.run,)})
        book.names[(c.run, c.group, c.key)] = wanted
    groups = list(dict.fromkeys(c.group for c in by_name.values()))
    ordered = sorted(by_name.values(), key=lambda c: groups.index(c.group))  # stable: by pool
    book.cells += [_with_formula(cell, formulas.get(cell.name), book) for cell in ordered]
    return book


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out.lower() in taken:
        out, i = f"{name}_{i}", i + 1
    taken.add(out.lower())
    return out


def _shared_decisions(candidates: list[_Candidate]) -> dict[str, bool]:
    """Per decision, whether all its runs share one cell: they agree on its value, and on the
    cells its formula uses (a formula shared by runs must name cells they share)."""
    identities: dict[str, set[tuple[Any, ...]]] = {}
    depends: dict[str, set[str]] = {}
    for c in candidates:
        identities.setdefault(c.decision, set()).add(c.identity)
        depends.setdefault(c.decision, set()).update(c.depends)
    agree = {decision: len(ids) == 1 for decision, ids in identities.items()}
    return {d: ok and all(agree.get(dep, True) for dep in depends[d]) for d, ok in agree.items()}


def _pool_candidates(run: PricedRun) -> list[_Candidate]:
    out = []
    billing = run.billing
    for pool in run.scenario.pools:
        rows = (
            billing[(billing["pool"] == pool.name) & (billing["quantity"] != 0)]
            if len(billing)
            else billing
        )
        keys = (
            dict(zip(rows["price_key"], rows["unit_price_usd"], strict=True)) if len(rows) else {}
        )
        eras = pool_eras(run.scenario, pool, 0)
        parted: set[int] = set()  # eras whose capex, life and opex cells are candidates already
        tco_parted: set[int] = set()  # eras whose support, capital and network cells are too
        for key, price in keys.items():
            rate_era = next((e for e in eras if key == OWNED_KEY + e.suffix), None)
            retiring = next((e for e in eras if _writes_off(e, key)), None)
            tco = next(((e, k) for e in eras for k in TCO_FORMULAS if key == k + e.suffix), None)
            if rate_era is not None and _owned_formula_holds(rate_era.pool.pricing, price):
                out += _owned_parts(run, pool.name, rate_era, parted)
                out.append(_owned_rate(run, pool.name, rate_era, key, float(price)))
            elif tco is not None and _tco_formula_holds(tco[0].pool.pricing, tco[1], price):
                out += _owned_parts(run, pool.name, tco[0], parted)
                out += _tco_parts(run, pool.name, tco[0], tco_parted)
                out.append(_tco_rate(run, pool.name, tco[0], tco[1], float(price)))
            elif retiring is not None and (age := _write_off_age(retiring, price)) is not None:
                out += _owned_parts(run, pool.name, retiring, parted)
                out += _write_off(run, pool.name, retiring, key, float(price), age)
            else:
                kind, note = _era_of_key(run.scenario, pool, key)
                identity = (kind, float(price))
                out.append(_Candidate(run.label, pool.name, key, kind, float(price),
                                      f"{pool.name}\0{key}", identity, note))  # fmt: skip
    return out


def _writes_off(era: Era, key: str) -> bool:
    """Whether ``key`` is the write-off at the refresh ending ``era``."""
    return era.next_step is not None and key == write_off_key(era)


def _era_note(era: Era) -> str:
    return "" if era.step is None else f"{era.pool.gpu} from {era.start}"


def _owned_decision(pool: str, era: Era) -> str:
    return f"{pool}\0owned{era.suffix}"


def _owned_identity(era: Era) -> tuple[float, ...]:
    return tuple(float(getattr(era.pool.pricing, p)) for p in OWNED_PARTS)


def _owned_parts(run: PricedRun, pool: str, era: Era, parted: set[int]) -> list[_Candidate]:
    """The capex, lifetime and opex cells of an owned era (once per era)."""
    if era.index in parted:
        return []
    parted.add(era.index)
    parts = _owned_identity(era)
    decision, note = _owned_decision(pool, era), _era_note(era)
    return [_Candidate(run.label, pool, part + era.suffix, "owned", value, decision, parts, note)
            for part, value in zip(OWNED_PARTS, parts, strict=True)]  # fmt: skip


def _owned_rate(run: PricedRun, pool: str, era: Era, key: str, price: float) -> _Candidate:
    """The owned rate of an era: a formula of the era's capex, lifetime and opex cells."""
    capex, life, opex = (part + era.suffix for part in OWNED_PARTS)
    formula = (OWNED_FORMULA, {"capex": capex, "life": life, "opex": opex})
    return _Candidate(run.label, pool, key, "owned", price, _owned_decision(pool, era),
                      _owned_identity(era), _era_note(era), formula)  # fmt: skip


def _tco_decisions(pool: str, era: Era) -> dict[str, str]:
    """Decision keys of an owned era's support fraction, cost of capital and network capex."""
    return {k: f"{pool}\0{k}{era.suffix}" for k in (SUPPORT_FRACTION_KEY, CAPITAL_RATE_KEY, NETWORK_CAPEX_KEY)}


def _tco_parts(run: PricedRun, pool: str, era: Era, parted: set[int]) -> list[_Candidate]:
    """The support fraction, cost of capital and network capex cells of an owned era (once per
    era): inputs, but for a network capex the scenario leaves to its default, a formula of the
    era's capex."""
    if era.index in parted:
        return []
    parted.add(era.index)
    pricing = era.pool.pricing
    assert isinstance(pricing, OwnedPricing)
    decisions, note = _tco_decisions(pool, era), _era_note(era)
    out = [_Candidate(run.label, pool, key + era.suffix, "owned", float(getattr(pricing, key)), decisions[key],
                      (float(getattr(pricing, key)),), note)
           for key in (SUPPORT_FRACTION_KEY, CAPITAL_RATE_KEY)]  # fmt: skip
    network_key, network_decision = NETWORK_CAPEX_KEY + era.suffix, decisions[NETWORK_CAPEX_KEY]
    if pricing.network_capex_usd_per_gpu is not None:
        value = float(pricing.network_capex_usd_per_gpu)
        out.append(_Candidate(run.label, pool, network_key, "owned", value, network_decision, ("input", value), note))
    else:
        capex = float(pricing.capex_usd_per_gpu)
        formula = (NETWORK_DEFAULT_FORMULA, {"capex": "capex_usd_per_gpu" + era.suffix})
        out.append(_Candidate(run.label, pool, network_key, "owned", DEFAULT_NETWORK_SHARE * capex, network_decision,
                              ("default", capex), note, formula, (_owned_decision(pool, era),),
                              label=NETWORK_DEFAULT_LABEL))  # fmt: skip
    return out


def _tco_rate(run: PricedRun, pool: str, era: Era, rate_key: str, price: float) -> _Candidate:
    """An owned era's network, support or cost-of-capital rate per GPU-hour: a formula of the
    era's capex, life, support fraction, cost of capital and network capex cells."""
    decisions = _tco_decisions(pool, era)
    parts = {"capex": "capex_usd_per_gpu", "life": "lifetime_years", "support": SUPPORT_FRACTION_KEY,
             "rate": CAPITAL_RATE_KEY, "network": NETWORK_CAPEX_KEY}  # fmt: skip
    template = TCO_FORMULAS[rate_key]
    used = {part: key + era.suffix for part, key in parts.items() if "{" + part + "}" in template}
    # every rate uses the capex or life (the network default the capex): the owned decision
    depends = (_owned_decision(pool, era), *(decisions[parts[p]] for p in used if parts[p] in decisions))
    key = rate_key + era.suffix
    return _Candidate(run.label, pool, key, "owned", price, f"{pool}\0{key}", (price,), _era_note(era),
                      (template, used), depends)  # fmt: skip


def _tco_formula_holds(pricing: Pricing, rate_key: str, price: float) -> bool:
    """Whether the workbook's formula of the rate gives the billed price (to rounding)."""
    if not isinstance(pricing, OwnedPricing):
        return False
    rebuilt = _TCO_RATES[rate_key](pricing)
    return abs(rebuilt - price) <= 1e-12 * max(1.0, abs(price))


def _write_off(
    run: PricedRun, pool: str, era: Era, key: str, price: float, age: float
) -> list[_Candidate]:
    """The write-off per GPU at the refresh ending ``era``: the residual (an input), the mean age
    (derived from dates) and the write-off itself, a formula of them and the era's capex, life.
    Runs share the residual (or the age) where they agree on it, the write-off where they share
    every cell it uses."""
    assert era.next_step is not None
    tail = key.removeprefix(WRITE_OFF_KEY)
    residual = float(era.next_step.residual_usd_per_gpu)
    note = f"{era.pool.gpu} retired {era.next_step.from_date}"
    residual_key, age_key = RESIDUAL_KEY + tail, AGE_KEY + tail
    decisions = (_owned_decision(pool, era), f"{pool}\0{residual_key}", f"{pool}\0{age_key}",
                 _tco_decisions(pool, era)[NETWORK_CAPEX_KEY])
    formula = (WRITE_OFF_FORMULA, {"capex": "capex_usd_per_gpu" + era.suffix,
                                   "life": "lifetime_years" + era.suffix,
                                   "network": NETWORK_CAPEX_KEY + era.suffix,
                                   "residual": residual_key, "age": age_key})  # fmt: skip
    assert isinstance(era.pool.pricing, OwnedPricing)
    network = network_capex_usd_per_gpu(era.pool.pricing)
    return [
        _Candidate(run.label, pool, residual_key, "owned", residual, decisions[1], (residual,), note),
        _Candidate(run.label, pool, age_key, "owned", age, decisions[2], (age,), note, editable=False),
        _Candidate(run.label, pool, key, "owned", price, f"{pool}\0{key}",
                   _owned_identity(era) + (residual, age, network), note, formula, decisions),
    ]  # fmt: skip


def _write_off_age(era: Era, price: float) -> float | None:
    """Mean age (years) of the GPUs written off at the refresh ending ``era``, when the workbook's
    formula then gives the billed ``price``: from their purchase dates, else (purchases made
    by default, dated by simulated demand) solved from the price."""
    pricing = era.pool.pricing
    if era.next_step is None or not isinstance(pricing, OwnedPricing):
        return None
    residual = era.next_step.residual_usd_per_gpu
    age = retired_age_years(era)
    capital = pricing.capex_usd_per_gpu + network_capex_usd_per_gpu(pricing)
    if age is None and capital > 0:
        age = pricing.lifetime_years * (1.0 - (price + residual) / capital)
    if age is None:
        return None
    rebuilt = book_value_usd_per_gpu(pricing, age) - residual
    return age if abs(rebuilt - price) <= 1e-9 * max(1.0, abs(price)) else None


def _era_of_key(scenario: Scenario, pool, key: str) -> tuple[str, str]:
    """Pricing kind and era note of a pool's price key (the GPU era whose suffix it ends with)."""
    eras = pool_eras(scenario, pool, 0)
    for era in eras:
        if _writes_off(era, key):
            return "owned", f"{era.pool.gpu} retired {era.next_step.from_date}"
    for era in reversed(eras):
        if era.suffix and key.endswith(era.suffix):
            return era.pool.pricing.kind, f"{era.pool.gpu} from {era.start}"
    return pool.pricing.kind, ""


def _retrieval_candidates(run: PricedRun) -> list[_Candidate]:
    """Prices of the pipeline stages' billed lines (pseudo-pools ``<stage>:<workload>``: kind
    'retrieval' for retrieval stages, 'stage' for the others)."""
    billing = run.billing
    if not len(billing):
        return []
    rows = billing[billing["pool"].map(is_stage_pool) & (billing["quantity"] != 0)]
    out = []
    for (group, key), price in rows.groupby(["pool", "price_key"], sort=False)["unit_price_usd"].first().items():
        stage = pool_stage_of(run.scenario, str(group))
        kind = "retrieval" if stage is None or stage.kind == "retrieval" else "stage"
        out.append(_Candidate(run.label, str(group), str(key), kind, float(price),
                              f"{group}\0{key}", (float(price),)))  # fmt: skip
    return out


def _finance_candidates(run: PricedRun) -> list[_Candidate]:
    """The discount rate of the cash flow's net present value (group 'finance')."""
    rate = float(run.scenario.discount_rate_per_year)
    out = [_Candidate(run.label, FINANCE_GROUP, DISCOUNT_KEY, "finance", rate, f"{FINANCE_GROUP}\0{DISCOUNT_KEY}",
                      (rate,))]  # fmt: skip
    month = float(run.scenario.fiscal_year_start_month)
    out.append(_Candidate(run.label, FINANCE_GROUP, FISCAL_KEY, "finance", month, f"{FINANCE_GROUP}\0{FISCAL_KEY}",
                          (month,)))  # fmt: skip
    currency = run.scenario.currency
    if currency.code != "USD":
        out.append(_Candidate(run.label, FINANCE_GROUP, USD_RATE_KEY, "finance", float(currency.usd_rate),
                              f"{FINANCE_GROUP}\0{USD_RATE_KEY}", (float(currency.usd_rate),)))  # fmt: skip
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


def _owned_formula_holds(pricing: Pricing, price: float) -> bool:
    if not isinstance(pricing, OwnedPricing):
        return False
    rebuilt = owned_usd_per_gpu_hour(
        pricing.capex_usd_per_gpu, pricing.lifetime_years, pricing.opex_fraction_per_year
    )
    return abs(rebuilt - price) <= 1e-12 * max(1.0, abs(price))


def _with_formula(
    cell: PriceCell, formula: tuple[str, dict[str, str]] | None, book: PriceBook
) -> PriceCell:
    """A derived cell (owned rate, refresh write-off) as a formula of its run's named cells."""
    if formula is None:
        return cell
    template, keys = formula
    run = cell.runs[0]
    names = {part: book.name_for(run, cell.group, key) for part, key in keys.items()}
    formula_text = template.format(hours=HOURS_PER_YEAR_NAME, **names)
    return PriceCell(**{**cell.__dict__, "formula": formula_text})
