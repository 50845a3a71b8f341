"""CLI command ``fleetsim calibrate``: measure this machine and write a calibration profile.

Needs PyTorch (the ``calibrate`` extra); torch is imported only when the command runs.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from simulator.cli.app import app
from simulator.cli.options import err, out, print_json, table, user_errors
from simulator.common.errors import Problem, ScenarioError

TORCH_MISSING = (
    "fleetsim calibrate needs PyTorch: install the 'calibrate' extra: "
    "pip install 'fleetsim[calibrate]'"
)

DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="Where to measure: cpu or cuda (default cpu; with --check: "
        "where the profile was measured).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        err.print(TORCH_MISSING, markup=False)
        raise typer.Exit(2) from None


@contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on stderr (a terminal only, not with --quiet); yields its callback."""
    if quiet or not err.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(label: str, done: int, total: int) -> None:
            phase = "reference check" if label.startswith("reference") else "micro-benchmark"
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total,
                       description=f"{phase}: {label}"[:70])  # fmt: skip

        yield update


@contextmanager
def _run_errors() -> Iterator[None]:
    """Unknown names, a missing device, unsupported dtypes: one line on stderr, exit 2."""
    with user_errors():
        try:
            yield
        except (KeyError, ValueError, RuntimeError) as error:
            message = error.args[0] if error.args else str(error)
            raise ScenarioError([Problem((), str(message))], "fleetsim calibrate") from None


def _device(value: str | None) -> Any:
    """The device kind ('cpu' or 'cuda'), None when not given; exit 2 on anything else."""
    if value is not None and value not in ("cpu", "cuda"):
        err.print(f"--device: expected cpu or cuda, got {value!r}", markup=False)
        raise typer.Exit(2)
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _print_accuracy(report: Any) -> None:
    from calibration.accuracy import TABLE_COLUMNS, table_rows

    setup = report.setup
    title = (f"Accuracy of profile {report.profile} against the reference transformer "
             f"({setup['model']}, {setup['dtype']}, real generate loop)")  # fmt: skip
    out.print(table(title, TABLE_COLUMNS, table_rows(report)))
    kinds = dict.fromkeys(p.kind for p in report.points)
    by_kind = ", ".join(f"{k} {report.mape_of(k):.1f}%" for k in kinds)
    out.print(f"MAPE {report.mape:.1f}% ({by_kind})")


@app.command()
def calibrate(
    device: DeviceOpt = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Fewer points and repeats (~1 min on CPU).")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Profile file to write (default: ./<name>.yaml)."),
    ] = None,
    check: Annotated[
        str | None,
        typer.Option(
            "--check",
            metavar="PROFILE",
            show_default=False,
            help="Measure nothing new: rerun the reference check against this profile "
            "(a file, or a bundled profile's name) and print the per-point errors.",
        ),
    ] = None,
    gpu: Annotated[
        str | None,
        typer.Option(
            "--gpu",
            help="Catalog GPU the profile describes (default: cpu-local on "
            "CPUs, cpu-local-amx on CPUs with AMX, guessed from the CUDA device name).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Profile name (default: --out's stem, else <gpu>-measured)."),
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype", help="Serving dtype the profile describes (default bf16 where supported)."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", min=1, help="CPU threads (default 1: stable timings on shared VMs)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Catalog model of the reference check (default tiny-cpu on "
            "CPUs, llama-3-8b on GPUs).",
        ),
    ] = None,
    accuracy: Annotated[
        bool,
        typer.Option(
            "--accuracy/--no-accuracy",
            help="After fitting, score the profile "
            "against the reference transformer and store the result in it.",
        ),
    ] = True,
    fit_results: Annotated[
        Path | None,
        typer.Option(
            "--fit",
            metavar="RESULTS",
            help="Fit --gpu's profile to measured serving figures instead of micro-benchmarks: "
            "a CSV in the layout of serving_calibration.csv, or the JSON `vllm bench serve "
            "--save-result` writes (then give --model, --dtype, --tp). No PyTorch needed.",
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option("--base", help="With --fit: the profile to start from (default: --gpu's bundled one)."),
    ] = None,
    tensor_parallel: Annotated[
        int, typer.Option("--tp", min=1, help="With --fit on a vllm JSON: the run's tensor parallelism.")
    ] = 1,
    fit_parameters: Annotated[
        str | None,
        typer.Option(
            "--fit-parameters",
            help="With --fit: comma-separated profile parameters to fit (default "
            "gemm_efficiency_max, fp8_gemm_efficiency_max, memory_bandwidth_efficiency, "
            "sequence_overhead_s).",
        ),
    ] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure this machine with PyTorch micro-benchmarks and fit a calibration profile.

    Runs GEMMs, attention, element-wise ops, fixed overheads, a training step and (on several
    GPUs) all-reduce; fits the cost model's efficiency parameters; writes the profile (atomic).
    Examples:

      fleetsim calibrate --device cpu --quick

      fleetsim calibrate --device cpu --out calibration/profiles/cpu-local.yaml --name cpu-local

      fleetsim calibrate --check cpu-local

      fleetsim calibrate --fit results.csv --gpu h100-sxm --out h100-fitted.yaml
    """
    if fit_results is not None:
        from simulator.cli.calibrate_fit import fit_command

        fit_command(fit_results, gpu, base, model, dtype, tensor_parallel, fit_parameters,
                    output, name, as_json)  # fmt: skip
        return
    _require_torch()
    kind = _device(device)
    if check is not None:
        _check(check, kind, model, quiet, as_json)
        return
    if dtype is not None and dtype not in ("fp32", "bf16"):
        err.print(f"--dtype: expected fp32 or bf16, got {dtype!r}", markup=False)
        raise typer.Exit(2)

    from calibration.pipeline import calibrate as run_calibration
    from calibration.profile_io import write_profile

    profile_name = name or (output.stem if output else None)
    with _run_errors(), _progress(quiet) as progress:
        run = run_calibration(kind or "cpu", quick=quick, gpu=gpu, dtype=cast(Any, dtype),
                              threads=threads,
                              name=profile_name, check=accuracy, reference_model=model,
                              progress=progress)  # fmt: skip
    target = output or Path(f"{run.profile.name}.yaml")
    with user_errors():
        write_profile(run.profile, target, _comment(run))
    if as_json:
        print_json({"profile": str(target), "parameters": run.profile.parameters.model_dump(),
                    "fit": run.fit.summary(), "benchmark_s": round(run.benchmark_s, 1),
                    "check_s": None if run.check_s is None else round(run.check_s, 1),
                    "accuracy": None if run.accuracy is None else run.accuracy.summary(),
                    "skipped": run.measurements.skipped})  # fmt: skip
        return
    params = run.profile.parameters.model_dump()
    rows = [[k, _fmt(v)] for k, v in params.items()]
    out.print(table(f"Fitted parameters: {run.profile.name} ({run.profile.device}, "
                    f"gpu {run.profile.gpu}, {run.measurements.settings.get('primary_dtype')})",
                    ["parameter", "value"], rows))  # fmt: skip
    groups = run.fit.mape_by_group
    out.print("Fit MAPE {:.1f}% over {} points ({})".format(
        run.fit.mape, sum(run.fit.points_by_group.values()),
        ", ".join(f"{g} {v:.1f}%" for g, v in groups.items())))  # fmt: skip
    for note in run.measurements.skipped:
        out.print(f"skipped: {note}")
    if run.accuracy is not None:
        _print_accuracy(run.accuracy)
    timing = f"micro-benchmark {run.benchmark_s:.0f} s"
    if run.check_s is not None:
        timing += f", reference check {run.check_s:.0f} s"
    out.print(f"{timing}; wrote {target}")


def _check(ref: str, device: Any, model: str | None, quiet: bool, as_json: bool) -> None:
    from calibration.accuracy import LIMIT_MAPE
    from calibration.pipeline import check as run_check
    from calibration.pipeline import reference_setup_for
    from calibration.profile_io import read_profile

    with user_errors():
        profile = read_profile(ref)
    here = _device_here(reference_setup_for(profile, None, device)[1])
    elsewhere = profile.source == "measured" and here is not None and profile.device != here
    if elsewhere and not quiet:
        err.print(f"note: profile {profile.name} was measured on {profile.device!r}; this machine is {here!r}. "
                  "A profile predicts the device it was measured on: to check this one, measure it first "
                  "(fleetsim calibrate --out my-profile.yaml) and check that profile.", markup=False)  # fmt: skip
    with _run_errors(), _progress(quiet) as progress:
        report = run_check(profile, reference_model=model, device=device, progress=progress)
    if as_json:
        print_json(report.summary() | {"profile_device": profile.device, "device_here": here,
                                       "measured_elsewhere": elsewhere})  # fmt: skip
    else:
        _print_accuracy(report)
    if report.mape > LIMIT_MAPE:
        why = (f" (the profile was measured on {profile.device!r}, not on this {here!r}: measure this machine "
               "with fleetsim calibrate and check that profile)") if elsewhere else ""  # fmt: skip
        err.print(f"MAPE {report.mape:.1f}% is above the {LIMIT_MAPE:.0f}% limit{why}", markup=False)
        raise typer.Exit(1)


def _device_here(kind: str | None) -> str | None:
    """The name this machine's device is recorded under in a measured profile (the CPU model,
    or the CUDA device's name); None when it cannot be told."""
    try:
        if kind == "cuda":
            import torch

            return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None
        from calibration.benchmark_runtime import cpu_name

        return cpu_name()
    except Exception:  # noqa: BLE001 - only a note depends on it
        return None


def _comment(run: Any) -> str:
    """The header comment of a written profile: provenance, fit, accuracy table."""
    from calibration.accuracy import table_lines

    s = run.measurements.settings
    command = "fleetsim " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        (f"Measured by `{command}` on {s.get('device')} ({s.get('device_kind')}, "
         f"{s.get('threads')} thread(s)), torch {s.get('torch_version')}, {run.profile.date}."),
        f"Plan {run.plan.name}: micro-benchmark {run.benchmark_s:.0f} s"
        + (f", reference check {run.check_s:.0f} s." if run.check_s is not None else "."),
        ("Efficiencies are fractions of the catalog peaks of gpu "
         f"{run.profile.gpu!r} (simulator/catalog/gpus.yaml); dtype {s.get('primary_dtype')}."),
        "Fit MAPE {:.1f}% over the micro-benchmark points ({}).".format(
            run.fit.mape, ", ".join(f"{g} {v:.1f}%" for g, v in run.fit.mape_by_group.items())),
        *[f"Skipped: {n}" for n in run.measurements.skipped],
    ]  # fmt: skip
    if run.accuracy is not None:
        setup = run.accuracy.setup
        how = f"{setup.get('statistic', 'lower_quartile')} of {setup.get('repeats', '?')}"
        lines += ["", (f"Accuracy against the reference transformer ({setup['model']}, "
                       f"{setup['dtype']}, real generate loop, {how} interleaved repeats), "
                       "predicted by this profile:")]  # fmt: skip
        lines += ["  " + line for line in table_lines(run.accuracy)]
        lines += ["The reference's timings are never used by the fit."]
    return "\n".join(lines)
