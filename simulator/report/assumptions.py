"""The Assumptions sheet: every price, rate, growth figure and efficiency the runs used.

Two tables, both in named cells:

- **Prices** (yellow cells): the prices cost is linear in (see :mod:`simulator.report.prices`).
  Every cost on the Billing, Monthly, Summary and Compare sheets is a formula of these, so
  changing one recomputes the workbook without a rerun.
- **Simulated inputs**: the scenario as each run used it (plan overrides applied) plus the values
  the engines resolved (GPU specs, calibration efficiencies, effective MFU and failure rates,
  the input share of GPU-time). Changing one of these does nothing until fleetsim is rerun.
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args, get_origin

import numpy as np
from pydantic import BaseModel

from simulator.economics.pricing import DEFAULT_CLOUD_PUE
from simulator.economics.refresh import WRITE_OFF_KEY, pool_eras, write_off_key
from simulator.economics.retrieval import retrieval_pool
from simulator.economics.stages import find_stage, stage_pool, stage_price_key
from simulator.report.prices import (
    API_GROUP,
    RESIDUAL_KEY,
    PriceBook,
    PriceCell,
)
from simulator.report.runs import ReportRun
from simulator.report.sheet import Sheet, cell_ref
from simulator.scenario.derived import is_derived
from simulator.scenario.resolve import gpu_of, profile_for_pool
from simulator.scenario.schema import Scenario
from simulator.training import DEFAULT_FAILURES_PER_GPU_DAY

PRICE_HEADER_ROW = 4
#: Units of the price cells shown as percentages (the value stays the fraction: 0.05 = 5%).
PERCENT_UNITS = ("share of capex per year", "rate per year")
_ABSENT = object()  # a field one run's scenario does not have (another pricing kind)
_SKIP_KEYS = {"measurements", "description", "plans", "catalog"}
_GPU_FIELDS = ("bf16_tflops", "fp8_tflops", "hbm_gib", "hbm_tb_per_s", "interconnect_gb_per_s",
               "tdp_w", "idle_power_fraction")  # fmt: skip

LEGEND = [
    (
        "Simulated by fleetsim (change needs a rerun): requests and tokens, latency percentiles and SLO "
        "attainment, replicas, GPU-hours held/busy/billed, kWh, training job timings and failures, "
        "and the shares that split a pool's cost among workloads and jobs (by GPU-time)."
    ),
    (
        "Cost-model estimate (no simulation): each workload's input share of GPU-time (prefill vs "
        "decode), used to split its $/1M tokens into input and output."
    ),
    (
        "By formula (recomputes here): every $ figure. Billing cost = quantity x named price; Monthly "
        "and Summary sums; $/1M tokens; API baseline cost and the ratio to it; Compare cost rows and "
        "deltas. Owned $/GPU-hour = capex/(lifetime x hours_per_year) + capex x opex/hours_per_year."
    ),
    (
        "Hardware refresh: each GPU era has its own capex, lifetime and opex cells (named with the "
        "era, e.g. _b200_from_2028_06_01). Written off per retired GPU = capex x MAX(0, 1 - mean "
        "age/lifetime) - residual; the mean age (GPU-weighted, from purchase dates) is derived."
    ),
    (
        "Colours: blue-on-yellow cells are the inputs you may edit (the only unlocked cells; sheets are "
        "protected without a password); green headers are formulas; orange headers are simulated figures; "
        "red italics: a simulated input that differs between runs."
    ),
]


def write_assumptions(
    sheet: Sheet, runs: list[ReportRun], book: PriceBook, input_shares: dict[str, dict[str, float]]
) -> None:
    """Both tables, with every numeric cell given a defined name."""
    sheet.title(
        "Assumptions: prices (edit the yellow cells) and simulated inputs",
        "Prices are named cells; every cost in this workbook is a formula of them. "
        "Simulated inputs below need a rerun of fleetsim to take effect.",
    )
    row = _price_table(sheet, book)
    row = _legend(sheet, row + 2)
    _inputs_table(sheet, runs, book, input_shares, row + 2)
    sheet.finish(2, frozen_cols=1, max_width=60)


def _price_table(sheet: Sheet, book: PriceBook) -> int:
    sheet.group(PRICE_HEADER_ROW - 1, 0, 5, "Prices and rates (named cells): edit the yellow cells")
    sheet.header(
        PRICE_HEADER_ROW, 0, ["Name", "Applies to", "What", "Unit", "Value", "Used by runs"]
    )
    row = PRICE_HEADER_ROW
    for row, cell in enumerate(book.cells, start=PRICE_HEADER_ROW + 1):
        sheet.write(row, 0, cell.name, "bold")
        sheet.write(row, 1, cell.group)
        sheet.write(row, 2, cell.label)
        sheet.write(row, 3, cell.unit)
        _price_value(sheet, row, cell)
        sheet.write(row, 5, ", ".join(cell.runs))
        sheet.workbook.define_name(cell.name, "=" + cell_ref(sheet.name, row, 4, absolute=True))
    return row


def _price_value(sheet: Sheet, row: int, cell: PriceCell) -> None:
    money = cell.unit.startswith("$")
    if cell.formula:
        sheet.formula(row, 4, cell.formula, cell.value, "derived_usd")
    elif not cell.editable:  # a figure derived from the run (dates): shown, not for editing
        sheet.write(row, 4, cell.value, "num3")
    elif cell.unit in PERCENT_UNITS:
        sheet.write(row, 4, cell.value, "input_pct")
    else:
        sheet.write(row, 4, cell.value, "input_usd" if money else "input_num")


def _legend(sheet: Sheet, row: int) -> int:
    sheet.group(row, 0, 5, "What is simulated and what follows by formula")
    for i, line in enumerate(LEGEND, start=1):
        sheet.ws.merge_range(row + i, 0, row + i, 5, line, sheet.formats["wrap"])
        sheet.ws.set_row(row + i, 32)
    return row + len(LEGEND)


# ---------------------------------------------------------------------- simulated inputs


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Nested scenario data as ``dotted.path -> scalar``; list items keyed by their name.

    Long numeric lists (empirical samples) become a one-line summary.
    """
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _SKIP_KEYS or (key == "name" and path):
                continue
            out |= flatten(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            key = item.get("name", item.get("deployment", i))
            out |= flatten(item, f"{path}.{key}")
    elif isinstance(value, list):
        out[path] = _list_text(value)
    else:
        out[path] = value
    return out


def _list_text(values: list[Any]) -> str:
    if not values:
        return "(none)"
    if len(values) > 8 and all(isinstance(v, int | float) for v in values):
        return f"{len(values)} values, mean {float(np.mean(values)):.6g}"
    return ", ".join(str(v) for v in values)


def resolved_inputs(run: ReportRun, input_shares: dict[str, float]) -> dict[str, Any]:
    """Figures the engines resolved from the scenario: catalog, calibration, defaults."""
    s = run.scenario
    out: dict[str, Any] = {"resolved.cloud_pue (energy reporting only)": DEFAULT_CLOUD_PUE}
    for pool in s.pools:
        gpu = gpu_of(s, pool)
        for name in _GPU_FIELDS:
            out[f"resolved.pools.{pool.name}.gpu.{name}"] = getattr(gpu, name)
        profile = profile_for_pool(s, pool)
        out[f"resolved.pools.{pool.name}.calibration.profile"] = profile.name
        for name, value in profile.parameters.model_dump().items():
            out[f"resolved.pools.{pool.name}.calibration.{name}"] = value
    jobs = run.result.jobs
    for job in s.training_jobs:
        rows = jobs[jobs["job"] == job.name] if len(jobs) else jobs
        mfu = float(rows["mfu"].mean()) if len(rows) else job.mfu
        out[f"resolved.training_jobs.{job.name}.mfu"] = mfu
        out[f"resolved.training_jobs.{job.name}.failures_per_gpu_day"] = (
            job.failures_per_gpu_day
            if job.failures_per_gpu_day is not None
            else DEFAULT_FAILURES_PER_GPU_DAY
        )
    for w in s.workloads:
        out[f"resolved.workloads.{w.name}.prompt_tokens_mean"] = w.prompt_tokens.mean
        out[f"resolved.workloads.{w.name}.output_tokens_mean"] = w.output_tokens.mean
        out[f"resolved.workloads.{w.name}.input_share_of_gpu_time"] = input_shares.get(w.name)
    return out


def run_inputs(run: ReportRun, input_shares: dict[str, float]) -> dict[str, Any]:
    """Every input of one run as ``path -> value``: the scenario, its plan, what was resolved."""
    plan = run.result.summary.get("plan", "base")
    overrides = "(as written)"
    if plan != "base":
        changes = next((p.set for p in run.scenario.plans if p.name == plan), {})
        overrides = "; ".join(f"{path} = {_override_text(value)}" for path, value in changes.items()) or "(none)"
    data = run.scenario.model_dump(mode="json", by_alias=True)
    data["workloads"] = [w for w in data["workloads"] if not is_derived(w["name"])]  # the stages' calls: derived
    return (
        {"plan": plan, "plan overrides": overrides}
        | flatten(data)
        | resolved_inputs(run, input_shares)
    )


def field_description(path: str) -> str:
    """The scenario field's own description (its first sentence) for a dotted path of the
    simulated-inputs table ('pools.serving.pricing.capex_usd_per_gpu'); '' when none."""
    if path.startswith("resolved."):
        return "resolved by fleetsim from the catalog, the calibration profile or a cited default"
    if path in ("plan", "plan overrides"):
        return "the plan run, and what it changes in the scenario as written"
    models: list[type[BaseModel]] = [Scenario]
    found = None
    in_list = False
    for part in path.split("."):
        fields = [(m, m.model_fields.get(part) or next((f for f in m.model_fields.values() if f.alias == part), None))
                  for m in models]  # fmt: skip
        matches = [f for _, f in fields if f is not None]
        if not matches:
            if in_list:  # a list item's name or index
                in_list = False
                continue
            return ""
        found = matches[0]
        models = [m for f in matches for m in _models_of(f.annotation)]
        in_list = any(get_origin(f.annotation) is list or "list[" in str(f.annotation) for f in matches)
    text = (found.description or "") if found is not None else ""
    return re.split(r"(?<!e\.g)(?<!i\.e)(?<!etc)\. ", text)[0].rstrip(".")


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through lists, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_of(arg)]


def _override_text(value: Any) -> str:
    """A plan's value as a reader writes it: numbers and text plainly, lists and maps compact."""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(", ", ": "))
    return str(value)


def _inputs_table(
    sheet: Sheet,
    runs: list[ReportRun],
    book: PriceBook,
    input_shares: dict[str, dict[str, float]],
    row: int,
) -> None:
    per_run = [run_inputs(r, input_shares.get(r.label, {})) for r in runs]
    paths = list(dict.fromkeys(p for inputs in per_run for p in inputs))
    label = "Simulated inputs (as each run used them; not named: a change needs a rerun of fleetsim)"
    sheet.group(row, 0, len(runs), label)
    sheet.header(row + 1, 0, ["Field (scenario path)"] + [r.label for r in runs] + ["What it is"], "header_sim")
    what_col = len(runs) + 1
    for i, path in enumerate(paths, start=row + 2):
        values = [inputs.get(path, _ABSENT) for inputs in per_run]
        differs = len({json.dumps(v, default=str) for v in values}) > 1
        sheet.write(i, 0, path)
        sheet.write(i, what_col, field_description(path), "note", fit=False)
        live = [_price_name(book, r, path) for r in runs]
        for j, (value, name) in enumerate(zip(values, live, strict=True), start=1):
            if name is not None:
                price = next(c.value for c in book.cells if c.name == name)
                sheet.formula(i, j, f"={name}", price, "derived_usd")
            else:
                sheet.write(i, j, _cell_value(value), "diff" if differs else "general")


def _price_name(book: PriceBook, run: ReportRun, path: str) -> str | None:
    """The named price cell behind a scenario path (pool pricing, a refresh's pricing and
    residual, API baseline), if any."""
    parts = path.split(".")
    if len(parts) == 4 and parts[0] == "pools" and parts[2] == "pricing":
        group, key = parts[1], parts[3]
    elif len(parts) >= 5 and parts[0] == "pools" and parts[2] == "refresh" and parts[3].isdigit():
        group, key = parts[1], _refresh_key(run, parts[1], int(parts[3]), parts[4:])
    elif len(parts) == 2 and parts[0] == "api_baseline":
        group, key = API_GROUP, parts[1]
    elif len(parts) == 4 and parts[0] == "workloads" and parts[2] == "api_baseline":
        group, key = f"{API_GROUP}:{parts[1]}", parts[3]
    elif len(parts) == 4 and parts[0] == "workloads" and parts[2] == "retrieval":
        group, key = retrieval_pool(parts[1]), parts[3]
    elif len(parts) == 5 and parts[0] == "workloads" and parts[2] == "stages":
        stage = find_stage(run.scenario, parts[1], parts[3])
        group, key = stage_pool(parts[1], parts[3]), stage_price_key(stage, parts[4]) if stage else None
        if key is None:
            return None
    else:
        return None
    return book.name_for(run.label, group, key) if book.has(run.label, group, key) else None


def _refresh_key(run: ReportRun, pool: str, step: int, field: list[str]) -> str:
    """The price key of field ``field`` of refresh step ``step`` of ``pool`` ('' if none): its
    pricing fields are the next era's (suffixed keys), its residual the write-off's."""
    match = [p for p in run.scenario.pools if p.name == pool]
    eras = pool_eras(run.scenario, match[0], 0) if match else []
    if step + 1 >= len(eras):
        return ""
    if field[0] == "pricing" and len(field) == 2:
        return field[1] + eras[step + 1].suffix
    if field == ["residual_usd_per_gpu"]:
        return RESIDUAL_KEY + write_off_key(eras[step]).removeprefix(WRITE_OFF_KEY)
    return ""


def _cell_value(value: Any) -> Any:
    if value is _ABSENT:
        return "-"
    if value is None:
        return "(default)"
    return value
