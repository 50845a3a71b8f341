"""The FOCUS export: a run's projected charges in the FinOps Foundation's FOCUS 1.2 layout.

FOCUS (FinOps Open Cost and Usage Specification, https://focus.finops.org, columns as in the
``v1.2`` tag of FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec) is the layout cost tools ingest.
One row per month x pool x billed line x who used it (workload, training job, idle), plus one
row per purchase or sale of owned hardware:

- **Usage** rows: EffectiveCost is the accrual (amortised) cost, BilledCost the part paid as it
  accrues (0 for depreciation, network depreciation, the cost of capital and write-offs).
- **Purchase** rows: owned GPUs and their network in the month they are bought (BilledCost the
  capex, EffectiveCost 0: it is amortised through the usage rows); the sale of retired GPUs at
  their residual value is a negative Purchase (a refund of capital).

So BilledCost summed over the horizon is the cash-flow total and EffectiveCost the accrual
total. Simplifications, stated: ListCost = ContractedCost = the scenario's own price (fleetsim
knows what you pay, not a provider's list discount); a run is a projection, not an invoice, so
there is no InvoiceId; charge periods are whole months (a purchase's starts at its hour).
Money is in the scenario's currency (``currency``), converted from US dollars at its rate.
Columns fleetsim adds are prefixed ``x_``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.common.files import write_atomic
from simulator.economics.refresh import WRITE_OFF_LINE
from simulator.economics.stages import STAGE_ENTITY_KINDS, is_stage_pool, pool_stage, pool_stage_of
from simulator.report.monthly import attribution_share
from simulator.results.result import Result
from simulator.scenario.schema import Scenario

FOCUS_VERSION = "1.2"

#: FOCUS columns written, in order (every Mandatory column of 1.2 that applies, ChargeFrequency
#: and ServiceSubcategory (Recommended), and the unit prices (Conditional, as prices are known).
FOCUS_COLUMNS = [
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "BillingCurrency",
    "BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd",
    "ChargeCategory", "ChargeClass", "ChargeFrequency", "ChargeDescription",
    "PricingQuantity", "PricingUnit", "ListUnitPrice", "ContractedUnitPrice",
    "ServiceCategory", "ServiceSubcategory", "ServiceName", "ProviderName", "PublisherName",
    "InvoiceIssuerName", "BillingAccountId", "BillingAccountName",
]  # fmt: skip
FLEETSIM_COLUMNS = ["x_scenario", "x_plan", "x_pool", "x_deployment", "x_workload", "x_job", "x_category",
                    "x_line_item"]  # fmt: skip
COLUMNS = FOCUS_COLUMNS + FLEETSIM_COLUMNS
MONEY_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice", "ContractedUnitPrice")
TIME_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")

#: fleetsim units in FOCUS Unit Format ('<singular>-<plural time units>', counts capitalised).
UNITS = {"GPU-hour": "GPU-Hours", "kWh": "kWh", "kW-month": "kW-Months", "year": "Years",
         "GPU": "GPUs", "1k queries": "1000 Queries", "1k calls": "1000 Calls", "hour": "Hours"}  # fmt: skip
SUBCATEGORY = {"inference": "Generative AI", "training": "Machine Learning", "idle": "AI Platforms"}
_USAGE_BASED = ("gpu_hours", "energy_kwh", "host_energy_kwh", "overflow_gpu_hours", "retrieval_queries")


def focus_table(result: Result) -> pd.DataFrame:
    """The FOCUS rows of one run (see the module docstring); money in the scenario's currency."""
    scenario = result.scenario
    if scenario is None:
        raise ValueError("a FOCUS export needs the run's scenario (Result.scenario)")
    rate, code = scenario.currency.usd_rate, scenario.currency.code
    usage = _usage_rows(result, rate, code)
    capital = _capital_rows(result, rate, code)
    rows = pd.concat([frame for frame in (usage, capital) if len(frame)], ignore_index=True) if len(usage) or len(
        capital) else pd.DataFrame(columns=COLUMNS)  # fmt: skip
    for column in MONEY_COLUMNS:
        rows[column] = rows[column].astype(float) * rate
    providers = {pool.name: _provider(pool) for pool in scenario.pools}
    provider = rows["x_pool"].map(lambda p: providers.get(p, _stage_provider(scenario, p)))
    rows["ProviderName"] = rows["PublisherName"] = rows["InvoiceIssuerName"] = provider
    rows["BillingCurrency"] = scenario.currency.code
    rows["BillingAccountId"] = f"fleetsim:{scenario.name}"
    rows["BillingAccountName"] = scenario.name
    rows["ServiceCategory"] = "AI and Machine Learning"
    rows["x_scenario"] = scenario.name
    rows["x_plan"] = result.summary["plan"]
    rows["ChargeClass"] = None
    return rows[COLUMNS].reset_index(drop=True)


def _provider(pool) -> str:
    if pool.provider:
        return pool.provider
    return "owned hardware" if pool.pricing.kind == "owned" else "GPU cloud"


def _month_bounds(months: pd.Series) -> tuple[pd.Series, pd.Series]:
    start = pd.to_datetime(months + "-01", utc=True)
    return start, start + pd.DateOffset(months=1)


def _usage_rows(result: Result, rate: float, code: str) -> pd.DataFrame:
    """Billed lines split among the workloads and jobs that used them (by the simulated shares of
    their pool and category that month); idle lines stay whole."""
    billing = result.billing
    if billing.empty:
        return pd.DataFrame()
    lines = billing[billing["quantity"] != 0].copy()
    shares = _entity_shares(result.monthly)
    split = lines[lines["category"] != "idle"].merge(shares, on=["month", "pool", "category"], how="left")
    split["share"] = split["share"].fillna(1.0)
    idle = lines[lines["category"] == "idle"].assign(share=1.0, entity_kind="idle", entity=None, deployment="")
    rows = pd.concat([split, idle], ignore_index=True)
    quantity = rows["quantity"] * rows["share"]
    start, end = _month_bounds(rows["month"])
    kind = rows["entity_kind"]
    pools = {p.name: p for p in (result.scenario.pools if result.scenario else [])}
    out = pd.DataFrame({
        "BilledCost": rows["cash_usd"] * rows["share"],
        "EffectiveCost": rows["cost_usd"] * rows["share"],
        "ListCost": rows["cost_usd"] * rows["share"],
        "ContractedCost": rows["cost_usd"] * rows["share"],
        "BillingPeriodStart": start, "BillingPeriodEnd": end, "ChargePeriodStart": start, "ChargePeriodEnd": end,
        "ChargeCategory": "Usage",
        "ChargeFrequency": [_frequency(line, pools.get(pool)) for line, pool in zip(rows["line_item"], rows["pool"], strict=True)],
        "ChargeDescription": [_usage_description(r, rate, code) for r in rows.itertuples(index=False)],
        "PricingQuantity": quantity,
        "PricingUnit": rows["unit"].map(lambda u: UNITS.get(u, u)),
        "ListUnitPrice": rows["unit_price_usd"], "ContractedUnitPrice": rows["unit_price_usd"],
        "ServiceSubcategory": rows["category"].map(SUBCATEGORY),
        "ServiceName": [_service(pool, result.scenario) for pool in rows["pool"]],
        "x_pool": rows["pool"],
        "x_deployment": rows["deployment"].replace("", None),
        "x_workload": np.where(kind.isin(["workload", *STAGE_ENTITY_KINDS]), rows["entity"], None),
        "x_job": np.where(kind == "training_job", rows["entity"], None),
        "x_category": rows["category"],
        "x_line_item": rows["line_item"],
    })  # fmt: skip
    return out


def _entity_shares(monthly: pd.DataFrame) -> pd.DataFrame:
    """Each workload's / job's share of its pool-and-category cost per month (the Monthly
    sheet's rule, :func:`simulator.report.monthly.attribution_share`)."""
    used = monthly[monthly["category"] != "idle"]
    keys = ["month", "pool", "category"]
    per = used.groupby([*keys, "deployment", "entity_kind", "entity"], sort=False)[["cost_usd", "gpu_hours"]].sum()
    per = per.reset_index()
    totals = per.groupby(keys)[["cost_usd", "gpu_hours"]].transform("sum")
    count = per.groupby(keys)["cost_usd"].transform("size")
    share = attribution_share(per["cost_usd"].to_numpy(), per["gpu_hours"].to_numpy(), totals["cost_usd"].to_numpy(),
                              totals["gpu_hours"].to_numpy(), count.to_numpy())  # fmt: skip
    return per[[*keys, "deployment", "entity_kind", "entity"]].assign(share=share)


def _frequency(line: str, pool) -> str:
    """Usage-Based for what is paid by use (on-demand and spot hours, energy, overflow, queries),
    One-Time for a write-off, Recurring for what is paid whether used or not."""
    if line.startswith(WRITE_OFF_LINE):
        return "One-Time"
    base = line.split(" ")[0]
    if base in _USAGE_BASED:
        return "Usage-Based"
    return "Recurring" if pool is not None else "Usage-Based"


def _usage_description(row, rate: float, code: str) -> str:
    who = {"workload": f"workload {row.entity}", **dict.fromkeys(STAGE_ENTITY_KINDS, f"workload {row.entity}"),
           "training_job": f"training job {row.entity}", "idle": "idle (paid, unused)"}.get(row.entity_kind, row.category)  # fmt: skip
    return f"{row.pool}: {row.line_item} at {row.unit_price_usd * rate:.6g} {code} per {row.unit}, {who}"


def _stage_provider(scenario: Scenario, pool: str) -> str:
    """Who bills a pipeline stage's lines: a retrieval service, or the stage's kind's."""
    stage = pool_stage_of(scenario, pool)
    return "retrieval service" if stage is None or stage.kind == "retrieval" else f"{stage.kind} service"


def _service(pool: str, scenario: Scenario | None) -> str:
    if is_stage_pool(pool):
        workload, stage = pool_stage(pool)
        return f"{stage} stage of {workload}"
    gpu = next((p.gpu for p in scenario.pools if p.name == pool), "") if scenario else ""
    return f"GPU pool {pool} ({gpu})" if gpu else f"GPU pool {pool}"


def _capital_rows(result: Result, rate: float, code: str) -> pd.DataFrame:
    """Owned hardware bought (capex, network) and sold (residual value, negative) as Purchases."""
    cash = result.cashflow
    if cash.empty:
        return pd.DataFrame()
    rows = cash[cash["kind"] != "usage"]
    if rows.empty:
        return pd.DataFrame()
    start, end = _month_bounds(rows["month"])
    charged = pd.to_datetime(rows["first_time"]).dt.tz_localize("UTC")
    descriptions = [
        (f"{r.pool}: {r.line_item}, {abs(r.quantity):g} GPUs at {r.unit_price_usd * rate:,.2f} {code} each"
         + (" (sale of retired GPUs at their residual value)" if r.kind == "sale" else " (capex)"))
        for r in rows.itertuples(index=False)
    ]  # fmt: skip
    return pd.DataFrame({
        "BilledCost": rows["cash_usd"], "EffectiveCost": 0.0, "ListCost": rows["cash_usd"],
        "ContractedCost": rows["cash_usd"],
        "BillingPeriodStart": start, "BillingPeriodEnd": end,
        "ChargePeriodStart": charged.to_numpy(), "ChargePeriodEnd": end,
        "ChargeCategory": "Purchase", "ChargeFrequency": "One-Time", "ChargeDescription": descriptions,
        "PricingQuantity": rows["quantity"], "PricingUnit": rows["unit"].map(lambda u: UNITS.get(u, u)),
        "ListUnitPrice": rows["unit_price_usd"], "ContractedUnitPrice": rows["unit_price_usd"],
        "ServiceSubcategory": "AI Platforms",
        "ServiceName": [_service(pool, result.scenario) for pool in rows["pool"]],
        "x_pool": rows["pool"], "x_deployment": None, "x_workload": None, "x_job": None,
        "x_category": "capital", "x_line_item": rows["line_item"],
    })  # fmt: skip


def focus_csv(frame: pd.DataFrame) -> str:
    """CSV text: date/times as 'YYYY-MM-DDTHH:mm:ssZ' (UTC), costs to 1e-6 (no float noise; unit
    prices and quantities keep full precision, so price x quantity = cost holds)."""
    out = frame.copy()
    for column in TIME_COLUMNS:
        out[column] = pd.to_datetime(out[column], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    for column in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
        out[column] = out[column].astype(float).round(6)
    return out.to_csv(index=False)


def write_focus(target: str | Path, results: list[Result]) -> Path:
    """Write the FOCUS rows of ``results`` (one file, runs told apart by x_scenario/x_plan) as
    CSV or Parquet by the file's suffix (.csv, .parquet), atomically."""
    path = Path(target)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: a FOCUS export is a .csv or .parquet file")
    frame = pd.concat([focus_table(r) for r in results], ignore_index=True)
    if suffix == ".csv":
        write_atomic(path, focus_csv(frame))
    else:
        write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return path
