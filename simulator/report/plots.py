"""PNG plots of runs (matplotlib, Agg canvas, no pyplot state), each written atomically.

- ``monthly_spend_<run>.png``: monthly spend stacked by category (inference, training, idle, and
  a hardware refresh's write-off as its own category), the scenario's dated events marked
  (launches, retirements, refreshes); a month far above the rest (a training run, a write-off)
  is cut at the axis top with its total written on it, so the other months stay readable.
- ``cumulative_spend.png``: cumulative spend per run (line styles and markers differ per run).
- ``latency_<deployment>_<workload>.png``: TTFT and TPOT percentiles against load per replica,
  with the SLO targets and the capacity of one replica under the SLO marked; and SLO attainment
  against load. Made from the latency curves the run used (skipped when none are available).
- ``utilisation_<run>_<pool>.png``: utilisation by hour of day (UTC) x month, a heatmap on the
  colour-blind-safe cividis scale.

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies).
- ``training_<run>.png``: training job runs on a timeline (queued, running, deadlines).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

from simulator.common.files import write_atomic
from simulator.report.details import hour_of_day_utilisation
from simulator.report.runs import ReportRun
from simulator.scenario.schema import Slo

#: Okabe & Ito (2008), "Color Universal Design": safe for the common colour-vision deficiencies.
CATEGORY_COLOURS = {"inference": "#0072B2", "training": "#E69F00", "idle": "#999999", "write-off": "#D55E00"}
LINE_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v")]
#: A month above this many times the median of the months with spend is an outlier: the axis
#: stops at OUTLIER_AXIS x that median's next-highest month and the bar carries its total.
OUTLIER_RATIO = 4.0
DPI = 120


def slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def usd_axis(value: float, _pos: Any = None) -> str:
    """$1.2M / $350k / $900 tick labels."""
    size = abs(value)
    if size >= 1e9:
        return f"${value / 1e9:,.1f}B"
    if size >= 1e6:
        return f"${value / 1e6:,.1f}M"
    if size >= 1e3:
        return f"${value / 1e3:,.0f}k"
    return f"${value:,.0f}"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG, atomically."""
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return Path(path)


# ---------------------------------------------------------------------- spend


def monthly_by_category(run: ReportRun) -> pd.DataFrame:
    """Months x categories (inference, training, idle, write-off): spend in USD. A refresh's
    write-off (an idle line of the accounts) is its own category here."""
    from simulator.results.result import write_off_entity

    monthly = run.result.monthly.copy()
    written_off = monthly["entity"].isin([write_off_entity(pool.name) for pool in run.scenario.pools])
    monthly.loc[written_off, "category"] = "write-off"
    table = monthly.pivot_table(index="month", columns="category", values="cost_usd", aggfunc="sum")
    table = table.reindex(columns=list(CATEGORY_COLOURS), fill_value=0.0).fillna(0.0)
    table.index = pd.to_datetime(table.index + "-01")
    return table


def plot_monthly_spend(run: ReportRun, path: str | Path) -> Path:
    """Monthly spend stacked by category, events marked, outlier months cut and labelled."""
    table = monthly_by_category(run)
    fig = _figure(11, 5)
    ax = fig.add_subplot()
    bottom = np.zeros(len(table))
    x = np.arange(len(table))
    for category, colour in CATEGORY_COLOURS.items():
        values = table[category].to_numpy()
        if category in ("inference", "training", "idle") or values.any():
            ax.bar(x, values, bottom=bottom, color=colour, label=category, width=0.8)
        bottom += values
    top = outlier_axis_top(bottom)
    if top is not None:
        ax.set_ylim(0, top)
        for i in np.flatnonzero(bottom > top):
            ax.annotate(f"{usd_axis(bottom[i])} (axis cut)", (x[i], top), xytext=(0, -4), textcoords="offset points",
                        ha="center", va="top", rotation=90, fontsize=8, color="white", fontweight="bold")  # fmt: skip
    for month, label in monthly_events(run, table.index):
        ax.axvline(month - 0.5, color="#000000", linestyle=":", linewidth=1)
        ax.annotate(label, (month - 0.5, 1), xycoords=("data", "axes fraction"), xytext=(-2, -2),
                    textcoords="offset points", rotation=90, va="top", ha="right", fontsize=7)  # fmt: skip
    step = max(1, len(table) // 12)
    ax.set_xticks(
        x[::step], [d.strftime("%Y-%m") for d in table.index[::step]], rotation=45, ha="right"
    )
    ax.yaxis.set_major_formatter(FuncFormatter(usd_axis))
    ax.set_xlabel("Month")
    ax.set_ylabel("Spend per month (USD)")
    ax.set_title(f"Monthly spend by category - {run.label} (total {usd_axis(bottom.sum())})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="Category", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_png(fig, path)


def outlier_axis_top(totals: np.ndarray) -> float | None:
    """Where to cut the spend axis so that a few outlier months (over OUTLIER_RATIO x the median
    month with spend) do not squash the rest: just above the highest other month; None when no
    month is an outlier."""
    spent = totals[totals > 0]
    if len(spent) < 4:
        return None
    median = float(np.median(spent))
    outliers = totals > OUTLIER_RATIO * median
    if not outliers.any() or outliers.sum() > len(spent) // 4:
        return None
    rest = totals[~outliers]
    return 1.25 * float(rest.max()) if len(rest) and rest.max() > 0 else None


def monthly_events(run: ReportRun, months: pd.DatetimeIndex) -> list[tuple[int, str]]:
    """(month index, label) of the scenario's dated changes inside the horizon: deployments that
    start (``from``, or serving first after their ``after_job``) or retire (``until``), pools'
    hardware refreshes."""
    starts = {m.strftime("%Y-%m"): i for i, m in enumerate(months)}
    events: list[tuple[str, str]] = []
    for pool in run.scenario.pools:
        for step in pool.refresh or []:
            events.append((str(step.from_date)[:7], f"{pool.name}: refresh to {step.gpu}"))
    served = run.result.deployments_hourly
    for dep in run.scenario.deployments:
        if dep.after_job is not None and len(served):
            rows = served[(served["deployment"] == dep.name) & (served["replicas_serving"] > 0)]
            if len(rows):
                events.append((rows["time"].min().strftime("%Y-%m"), f"{dep.name} launches"))
        elif dep.from_date is not None:
            events.append((str(dep.from_date)[:7], f"{dep.name} starts"))
        if dep.until is not None:
            events.append((str(dep.until)[:7], f"{dep.name} retires"))
    out: dict[int, list[str]] = {}
    for month, label in events:
        if month in starts and starts[month] > 0:
            out.setdefault(starts[month], []).append(label)
    return [(i, "; ".join(labels)) for i, labels in sorted(out.items())]


def plot_cumulative_spend(runs: list[ReportRun], path: str | Path) -> Path:
    """Cumulative spend of each run over its months."""
    fig = _figure(11, 5)
    ax = fig.add_subplot()
    for i, run in enumerate(runs):
        per_month = monthly_by_category(run).sum(axis=1)
        style, marker = LINE_STYLES[i % len(LINE_STYLES)]
        ax.plot(per_month.index, per_month.cumsum().to_numpy(), linewidth=2, linestyle=style, marker=marker,
                markersize=4, markevery=max(1, len(per_month) // 12), label=f"{run.label} ({usd_axis(per_month.sum())})")  # fmt: skip
    ax.yaxis.set_major_formatter(FuncFormatter(usd_axis))
    ax.xaxis.set_major_formatter(mpl.dates.DateFormatter("%Y-%m"))
    ax.set_xlabel("Month")
    ax.set_ylabel("Cumulative spend (USD)")
    ax.set_title("Cumulative spend per run")
    ax.grid(alpha=0.3)
    ax.legend(title="Run (lifetime total)", loc="upper left")
    return save_png(fig, path)


# ---------------------------------------------------------------------- latency vs load


def _quantile_columns(
    levels: np.ndarray, wanted: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> dict[str, int]:
    """Index of the curve's quantile level nearest each wanted level: {'p50': i, ...}."""
    return {f"p{round(q * 100)}": int(np.argmin(np.abs(levels - q))) for q in wanted}


def plot_latency_vs_load(
    curve: Any, deployment: str, workload: str, slo: Slo, path: str | Path
) -> Path:
    """TTFT and TPOT percentiles and SLO attainment against requests/s per replica.

    ``curve`` has ``rates_per_replica`` (n,), ``quantile_levels`` (q,), ``ttft_ms`` and
    ``tpot_ms`` (n x q), ``slo_attainment`` (n,) and ``capacity_per_replica``.
    """
    rates = np.asarray(curve.rates_per_replica, dtype=float)
    levels = np.asarray(curve.quantile_levels, dtype=float)
    capacity = float(curve.capacity_per_replica)
    fig = _figure(14, 4.6)
    axes = fig.subplots(1, 3)
    targets = (("TTFT", curve.ttft_ms, slo.ttft_p95_ms), ("TPOT", curve.tpot_ms, slo.tpot_p95_ms))
    for ax, (metric, values, target) in zip(axes[:2], targets, strict=True):
        table = np.asarray(values, dtype=float)
        for (name, j), style in zip(
            _quantile_columns(levels).items(), ("-", "--", ":"), strict=True
        ):
            ax.plot(
                rates, table[:, j], style, color="#4472C4", linewidth=1.8, label=f"{metric} {name}"
            )
        if target is not None:
            ax.axhline(target, color="#C00000", linewidth=1.2, label=f"SLO: p95 <= {target:g} ms")
        _capacity_line(ax, capacity)
        scale = _latency_scale(ax, table, target)
        ax.set_xlabel("Load per replica (requests/s)")
        ax.set_ylabel(f"{metric} (ms{', log scale' if scale == 'log' else ''})")
        ax.set_title(f"{metric} percentiles vs load")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="upper left")
    ax = axes[2]
    ax.plot(rates, np.asarray(curve.slo_attainment, dtype=float), color="#4472C4", linewidth=1.8,
            label="share of requests meeting the SLO")  # fmt: skip
    ax.axhline(slo.attainment_target, color="#C00000", linewidth=1.2,
               label=f"target {slo.attainment_target:.0%}")  # fmt: skip
    _capacity_line(ax, capacity)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("Load per replica (requests/s)")
    ax.set_ylabel("SLO attainment")
    ax.set_title("SLO attainment vs load")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(f"Latency vs load: workload {workload} on deployment {deployment} (one replica)")
    return save_png(fig, path)


def _latency_scale(ax: Any, table: np.ndarray, target: float | None) -> str:
    """Log scale when the latencies span more than ~1.5 decades, with plain-number ticks."""
    values = table[np.isfinite(table) & (table > 0)]
    if target:
        values = np.append(values, target)
    if len(values) and values.max() / values.min() > 30:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(
            FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}")
        )
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(top=values.max() * 6)  # room for the legend above the curves
        return "log"
    ax.set_ylim(bottom=0, top=(values.max() if len(values) else 1.0) * 1.45)
    return "linear"


def _capacity_line(ax: Any, capacity: float) -> None:
    if np.isfinite(capacity) and capacity > 0:
        ax.axvline(capacity, color="#548235", linestyle="-.", linewidth=1.2,
                   label=f"capacity under SLO: {capacity:.3g} req/s")  # fmt: skip


def run_curves(run: ReportRun) -> dict[tuple[str, str], Any]:
    """The run's latency curves: those it recorded, else the inference engine's (if present)."""
    if run.curves:
        return dict(run.curves)
    try:
        from simulator.inference import deployment_curve  # type: ignore[attr-defined]
    except ImportError:
        return {}
    return {
        (route.deployment, w.name): deployment_curve(run.scenario, route.deployment, w.name)
        for w in run.scenario.workloads
        for route in w.routes
    }


# ---------------------------------------------------------------------- utilisation


def plot_utilisation_heatmap(run: ReportRun, pool: str, path: str | Path) -> Path:
    """Busy / billed GPU-hours by hour of day (UTC) x month."""
    table = hour_of_day_utilisation(run.result.hourly, pool)
    fig = _figure(11, max(3.5, 1.6 + 0.16 * len(table)))
    ax = fig.add_subplot()
    image = ax.imshow(table.to_numpy(dtype=float), aspect="auto", cmap="cividis", vmin=0, vmax=1,
                      interpolation="nearest")  # fmt: skip
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}:00" for h in range(0, 24, 2)])
    step = max(1, len(table) // 18)
    ax.set_yticks(range(0, len(table), step), list(table.index[::step]))
    ax.set_xlabel("Hour of day (UTC)")
    ax.set_ylabel("Month")
    ax.set_title(
        f"Utilisation of pool {pool} - {run.label} (busy / billed GPU-hours; grey: nothing billed)"
    )
    ax.set_facecolor("#D9D9D9")
    bar = fig.colorbar(image, ax=ax, format=PercentFormatter(1.0))
    bar.set_label("Utilisation")
    return save_png(fig, path)


# ---------------------------------------------------------------------- training


def plot_training_gantt(run: ReportRun, path: str | Path) -> Path:
    """Each job on its own row: queued (light), running (solid; hatched if unfinished at the
    horizon end), runs with failures marked, deadlines (and missed run deadlines) as red ticks.

    Runs shorter than 0.4 % of the horizon are drawn at that width so they stay visible.
    """
    jobs = run.result.jobs
    names = [j.name for j in run.scenario.training_jobs]
    start, end = pd.Timestamp(run.scenario.horizon.start), pd.Timestamp(run.scenario.horizon.end)
    least = (end - start) * 0.004
    fig = _figure(11, max(2.8, 1.8 + 0.55 * len(names)))
    ax = fig.add_subplot()
    for y, job in enumerate(run.scenario.training_jobs):
        rows = jobs[jobs["job"] == job.name] if len(jobs) else jobs
        for rec in rows.to_dict("records"):
            _gantt_run(ax, y, rec, end, least)
        if job.deadline is not None:
            _deadline(ax, y, pd.Timestamp(job.deadline))
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(start, end)
    ax.xaxis.set_major_formatter(mpl.dates.DateFormatter("%Y-%m"))
    ax.set_xlabel("Date")
    ax.set_title(f"Training jobs - {run.label} (short runs drawn at a minimum width)")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(handles=_gantt_legend(), loc="outside lower center", fontsize=8, ncols=5)
    return save_png(fig, path)


def _deadline(ax: Any, y: int, when: pd.Timestamp) -> None:
    ax.plot([when, when], [y - 0.35, y + 0.35], color="#C00000", linewidth=2)


def _gantt_run(
    ax: Any, y: int, rec: dict[str, Any], end: pd.Timestamp, least: pd.Timedelta
) -> None:
    queued, started, finished = (rec.get(k) for k in ("queued_at", "started_at", "finished_at"))
    start_or_end = started if not pd.isna(started) else end
    if not pd.isna(queued) and start_or_end > queued:
        ax.barh(y, start_or_end - queued, left=queued, height=0.5, color="#D9D9D9")
    if rec.get("deadline_missed") is True and not pd.isna(rec.get("deadline")):
        _deadline(ax, y, pd.Timestamp(rec["deadline"]))
    if pd.isna(started):
        return
    done = not pd.isna(finished)
    width = max((finished if done else end) - started, least)
    ax.barh(y, width, left=started, height=0.5, color="#4472C4" if done else "#ED7D31",
            hatch=None if done else "//", edgecolor="white", linewidth=0.3)  # fmt: skip
    if rec.get("failures"):
        ax.plot([started + width / 2], [y - 0.33], marker="v", color="#C00000", markersize=5)


def _gantt_legend() -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [
        Patch(color="#D9D9D9", label="queued for GPUs"),
        Patch(color="#4472C4", label="running, finished"),
        Patch(facecolor="#ED7D31", hatch="//", label="still running at horizon end"),
        Line2D([], [], color="#C00000", marker="v", linestyle="", label="run had failures"),
        Line2D([], [], color="#C00000", linewidth=2, label="deadline (job, or a missed run's)"),
    ]


# ---------------------------------------------------------------------- all of them


def write_plots(
    runs: list[ReportRun],
    out_dir: str | Path,
    curves: Callable[[ReportRun], dict[tuple[str, str], Any]] = run_curves,
) -> list[Path]:
    """Every plot of ``runs`` into ``out_dir``; returns the files written."""
    out = Path(out_dir)
    written = [plot_cumulative_spend(runs, out / "cumulative_spend.png")]
    for run in runs:
        written.append(plot_monthly_spend(run, out / f"monthly_spend_{slug(run.label)}.png"))
        for pool in run.scenario.pools:
            written.append(
                plot_utilisation_heatmap(
                    run, pool.name, out / f"utilisation_{slug(run.label)}_{slug(pool.name)}.png"
                )
            )
        if run.scenario.training_jobs:
            written.append(plot_training_gantt(run, out / f"training_{slug(run.label)}.png"))
    written += _latency_plots(runs, out, curves)
    return written


def _latency_plots(
    runs: list[ReportRun], out: Path, curves: Callable[[ReportRun], dict[tuple[str, str], Any]]
) -> list[Path]:
    """One plot per (deployment, workload) curve; runs with identical curves share it."""
    seen: dict[tuple[str, str], list[tuple[bytes, str]]] = {}
    written = []
    for run in runs:
        for (deployment, workload), curve in curves(run).items():
            key = _curve_fingerprint(curve)
            known = seen.setdefault((deployment, workload), [])
            if any(k == key for k, _ in known):
                continue
            suffix = "" if not known else f"_{slug(run.label)}"
            known.append((key, run.label))
            name = f"latency_{slug(deployment)}_{slug(workload)}{suffix}.png"
            slo = run.scenario.workload(workload).slo
            written.append(plot_latency_vs_load(curve, deployment, workload, slo, out / name))
    return written


def _curve_fingerprint(curve: Any) -> bytes:
    parts = [np.asarray(curve.rates_per_replica, dtype=float), np.asarray(curve.ttft_ms, dtype=float),
             np.asarray(curve.tpot_ms, dtype=float)]  # fmt: skip
    return b"".join(p.tobytes() for p in parts)
