"""Side-by-side comparison of runs (plans of one scenario, or several scenario files).

Built from summaries alone, so the CLI, the JSON output and the workbook's Compare sheet show
the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """One row of the comparison: a label, its unit, and a value per run."""

    key: str
    label: str
    unit: str  # "usd", "usd_per_million", "gpus", "fraction", "date", "count", "rps"
    values: list[Any]
    lower_is_better: bool = True


@dataclass(frozen=True)
class Comparison:
    runs: list[str]  # run labels (plan names, or file:plan)
    metrics: list[Metric]
    meets_slo: list[bool]
    recommended: str | None  # cheapest run meeting every SLO

    def deltas(self, metric: Metric) -> list[float | None]:
        """Each run's value minus the first run's (numbers only)."""
        first = metric.values[0]
        out: list[float | None] = []
        for value in metric.values:
            numeric = isinstance(value, int | float) and isinstance(first, int | float)
            out.append(value - first if numeric and value is not None and first is not None else None)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "recommended": self.recommended,
            "meets_every_slo": dict(zip(self.runs, self.meets_slo, strict=True)),
            "metrics": [
                {"key": m.key, "label": m.label, "unit": m.unit,
                 "values": dict(zip(self.runs, m.values, strict=True)),
                 "delta_vs_first": dict(zip(self.runs, self.deltas(m), strict=True))}
                for m in self.metrics
            ],
        }  # fmt: skip


def run_label(summary: dict[str, Any], several_scenarios: bool) -> str:
    return f"{summary['scenario']}:{summary['plan']}" if several_scenarios else summary["plan"]


def compare(summaries: list[dict[str, Any]]) -> Comparison:
    """Comparison table of several run summaries (the first is the reference for deltas)."""
    several = len({s["scenario"] for s in summaries}) > 1
    runs = [run_label(s, several) for s in summaries]
    metrics: list[Metric] = []

    def add(key: str, label: str, unit: str, getter, lower_is_better: bool = True) -> None:
        metrics.append(Metric(key, label, unit, [getter(s) for s in summaries], lower_is_better))

    add("total_cost_usd", "lifetime spend", "usd", lambda s: s["total_cost_usd"])
    add("inference_cost_usd", "  inference", "usd", lambda s: s["inference_cost_usd"])
    add("training_cost_usd", "  training", "usd", lambda s: s["training_cost_usd"])
    add("idle_cost_usd", "  idle (paid, unused)", "usd", lambda s: s["idle_cost_usd"])
    if all("cash_flow" in s for s in summaries):
        add("cash_flow.total_usd", "net cash out (capex when paid)", "usd", lambda s: s["cash_flow"]["total_usd"])
        add("cash_flow.npv_usd", "  net present value of the cash", "usd", lambda s: s["cash_flow"]["npv_usd"])
    if any(s.get("redundancy_cost_usd") for s in summaries):
        add("redundancy_cost_usd", "  capacity held for failures", "usd", lambda s: s.get("redundancy_cost_usd"))
    if any(s.get("region_reserve_cost_usd") for s in summaries):
        add("region_reserve_cost_usd", "    of which for a region's loss", "usd",
            lambda s: s.get("region_reserve_cost_usd"))
    for year in _union(s["cost_by_fiscal_year_usd"] for s in summaries):
        add(f"cost_{year}", f"spend {year}", "usd", lambda s, y=year: s["cost_by_fiscal_year_usd"].get(y))
    for name in _union(s["workloads"] for s in summaries):
        add(f"{name}.all_in_cost_per_million_tokens_usd", f"{name}: $/1M tokens, all-in", "usd_per_million",
            lambda s, n=name: _get(s, "workloads", n, "all_in_cost_per_million_tokens_usd"))
        add(f"{name}.cost_per_million_tokens_usd", f"{name}: $/1M tokens, marginal", "usd_per_million",
            lambda s, n=name: _get(s, "workloads", n, "cost_per_million_tokens_usd"))
        add(f"{name}.slo_attainment", f"{name}: SLO attainment", "fraction",
            lambda s, n=name: _get(s, "workloads", n, "slo_attainment"), lower_is_better=False)
        if any(_get(s, "workloads", name, "availability") is not None for s in summaries):
            add(f"{name}.availability", f"{name}: availability (answered within the SLO)", "fraction",
                lambda s, n=name: _get(s, "workloads", n, "availability"), lower_is_better=False)
        add(f"{name}.ttft_p95_ms", f"{name}: TTFT p95 ms", "ms", lambda s, n=name: _get(s, "workloads", n, "ttft_p95_ms"))
        add(f"{name}.unserved_requests", f"{name}: unserved requests", "count",
            lambda s, n=name: _get(s, "workloads", n, "unserved_requests"))
        if any(_get(s, "workloads", name, "closed_loop") for s in summaries):  # concurrent users
            add(f"{name}.requests_per_s_mean", f"{name}: req/s its users send (mean)", "rps",
                lambda s, n=name: (_get(s, "workloads", n, "closed_loop") or {}).get("requests_per_s_mean"),
                lower_is_better=False)
    for outage in _union({o["name"]: None for o in s.get("region_outages", [])} for s in summaries):
        add(f"outage.{outage}.unserved_requests", f"{outage}: requests unserved in the outage", "count",
            lambda s, n=outage: _outage(s, n, "unserved_requests"))
        add(f"outage.{outage}.slo_attainment", f"{outage}: SLO attainment in the outage", "fraction",
            lambda s, n=outage: _outage(s, n, "slo_attainment"), lower_is_better=False)
    for name in _union(s["pools"] for s in summaries):
        add(f"{name}.peak_gpus", f"{name}: peak GPUs", "gpus", lambda s, n=name: _get(s, "pools", n, "peak_gpus"))
        add(f"{name}.mean_utilization", f"{name}: utilisation", "fraction",
            lambda s, n=name: _get(s, "pools", n, "mean_utilization"), lower_is_better=False)
        if any(_get(s, "pools", name, "commitment") for s in summaries):
            add(f"{name}.unused_commitment_usd", f"{name}: commitment paid unused", "usd",
                lambda s, n=name: (_get(s, "pools", n, "commitment") or {}).get("unused_commitment_usd"))
    for name in _union(s["training_jobs"] for s in summaries):
        add(f"{name}.last_finish", f"{name}: finishes", "date", lambda s, n=name: _get(s, "training_jobs", n, "last_finish"))
    meets = [all(w["slo_met"] for w in s["workloads"].values()) for s in summaries]
    eligible = [(s["total_cost_usd"], label) for s, label, ok in zip(summaries, runs, meets, strict=True) if ok]
    return Comparison(runs, metrics, meets, min(eligible)[1] if eligible else None)


def _union(dicts) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        seen.update(dict.fromkeys(d))
    return list(seen)


def _get(summary: dict[str, Any], section: str, name: str, key: str) -> Any:
    return summary.get(section, {}).get(name, {}).get(key)


def _outage(summary: dict[str, Any], name: str, key: str) -> Any:
    return next((o[key] for o in summary.get("region_outages", []) if o["name"] == name), None)
