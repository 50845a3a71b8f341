"""Detail sheets of the workbook, one row per run x month x pool/workload/job (long tables):
Utilisation, Utilisation by hour, Latency & SLO, Training jobs and Training runs.

All figures here are simulated except utilisation (busy / billed, a formula), SLO met (a
formula of attainment and target) and training job cost (a reference to the Monthly sheet).
"""

from __future__ import annotations

import pandas as pd

from simulator.economics.refresh import gpus_between
from simulator.economics.stages import is_stage_pool
from simulator.report.monthly import MonthlyLayout, month_dates
from simulator.report.runs import ReportRun
from simulator.report.sheet import Sheet, cell_ref

HEADER_ROW = 3
FIRST_ROW = HEADER_ROW + 1


def _headers(sheet: Sheet, columns: list[tuple[str, str]]) -> None:
    """Headers coloured by kind: 's' simulated, 'f' formula, '' keys."""
    fmt = {"s": "header_sim", "f": "header_formula", "": "header"}
    for col, (label, kind) in enumerate(columns):
        sheet.header(HEADER_ROW, col, [label], fmt[kind])


def _month_key(times: pd.Series) -> pd.Series:
    return pd.to_datetime(times).dt.strftime("%Y-%m")


# ---------------------------------------------------------------------- utilisation


def pool_month_table(hourly: pd.DataFrame) -> pd.DataFrame:
    """Per month and pool: GPU-hours billed/inference/training/busy, peak GPUs held, kWh
    (pipeline stages such as retrieval, which hold no GPUs, are left out)."""
    hourly = hourly[~hourly["pool"].map(is_stage_pool)]
    h = hourly.assign(
        month=_month_key(hourly["time"]), held=hourly["gpus_inference"] + hourly["gpus_training"]
    )
    grouped = h.groupby(["month", "pool"], sort=False)
    table = grouped[
        ["gpus_billed", "gpus_inference", "gpus_training", "gpus_busy", "energy_kwh"]
    ].sum()
    table["peak_gpus"] = grouped["held"].max()
    return table.reset_index()


def write_utilisation(sheet: Sheet, runs: list[ReportRun]) -> None:
    sheet.title(
        "Utilisation per pool and month (busy GPU-hours / billed GPU-hours)",
        "Simulated: GPU-hours and kWh. Formula: utilisation. Billed = paid for (held, or committed "
        "/ owned when larger).",
    )
    columns = [("Run", ""), ("Month", ""), ("Pool", ""), ("GPU-hours billed", "s"),
               ("GPU-hours held, inference", "s"), ("GPU-hours held, training", "s"),
               ("GPU-hours busy", "s"), ("Utilisation", "f"), ("Peak GPUs held", "s"),
               ("Energy kWh", "s")]  # fmt: skip
    _headers(sheet, columns)
    row = FIRST_ROW
    for run in runs:
        table = pool_month_table(run.result.hourly)
        for rec, month in zip(
            table.itertuples(index=False), month_dates(list(table["month"])), strict=True
        ):
            sheet.write(row, 0, run.label)
            sheet.write(row, 1, month, "month")
            sheet.write(row, 2, rec.pool)
            for col, value in zip(
                (3, 4, 5, 6),
                (rec.gpus_billed, rec.gpus_inference, rec.gpus_training, rec.gpus_busy),
                strict=True,
            ):
                sheet.write(row, col, value, "num")
            billed, busy = cell_ref(None, row, 3), cell_ref(None, row, 6)
            util = rec.gpus_busy / rec.gpus_billed if rec.gpus_billed > 0 else 0.0
            sheet.formula(row, 7, f"=IF({billed}>0,{busy}/{billed},0)", util, "pct")
            sheet.write(row, 8, rec.peak_gpus, "num")
            sheet.write(row, 9, rec.energy_kwh, "int")
            row += 1
    sheet.ws.autofilter(HEADER_ROW, 0, max(row - 1, HEADER_ROW), len(columns) - 1)
    sheet.finish(FIRST_ROW, frozen_cols=3)


def hour_of_day_utilisation(hourly: pd.DataFrame, pool: str) -> pd.DataFrame:
    """Month x hour of day (UTC): busy GPU-hours / billed GPU-hours of one pool (NaN if none)."""
    rows = hourly[hourly["pool"] == pool]
    times = pd.to_datetime(rows["time"])
    frame = pd.DataFrame({"month": times.dt.strftime("%Y-%m").to_numpy(), "hour": times.dt.hour.to_numpy(),
                          "busy": rows["gpus_busy"].to_numpy(), "billed": rows["gpus_billed"].to_numpy()})  # fmt: skip
    sums = frame.groupby(["month", "hour"])[["busy", "billed"]].sum()
    ratio = (sums["busy"] / sums["billed"].where(sums["billed"] > 0)).unstack("hour")
    return ratio.reindex(columns=range(24))


def write_hour_of_day(sheet: Sheet, runs: list[ReportRun]) -> None:
    sheet.title(
        "Utilisation by hour of day (UTC) and month, per run and pool (simulated)",
        "Each cell: busy GPU-hours / billed GPU-hours of that hour of the day over the month. "
        "Colour scale (blue to orange, safe for colour-blind readers): blue = low, orange = high.",
    )
    row = HEADER_ROW - 1
    for run in runs:
        for pool in run.scenario.pools:
            table = hour_of_day_utilisation(run.result.hourly, pool.name)
            sheet.group(row, 0, 25, f"{run.label} - pool {pool.name}")
            sheet.header(
                row + 1, 0, ["Month"] + [f"{h:02d}h" for h in range(24)] + ["All day"], "header_sim"
            )
            billed = run.result.hourly[run.result.hourly["pool"] == pool.name]
            totals = _all_day(billed)
            for i, (month, values) in enumerate(table.iterrows(), start=row + 2):
                sheet.write(i, 0, month_dates([month])[0], "month")
                for h, value in enumerate(values.to_numpy(dtype=float), start=1):
                    sheet.write(i, h, value, "pct", fit=False)
                sheet.write(i, 25, totals.get(month), "pct", fit=False)
            last = row + 1 + len(table)
            if len(table):
                sheet.ws.conditional_format(row + 2, 1, last, 24, {"type": "3_color_scale", "min_color": "#9ECAE1",
                                                                    "mid_color": "#F7F7F7", "max_color": "#FDAE6B"})
            row = last + 2
    sheet.set_width(1, 25, 7)
    sheet.finish(HEADER_ROW - 1, frozen_cols=1)


def _all_day(rows: pd.DataFrame) -> dict[str, float]:
    frame = (
        rows.assign(month=_month_key(rows["time"]))
        .groupby("month")[["gpus_busy", "gpus_billed"]]
        .sum()
    )
    ok = frame["gpus_billed"] > 0
    return (frame.loc[ok, "gpus_busy"] / frame.loc[ok, "gpus_billed"]).to_dict()


# ---------------------------------------------------------------------- latency


def write_latency(sheet: Sheet, runs: list[ReportRun]) -> None:
    sheet.title(
        "Latency & SLO per workload and month (simulated)",
        "Percentiles of the month's latency distribution (hours mixed by their requests, not averaged). "
        "SLO attainment: share of requests meeting every target. Met = attainment >= target (formula).",
    )
    columns = [("Run", ""), ("Month", ""), ("Workload", ""), ("Requests served", "s"),
               ("Response-cache hits", "s"), ("Unserved requests", "s"), ("TTFT p50 ms", "s"),
               ("TTFT p95 ms", "s"), ("TTFT p99 ms", "s"), ("TPOT p50 ms", "s"), ("TPOT p95 ms", "s"),
               ("TPOT p99 ms", "s"), ("E2E p95 ms", "s"), ("TTFT target ms", ""),
               ("TPOT target ms", ""), ("SLO attainment", "s"), ("Attainment target", ""),
               ("SLO met", "f")]  # fmt: skip
    _headers(sheet, columns)
    keys = ["requests_served", "requests_cache_hits", "requests_unserved", "ttft_p50_ms", "ttft_p95_ms",
            "ttft_p99_ms", "tpot_p50_ms", "tpot_p95_ms", "tpot_p99_ms", "e2e_p95_ms"]  # fmt: skip
    row = FIRST_ROW
    for run in runs:
        latency = run.result.latency
        for rec in latency.to_dict("records"):
            slo = run.scenario.workload(rec["workload"]).slo
            sheet.write(row, 0, run.label)
            sheet.write(row, 1, month_dates([rec["month"]])[0], "month")
            sheet.write(row, 2, rec["workload"])
            for col, key in enumerate(keys, start=3):
                sheet.write(row, col, rec[key], "int" if key.startswith("requests") else "num")
            sheet.write(row, 13, slo.ttft_p95_ms, "num")
            sheet.write(row, 14, slo.tpot_p95_ms, "num")
            sheet.write(row, 15, rec["slo_attainment"], "pct")
            sheet.write(row, 16, slo.attainment_target, "pct")
            att, target = cell_ref(None, row, 15), cell_ref(None, row, 16)
            met = (
                None
                if pd.isna(rec["slo_attainment"])
                else bool(rec["slo_attainment"] >= slo.attainment_target)
            )
            sheet.formula(row, 17, f'=IF(ISNUMBER({att}),IF({att}>={target},"yes","NO"),"-")',
                          "-" if met is None else ("yes" if met else "NO"), "text")  # fmt: skip
            row += 1
    if row > FIRST_ROW:
        sheet.ws.conditional_format(FIRST_ROW, 15, row - 1, 15, {
            "type": "formula", "criteria": f"=AND(ISNUMBER($P{FIRST_ROW + 1}),$P{FIRST_ROW + 1}<$Q{FIRST_ROW + 1})",
            "format": sheet.formats["bad"]})  # fmt: skip
    sheet.ws.autofilter(HEADER_ROW, 0, max(row - 1, HEADER_ROW), len(columns) - 1)
    sheet.finish(FIRST_ROW, frozen_cols=3)


# ---------------------------------------------------------------------- training


def write_training_jobs(
    sheet: Sheet, runs: list[ReportRun], layouts: dict[str, MonthlyLayout]
) -> None:
    sheet.title(
        "Training jobs per run (simulated; cost by formula from the Monthly sheet)",
        "GPU-hours include time lost to failures (rework since the last checkpoint, restarts) and "
        "checkpoint writes. Cost = the job's column total on its run's Monthly sheet.",
    )
    columns = [("Run", ""), ("Job", ""), ("Pool", ""), ("GPUs", ""), ("Runs", "s"), ("Runs finished", "s"),
               ("First start", "s"), ("Last finish", "s"), ("GPU-hours", "s"), ("GPU-hours lost", "s"),
               ("Failures", "s"), ("Pre-emptions", "s"), ("Cost", "f"), ("Deadline", ""),
               ("Deadline missed", "s")]  # fmt: skip
    _headers(sheet, columns)
    row = FIRST_ROW
    for run in runs:
        layout = layouts[run.label]
        for job in run.scenario.training_jobs:
            s = run.result.summary["training_jobs"][job.name]
            values = [run.label, job.name, job.pool, job.gpus, s["runs"], s["runs_finished"]]
            for col, value in enumerate(values):
                sheet.write(row, col, value, "int" if isinstance(value, int) else "text")
            sheet.write(row, 6, _timestamp(s["first_start"]), "datetime")
            sheet.write(
                row,
                7,
                _timestamp(s["last_finish"]) if s["last_finish"] else "not finished",
                "datetime",
            )
            for col, key in ((8, "gpu_hours"), (9, "gpu_hours_lost")):
                sheet.write(row, col, s[key], "num")
            sheet.write(row, 10, s["failures"], "int")
            sheet.write(row, 11, s["preemptions"], "int")
            col = layout.col_entity.get(("training_job", job.name))
            if col is not None:
                sheet.formula(row, 12, "=" + layout.total_ref(col), layout.total_value(col), "usd")
            else:
                sheet.write(row, 12, s["cost_usd"], "usd")
            sheet.write(row, 13, job.deadline, "date")
            sheet.write(row, 14, bool(s["deadline_missed"]))
            row += 1
    sheet.finish(FIRST_ROW, frozen_cols=2)


def write_training_runs(sheet: Sheet, runs: list[ReportRun]) -> None:
    sheet.title(
        "Training runs: one row per run of each job (simulated)",
        "Queued = earliest start; a run may wait for GPUs. GPU-hours lost = rework (work redone since the last "
        "checkpoint) + restarts + checkpoint writing.",
    )
    spec = [("Run", "", None), ("Job", "", "job"), ("Run #", "", "run"), ("Pool", "", "pool"),
            ("Status", "s", "status"), ("Queued", "s", "queued_at"), ("Started", "s", "started_at"),
            ("Finished", "s", "finished_at"), ("GPUs", "", "gpus"), ("MFU", "s", "mfu"),
            ("Wall hours", "s", "wall_hours"), ("GPU-hours", "s", "gpu_hours"),
            ("GPU-hours useful", "s", "gpu_hours_useful"), ("GPU-hours lost", "s", "gpu_hours_lost"),
            ("GPU-hours checkpoint", "s", "gpu_hours_checkpoint"), ("GPU-hours rework", "s", "gpu_hours_rework"),
            ("GPU-hours restart", "s", "gpu_hours_restart"), ("Failures", "s", "failures"),
            ("Pre-emptions", "s", "preemptions"), ("Deadline", "", "deadline"),
            ("Deadline missed", "s", "deadline_missed")]  # fmt: skip
    _headers(sheet, [(label, kind) for label, kind, _ in spec])
    formats = {"queued_at": "datetime", "started_at": "datetime", "finished_at": "datetime", "deadline": "date",
               "mfu": "pct", "gpus": "int", "run": "int", "failures": "int", "preemptions": "int"}  # fmt: skip
    row = FIRST_ROW
    for run in runs:
        jobs = run.result.jobs
        for rec in jobs.to_dict("records") if len(jobs) else []:
            sheet.write(row, 0, run.label)
            for col, (_, _, key) in enumerate(spec[1:], start=1):
                value = rec.get(key)
                if key == "deadline_missed":
                    value = None if pd.isna(value) else bool(value)
                sheet.write(
                    row, col, value, formats.get(key, "num" if isinstance(value, float) else "text")
                )
            row += 1
    if row > FIRST_ROW:
        sheet.ws.autofilter(HEADER_ROW, 0, row - 1, len(spec) - 1)
    sheet.finish(FIRST_ROW, frozen_cols=3)


def _timestamp(value: str | None) -> pd.Timestamp | None:
    return None if not value else pd.Timestamp(value)


# ---------------------------------------------------------------------- deployments


def disaggregation_label(dep) -> str:
    """' P:D 1x TP4 + 2x TP4' for a disaggregated deployment's unit, else ''."""
    d = dep.disaggregation
    if d is None:
        return ""
    return f" P:D {d.prefill_replicas}x TP{d.prefill_tensor_parallel or dep.tensor_parallel} + {d.decode_replicas}x TP{dep.tensor_parallel}"


def deployment_month_table(deployments_hourly: pd.DataFrame, gpus_per_replica: dict[str, int]) -> pd.DataFrame:
    """Per month and deployment: mean and peak replicas held, GPU-hours held and serving."""
    if deployments_hourly.empty:
        return pd.DataFrame(columns=["month", "deployment", "mean_replicas", "peak_replicas",
                                     "gpu_hours_held", "gpu_hours_serving"])  # fmt: skip
    d = deployments_hourly.assign(month=_month_key(deployments_hourly["time"]))
    tp = d["deployment"].map(gpus_per_replica).astype(float)
    d = d.assign(gpu_hours_held=d["replicas_held"] * tp, gpu_hours_serving=d["replicas_serving"] * tp)
    grouped = d.groupby(["month", "deployment"], sort=False)
    table = grouped[["gpu_hours_held", "gpu_hours_serving"]].sum()
    table["mean_replicas"] = grouped["replicas_held"].mean()
    table["peak_replicas"] = grouped["replicas_held"].max()
    return table.reset_index()


def write_deployments(sheet: Sheet, runs: list[ReportRun]) -> None:
    """Replicas and GPU-hours of every deployment per month: launches, canaries, migrations."""
    sheet.title(
        "Deployments per month (replicas held and GPU-hours)",
        "Simulated: replicas and GPU-hours. Scheduled changes show here: a deployment appears when "
        "it starts serving (from / after_job), both sides of a canary are held while it ramps, and "
        "a retired one drops to zero; a pool's hardware refresh shows in the GPU column.",
    )
    columns = [("Run", ""), ("Month", ""), ("Deployment", ""), ("Pool", ""), ("Model", ""),
               ("GPU", ""), ("Mean replicas", "s"), ("Peak replicas", "s"), ("GPU-hours held", "s"),
               ("GPU-hours serving", "s")]  # fmt: skip
    _headers(sheet, columns)
    row = FIRST_ROW
    for run in runs:
        deps = {d.name: d for d in run.scenario.deployments}
        pools = {p.name: p for p in run.scenario.pools}
        table = deployment_month_table(
            run.result.deployments_hourly, {name: d.gpus_per_replica for name, d in deps.items()}
        )
        for rec, month in zip(
            table.itertuples(index=False), month_dates(list(table["month"])), strict=True
        ):
            dep = deps[rec.deployment]
            sheet.write(row, 0, run.label)
            sheet.write(row, 1, month, "month")
            sheet.write(row, 2, rec.deployment)
            sheet.write(row, 3, dep.pool)
            sheet.write(row, 4, f"{dep.model} {dep.dtype} TP{dep.tensor_parallel}" + disaggregation_label(dep))
            next_month = (pd.Timestamp(month) + pd.offsets.MonthBegin(1)).date()
            sheet.write(row, 5, " -> ".join(gpus_between(pools[dep.pool], month, next_month)))
            sheet.write(row, 6, rec.mean_replicas, "num")
            sheet.write(row, 7, rec.peak_replicas, "num")
            sheet.write(row, 8, rec.gpu_hours_held, "num")
            sheet.write(row, 9, rec.gpu_hours_serving, "num")
            row += 1
    sheet.ws.autofilter(HEADER_ROW, 0, max(row - 1, HEADER_ROW), len(columns) - 1)
    sheet.finish(FIRST_ROW, frozen_cols=3)
