"""CLI commands of the inference engine: ``fleetsim serve`` and ``fleetsim curve``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.cli.app import app
from simulator.cli.options import OnDateOpt, PlanOpt, err, load, out, print_json, table, user_errors
from simulator.common.errors import Problem, ScenarioError
from simulator.common.files import OutputError, finite, write_atomic

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)]
DeploymentOpt = Annotated[str, typer.Option("--deployment", "-d", help="Deployment name.")]
WorkloadOpt = Annotated[
    str | None,
    typer.Option("--workload", "-w", help="Workload (default: the first routed to the deployment)."),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed (default: the scenario's).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]

STAT_KEYS = ("mean", "p50", "p90", "p95", "p99")


@contextmanager
def _scenario_errors(path: Path) -> Iterator[None]:
    """Like ``user_errors``, naming the scenario file when an error has no file of its own."""
    with user_errors():
        try:
            yield
        except ScenarioError as error:
            if error.source == "<scenario>":
                raise ScenarioError(error.problems, str(path)) from None
            raise


def _progress(message: str, quiet: bool) -> Any:
    if quiet or not err.is_terminal:
        return nullcontext()
    return err.status(message)


def _ms(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.1f}"


@app.command("serve")
def serve_command(
    scenario: ScenarioArg,
    deployment: DeploymentOpt,
    workload: WorkloadOpt = None,
    rps: Annotated[
        float | None,
        typer.Option("--rps", help="Requests per second offered to the deployment (with --trace: "
                     "rescale the trace to this mean rate)."),
    ] = None,
    duration_s: Annotated[
        float | None,
        typer.Option("--duration-s", help="Seconds of arrivals (default with --trace: its span)."),
    ] = None,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Replicas serving.")] = 1,
    seed: SeedOpt = None,
    trace: Annotated[
        Path | None,
        typer.Option("--trace", help="Request trace CSV: arrival time, prompt and output tokens "
                     "(e.g. Azure TIMESTAMP,ContextTokens,GeneratedTokens)."),
    ] = None,
    router: Annotated[
        str | None,
        typer.Option("--router", help="round_robin, least_outstanding or shared_queue "
                     "(default: the deployment's)."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Closed loop instead of --rps: this many users, "
                     "each sending its next request when the last one ends (+ --think-s)."),
    ] = None,
    think_s: Annotated[
        float | None, typer.Option("--think-s", min=0, help="With --concurrency: seconds a user waits "
                                   "between a response and its next request (default: the workload's "
                                   "think_s if its traffic is concurrent users, else 0).")
    ] = None,
    think: Annotated[
        str, typer.Option("--think", help="With --concurrency: think times constant or exponential "
                          "(mean --think-s).")
    ] = "constant",
    failures: Annotated[
        bool, typer.Option("--failures", help="Inject replica failures with the deployment's failures "
                           "settings (rate per GPU-day, recovery, retry): each failure takes its replica out "
                           "for the recovery time and its requests are retried elsewhere or fail. Adds "
                           "availability, failed/retried requests and the latency while a replica is down.")
    ] = False,
    failures_per_gpu_day: Annotated[
        float | None, typer.Option("--failures-per-gpu-day", min=0, help="Failure rate per GPU per day for "
                                   "--failures, instead of the deployment's (implies --failures). The default "
                                   "4.74e-4 gives about no failure in an hour; e.g. 50 on 4 one-GPU replicas "
                                   "gives about 8 an hour.")
    ] = None,
    on: OnDateOpt = None,
    plan: PlanOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Simulate replicas of a deployment serving requests: latency percentiles, throughput,
    utilisation and SLO attainment.

    Example: fleetsim serve scenarios/chat-assistant.yaml -d chat-8b --rps 20 --duration-s 300

    Closed loop: fleetsim serve scenarios/chat-assistant.yaml -d chat-8b --concurrency 64 --duration-s 300

    Failures: fleetsim serve scenarios/chat-assistant.yaml -d chat-8b --rps 40 --replicas 4 --duration-s 3600 --failures --failures-per-gpu-day 50
    """
    from simulator.inference import read_trace, serve

    loaded = load(scenario, on, plan)
    with _scenario_errors(scenario):
        trace_data = read_trace(trace) if trace is not None else None
        with _progress("simulating...", quiet):
            result = serve(loaded, deployment, workload, rps=rps, duration_s=duration_s,
                           replicas=replicas, seed=seed, trace=trace_data, router=router,
                           concurrency=concurrency, think_s=think_s, think=think, failures=failures,
                           failures_per_gpu_day=failures_per_gpu_day)  # fmt: skip
    summary = result.summary
    if as_json:
        print_json(_json_ready(summary))
        return
    out.print(_serve_table(summary))


def _json_ready(value: Any) -> Any:
    """NaN/inf become null so the output is valid JSON."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _serve_table(s: dict[str, Any]) -> Any:
    from rich.console import Group

    load = (f"{s['concurrency']} users (think {s['think_s']:g} s, {s['think']}): "
            f"{s['offered_requests_per_s']:.3g} req/s achieved"
            if s.get("concurrency") else f"{s['offered_requests_per_s']:.3g} req/s")  # fmt: skip
    title = (f"Serving {s['deployment']} x {s['replicas']} ({s['router']}), workload "
             f"{s['workload'] or '(trace)'}, {load} for "
             f"{s['duration_s']:g} s (warm-up {s['warmup_s']:g} s excluded)")  # fmt: skip
    latency = table(title, ["latency (ms)", *STAT_KEYS],
                    [[name.replace("_ms", "").replace("_", " "), *[_ms(s[name][k]) for k in STAT_KEYS]]
                     for name in ("ttft_ms", "tpot_ms", "e2e_ms", "queue_wait_ms")])  # fmt: skip
    attainment = s["slo_attainment"]
    targets = ", ".join(f"{k.removesuffix('_p95_ms')} <= {v:g} ms" for k, v in s["slo_targets_ms"].items())
    reasons = s["dropped_by_reason"]
    dropped = f"{s['requests_dropped']:,} ({reasons['queue_full']:,} / {reasons['too_long']:,})"
    rows = [
        ["requests arrived / completed", f"{s['requests_arrived']:,} / {s['requests_completed']:,}"],
        ["dropped (queue full / too long)", dropped],
        ["in flight at the end", f"{s['requests_in_flight']:,}"],
        ["response-cache hits", f"{s['requests_cache_hits']:,}"],
        ["pre-emptions", f"{s['preemptions']:,}"],
        ["throughput, tokens/s (prefill + output)", f"{s['throughput_tokens_per_s']:,.0f}"],
        ["output tokens/s", f"{s['output_tokens_per_s']:,.0f}"],
        ["replica utilisation (busy)", f"{s['replica_utilization']:.1%}"],
        ["mean batch size", f"{s['mean_batch_size']:.1f}"],
        ["KV-cache occupancy", f"{s['kv_occupancy']:.1%}"],
        ["SLO attainment" + (f" ({targets})" if targets else ""),
         "-" if attainment is None else f"{attainment:.2%} (target {s['slo_attainment_target']:.0%})"
         if s["slo_attainment_target"] is not None else f"{attainment:.2%}"],
        ["overloaded", "YES: queue growing / dropping" if s["overloaded"] else "no"],
    ]  # fmt: skip
    spec = s.get("speculative")
    if spec:
        drafter = spec["draft_model"] or "MTP head"
        rows.append(["speculative decoding", (f"{drafter}, {spec['draft_tokens']} drafted, acceptance "
                     f"{spec['acceptance_rate']:.2f}: {spec['tokens_per_iteration']:.2f} tokens/iteration")])
    rows.extend(_failure_rows(s))
    dis = s.get("disaggregation")
    if dis:
        transfer = "-" if dis["kv_transfer_ms_mean"] is None else f"{dis['kv_transfer_ms_mean']:.1f} ms"
        rows.append(["prefill : decode replicas", (f"{dis['prefill_replicas'] * dis['units']} : "
                     f"{dis['decode_replicas'] * dis['units']} (mean KV transfer {transfer}, in TTFT)")])
    return Group(latency, table("Totals", ["figure", "value"], rows))


def _failure_rows(s: dict[str, Any]) -> list[list[str]]:
    """Rows of a run with failures injected (none without)."""
    f = s.get("failures")
    if not f:
        return []
    during = f["ttft_ms_during_failures"]
    met = f["slo_attainment_during_failures"]
    return [
        ["failures injected", (f"{f['failures']:,} ({f['per_gpu_day']:g} per GPU-day, {f['rate_per_replica_hour']:.3g} "
                               f"per replica-hour, {f['recovery_s']:.0f} s to recover)")],
        ["replica time down (measured / renewal theory)",
         f"{f['replica_seconds_down']:,.0f} s; {f['down_share']:.2%} / {f['down_share_expected']:.2%}"],
        ["requests failed / retried after a failure", f"{s['requests_failed']:,} / {s['requests_retried']:,}"
         + (" (retry on)" if f["retry"] else " (retry off)")],
        ["availability (served within the SLO)", "-" if s["availability"] is None else f"{s['availability']:.3%}"],
        ["TTFT p95 / p99 arriving while a replica is down", f"{_ms(during['p95'])} / {_ms(during['p99'])} ms "
         f"(overall {_ms(s['ttft_ms']['p95'])} / {_ms(s['ttft_ms']['p99'])}; {f['requests_during_failures']:,} "
         f"requests" + ("" if met is None else f", SLO met {met:.1%}") + ")"],
    ]  # fmt: skip


# ---------------------------------------------------------------------------- curve


@app.command("curve")
def curve_command(
    scenario: ScenarioArg,
    deployment: DeploymentOpt,
    workload: WorkloadOpt = None,
    seed: SeedOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="Shorter simulations (rougher).")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the curve as an image (PNG, SVG, PDF).")
    ] = None,
    on: OnDateOpt = None,
    plan: PlanOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Latency against load on one replica (one prefill + decode unit when disaggregated) and
    its capacity under the workload's SLO.

    Example: fleetsim curve scenarios/chat-assistant.yaml -d chat-70b --plot chat-70b.png
    """
    from simulator.inference.api import find_deployment, find_workload
    from simulator.inference.curve import deployment_curve

    loaded = load(scenario, on, plan)
    with _scenario_errors(scenario):
        dep = find_deployment(loaded, deployment)
        wl = find_workload(loaded, dep, workload)
        assert wl is not None
        with _progress(f"building the latency curve of {dep.name}...", quiet):
            curve = deployment_curve(loaded, dep.name, wl.name, seed=seed, quick=quick)
        if plot is not None:
            _write_plot(curve, wl.slo, plot)
    data = _curve_json(curve, wl.slo)
    if as_json:
        print_json(data)
        return
    rows = [
        [f"{p['rate_per_replica']:.3f}", f"{p['busy_fraction']:.0%}",
         f"{p['slo_attainment']:.1%} ± {p['slo_attainment_stderr']:.1%}",
         _ms(p["ttft_ms"]["p50"]), _ms(p["ttft_ms"]["p95"]), _ms(p["ttft_ms"]["p99"]),
         _ms(p["tpot_ms"]["p50"]), _ms(p["tpot_ms"]["p95"]), _ms(p["e2e_ms"]["p95"])]
        for p in data["points"]
    ]  # fmt: skip
    columns = ["req/s per replica", "busy", "SLO met ± s.e.", "TTFT p50", "TTFT p95", "TTFT p99",
               "TPOT p50", "TPOT p95", "E2E p95"]  # fmt: skip
    out.print(table(f"Latency vs load: one replica of {curve.deployment}, workload "
                    f"{curve.workload} (ms)", columns, rows))  # fmt: skip
    targets = ", ".join(f"{k.removesuffix('_p95_ms')} <= {v:g} ms" for k, v in data["slo_targets_ms"].items())
    error = data["capacity_error"]
    spread = "".join([
        f" ± {error['capacity_stderr_per_replica']:.3f} (s.e.)" if error["capacity_stderr_per_replica"] is not None else "",
        f", resolution {error['capacity_resolution']:.1%}" if error["capacity_resolution"] is not None else "",
    ])  # fmt: skip
    out.print(f"capacity per replica: {curve.capacity_per_replica:.3f} req/s{spread} "
              f"(SLO {targets or 'none (stable queue)'}, met by >= {wl.slo.attainment_target:.0%} "
              f"of requests)")  # fmt: skip
    out.print("± are standard errors by batch means (10 batches per run; they understate the error "
              "where the queue is correlated over longer than a batch)", style="dim")
    if plot is not None:
        out.print(f"plot written to {plot}")


def _curve_json(curve: Any, slo: Any) -> dict[str, Any]:
    import numpy as np

    levels = curve.quantile_levels

    def stats(row: np.ndarray) -> dict[str, float | None]:
        values = {f"p{p}": float(np.interp(p / 100, levels, row)) for p in (50, 90, 95, 99)}
        return {k: (v if math.isfinite(v) else None) for k, v in values.items()}

    points = [
        {
            "rate_per_replica": float(rate),
            "slo_attainment": float(curve.slo_attainment[i]),
            "slo_attainment_stderr": float(curve.slo_attainment_stderr[i]),
            "ttft_p95_stderr_ms": finite(float(curve.ttft_p95_stderr_ms[i])),
            "busy_fraction": float(curve.busy_fraction[i]),
            "ttft_ms": stats(curve.ttft_ms[i]),
            "tpot_ms": stats(curve.tpot_ms[i]),
            "e2e_ms": stats(curve.e2e_ms[i]),
        }
        for i, rate in enumerate(curve.rates_per_replica)
    ]
    targets = {k: v for k, v in slo.model_dump().items() if v is not None and k != "attainment_target"}
    return {
        "deployment": curve.deployment,
        "workload": curve.workload,
        "capacity_per_replica": curve.capacity_per_replica,
        "capacity_error": curve.capacity_error(),
        "slo_targets_ms": targets,
        "slo_attainment_target": slo.attainment_target,
        "tokens_per_request": {
            "input": curve.tokens_per_request[0],
            "output": curve.tokens_per_request[1],
        },
        "points": points,
    }


def _write_plot(curve: Any, slo: Any, path: Path) -> None:
    """TTFT / TPOT / E2E p50 & p95 against load, SLO targets and capacity marked; atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    suffix = path.suffix.lower().lstrip(".") or "png"
    if suffix not in ("png", "svg", "pdf"):
        raise ScenarioError([Problem(("plot",), f"unsupported image type {suffix!r} (png, svg, pdf)")],
                            str(path))  # fmt: skip
    levels = curve.quantile_levels
    rates = curve.rates_per_replica
    panels = [("TTFT", curve.ttft_ms, slo.ttft_p95_ms), ("TPOT", curve.tpot_ms, slo.tpot_p95_ms),
              ("E2E", curve.e2e_ms, slo.e2e_p95_ms)]  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    for ax, (name, quantiles, target) in zip(axes, panels):
        for q, style in ((0.5, "-"), (0.95, "--"), (0.99, ":")):
            values = [np.interp(q, levels, row) for row in quantiles]
            ax.plot(rates, values, style, marker="o", markersize=3, label=f"p{round(q * 100)}")
        if target is not None:
            ax.axhline(target, color="red", linewidth=1, label=f"SLO {target:g} ms")
        if curve.capacity_per_replica > 0:
            ax.axvline(curve.capacity_per_replica, color="gray", linestyle="-.",
                       label=f"capacity {curve.capacity_per_replica:.2f} req/s")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("requests per second per replica")
        ax.set_ylabel(f"{name} (ms)")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{curve.deployment} / {curve.workload}: latency vs load (one replica)")
    try:
        write_atomic(path, lambda temp: fig.savefig(temp, format=suffix, dpi=120),
                     create_folders=False)  # fmt: skip
    except OutputError as error:
        raise ScenarioError([Problem(("plot",), f"cannot write the plot: {error}")],
                            str(path)) from None  # fmt: skip
    finally:
        plt.close(fig)
