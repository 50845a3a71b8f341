"""``fleetsim report --html FILE``: one self-contained, interactive HTML page of the runs.

Charts are plotly figures with plotly.js inlined (no network when the page is viewed): hover
for values, drag to zoom, double-click to reset, click legend entries to hide or show them, and a
"plan" menu on each chart to show one plan or all. Sections:

- **Summary**: one row per plan: lifetime spend and its split, GPU-hours, and per workload the
  SLO attainment against its target. Each figure cell carries the exact number of the run's
  summary.json in ``data-value`` (and the whole summaries are embedded as JSON), so what the page
  shows can be checked against the files.
- **Plan comparison**: spend by category per plan (grouped bars).
- **Monthly spend**: stacked by category (a refresh's write-off its own category), per plan.
- **Latency vs load**: TTFT and TPOT p50/p95 against the load per replica, the SLO targets and the
  replica's capacity under the SLO, per curve the runs used.
- **Utilisation**: each pool's daily busy / billed GPU-hours, with a range slider.

Written atomically (:func:`simulator.common.files.write_atomic`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.common.files import write_atomic
from simulator.report.files import finite
from simulator.report.plots import CATEGORY_COLOURS, monthly_by_category, outlier_axis_top
from simulator.report.runs import ReportRun

#: Summary figures shown per plan: (summary key, column label).
SUMMARY_COLUMNS = [("total_cost_usd", "lifetime spend"), ("inference_cost_usd", "inference"),
                   ("training_cost_usd", "training"), ("idle_cost_usd", "idle (paid, unused)"),
                   ("gpu_hours_billed", "GPU-hours billed")]  # fmt: skip
_DASHES = ["solid", "dash", "dot", "dashdot", "longdash"]

# Records script errors on the page (the headless-browser test reads them back from the DOM).
_ERROR_HOOK = """<script>
window.addEventListener("error", function (e) {
  var n = Number(document.documentElement.getAttribute("data-script-errors") || 0) + 1;
  document.documentElement.setAttribute("data-script-errors", String(n));
  document.documentElement.setAttribute("data-last-error", String(e.message));
});
</script>"""

_STYLE = """<style>
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.miss { background: #fde0c5; }
h2 { margin-top: 1.6em; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
</style>"""


def write_html(path: str | Path, runs: list[ReportRun]) -> Path:
    """Write the interactive report of ``runs`` to ``path`` (one file, no network needed)."""
    if not runs:
        raise ValueError("an HTML report needs at least one run")
    page = render_html(runs)
    write_atomic(path, page)
    return Path(path)


def render_html(runs: list[ReportRun]) -> str:
    """The page's HTML text."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    figures = [("comparison", "Plan comparison", comparison_figure(runs)),
               ("monthly", "Monthly spend", monthly_figure(runs)),
               ("latency", "Latency vs load (one replica)", latency_figure(runs)),
               ("utilisation", "Utilisation", utilisation_figure(runs))]  # fmt: skip
    scenarios = sorted({r.scenario.name for r in runs})
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>fleetsim report: {html.escape(', '.join(scenarios))}</title>",
        _ERROR_HOOK, _STYLE, f"<script>{get_plotlyjs()}</script></head><body>",
        f"<h1>fleetsim report: {html.escape(', '.join(scenarios))}</h1>",
        ("<p class='note'>Projected by fleetsim from the scenario's inputs; every figure is the model's "
         "(latency curves simulated, prices as given). Hover a chart for values, drag to zoom, "
         "double-click to reset, click the legend to hide or show a series, and use each chart's "
         "plan menu.</p>"),
        "<h2 id='summary'>Summary</h2>", summary_table(runs),
    ]  # fmt: skip
    for key, title, figure in figures:
        if figure is None:
            continue
        parts.append(f"<h2 id='{key}'>{html.escape(title)}</h2>")
        parts.append(pio.to_html(figure, include_plotlyjs=False, full_html=False, div_id=f"chart-{key}",
                                 config={"displaylogo": False, "responsive": True}))  # fmt: skip
    summaries = json.dumps({r.label: finite(r.result.summary) for r in runs}, default=str, allow_nan=False)
    parts.append(f"<script type='application/json' id='fleetsim-summaries'>{_script_safe(summaries)}</script>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _script_safe(text: str) -> str:
    return text.replace("</", "<\\/")


# ---------------------------------------------------------------------- summary


def summary_table(runs: list[ReportRun]) -> str:
    """One row per plan; each figure's exact value in ``data-value``."""
    workloads = list(dict.fromkeys(w for r in runs for w in r.result.summary["workloads"]))
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in SUMMARY_COLUMNS)
    head += "".join(f"<th>{html.escape(w)}: SLO attainment (target)</th>" for w in workloads)
    rows = []
    for run in runs:
        s = run.result.summary
        cells = [f"<th>{html.escape(run.label)}</th>"]
        for key, _ in SUMMARY_COLUMNS:
            value = float(s[key])
            shown = f"{value:,.0f}" if "hours" in key else f"${value:,.0f}"
            cells.append(f"<td class='num' data-key='{key}' data-value='{value!r}'>{shown}</td>")
        for name in workloads:
            w = s["workloads"].get(name)
            if w is None or w.get("slo_attainment") is None:
                cells.append("<td>-</td>")
                continue
            miss = "" if w["slo_met"] else " miss"
            cells.append(f"<td class='num{miss}' data-key='workloads.{html.escape(name)}.slo_attainment' "
                         f"data-value='{float(w['slo_attainment'])!r}'>{w['slo_attainment']:.2%} "
                         f"({w['slo_attainment_target']:.0%})</td>")  # fmt: skip
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table id='summary-table'><tr><th>plan</th>{head}</tr>{''.join(rows)}</table>"


# ---------------------------------------------------------------------- charts


def _plan_menu(labels: list[str], trace_plans: list[str], first_only: bool = False) -> list[dict[str, Any]]:
    """A dropdown that shows all plans' traces, or one plan's."""
    buttons = [] if first_only else [{"label": "all plans", "method": "update",
                                      "args": [{"visible": [True] * len(trace_plans)}]}]  # fmt: skip
    for label in labels:
        buttons.append({"label": label, "method": "update",
                        "args": [{"visible": [p == label for p in trace_plans]}]})  # fmt: skip
    return [{"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right", "y": 1.15,
             "yanchor": "top", "showactive": True}]  # fmt: skip


def comparison_figure(runs: list[ReportRun]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = [r.label for r in runs]
    for key, label in SUMMARY_COLUMNS[1:4]:
        category = label.split(" ")[0]
        fig.add_bar(name=label, x=labels, y=[float(r.result.summary[key]) for r in runs],
                    marker_color=CATEGORY_COLOURS.get(category), hovertemplate="%{x}: $%{y:,.0f}<extra>" + label + "</extra>")  # fmt: skip
    fig.add_scatter(name="lifetime spend", x=labels, y=[float(r.result.summary["total_cost_usd"]) for r in runs],
                    mode="markers", marker={"symbol": "diamond", "size": 12, "color": "#000000"},
                    hovertemplate="%{x}: $%{y:,.0f}<extra>lifetime spend</extra>")  # fmt: skip
    fig.update_layout(barmode="group", yaxis_title="USD over the horizon", height=420, legend_title="spend")
    return fig


def monthly_figure(runs: list[ReportRun]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    plans: list[str] = []
    for i, run in enumerate(runs):
        table = monthly_by_category(run)
        for category, colour in CATEGORY_COLOURS.items():
            values = table[category].to_numpy()
            if category == "write-off" and not values.any():
                continue
            fig.add_bar(name=f"{run.label}: {category}", x=table.index, y=values, marker_color=colour,
                        offsetgroup=str(i), legendgroup=run.label, visible=i == 0,
                        hovertemplate="%{x|%Y-%m}: $%{y:,.0f}<extra>" + html.escape(f"{run.label}: {category}") + "</extra>")  # fmt: skip
            plans.append(run.label)
    fig.update_layout(barmode="stack", yaxis_title="USD per month", height=460,
                      updatemenus=_plan_menu([r.label for r in runs], plans, first_only=True))  # fmt: skip
    tops = [outlier_axis_top(monthly_by_category(r).sum(axis=1).to_numpy()) for r in runs]
    if any(t is not None for t in tops) and all(t is not None for t in tops):
        top = max(t for t in tops if t is not None)
        fig.update_yaxes(range=[0, top])
        fig.update_layout(title={"text": f"axis cut at ${top:,.0f}: a few months (a training run, a write-off) "
                                         "go past it; hover them for their spend, double-click to see all",
                                 "font": {"size": 12}})  # fmt: skip
    return fig


def latency_figure(runs: list[ReportRun]) -> Any:
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT (ms)", "TPOT (ms)"))
    plans: list[str] = []
    seen: set[int] = set()
    for run in runs:
        for j, ((deployment, workload), curve) in enumerate(run.curves.items()):
            if id(curve) in seen or not hasattr(curve, "quantile_levels"):
                continue
            seen.add(id(curve))
            levels = np.asarray(curve.quantile_levels)
            rates = np.asarray(curve.rates_per_replica)
            slo = run.scenario.workload(workload).slo
            for col, (metric, table, target) in enumerate((("TTFT", curve.ttft_ms, slo.ttft_p95_ms),
                                                           ("TPOT", curve.tpot_ms, slo.tpot_p95_ms)), 1):  # fmt: skip
                for q, dash in ((0.5, "dot"), (0.95, "solid")):
                    k = int(np.argmin(np.abs(levels - q)))
                    name = f"{run.label}: {deployment}/{workload} {metric} p{round(q * 100)}"
                    fig.add_scatter(x=rates, y=np.asarray(table)[:, k], mode="lines+markers", name=name,
                                    line={"dash": dash, "color": _palette(j)}, legendgroup=f"{run.label}{deployment}",
                                    hovertemplate="%{x:.2f} req/s: %{y:,.1f} ms<extra>" + html.escape(name) + "</extra>",
                                    row=1, col=col)  # fmt: skip
                    plans.append(run.label)
                if target is not None:
                    fig.add_scatter(x=[rates.min(), rates.max()], y=[target, target], mode="lines",
                                    name=f"{run.label}: {workload} SLO {metric} p95 {target:g} ms",
                                    line={"color": "#D55E00", "width": 1}, row=1, col=col)  # fmt: skip
                    plans.append(run.label)
                if curve.capacity_per_replica > 0:
                    fig.add_vline(x=float(curve.capacity_per_replica), line_dash="dashdot", line_color=_palette(j),
                                  row=1, col=col)  # fmt: skip
    if not plans:
        return None
    fig.update_yaxes(type="log")
    fig.update_xaxes(title_text="requests per second per replica")
    fig.update_layout(height=520, updatemenus=_plan_menu([r.label for r in runs], plans))
    return fig


def utilisation_figure(runs: list[ReportRun]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    plans: list[str] = []
    for i, run in enumerate(runs):
        hourly = run.result.hourly
        for j, pool in enumerate(hourly["pool"].unique()):
            rows = hourly[hourly["pool"] == pool]
            day = pd.to_datetime(rows["time"]).dt.floor("D")
            sums = rows.groupby(day)[["gpus_busy", "gpus_billed"]].sum()
            share = (sums["gpus_busy"] / sums["gpus_billed"].where(sums["gpus_billed"] > 0)).to_numpy()
            name = f"{run.label}: {pool}"
            fig.add_scatter(x=sums.index, y=share, mode="lines", name=name,
                            line={"dash": _DASHES[i % len(_DASHES)], "color": _palette(j)},
                            hovertemplate="%{x|%Y-%m-%d}: %{y:.1%}<extra>" + html.escape(name) + "</extra>")  # fmt: skip
            plans.append(run.label)
    fig.update_layout(height=420, yaxis={"tickformat": ".0%", "title": "busy / billed GPU-hours (daily)",
                                         "range": [0, 1.05]},
                      xaxis={"rangeslider": {"visible": True}},
                      updatemenus=_plan_menu([r.label for r in runs], plans))  # fmt: skip
    return fig


#: Okabe-Ito, for series that are not spend categories.
_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def _palette(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


__all__ = ["render_html", "summary_table", "write_html"]
