"""One calibration run end to end: benchmark -> fit -> profile (-> reference check).

The functions here are what ``fleetsim calibrate`` and the validation tests call. They import
torch only when they run (through :mod:`calibration.benchmark` and
:mod:`calibration.reference_model`), return data, and print nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from calibration.accuracy import AccuracyReport, compare
from calibration.fit import FitResult, fit
from calibration.plan import BenchmarkPlan, DeviceKind, plan_for
from calibration.profile_io import build_profile
from calibration.records import Measurements
from calibration.reference_setup import ReferenceSetup, Timing
from simulator.catalog import Dtype, GpuSpec, ModelSpec, bundled_catalog
from simulator.perf.profile import (
    CalibrationProfile,
    EfficiencyParameters,
    bundled_profile,
    bundled_profile_names,
)

ProgressFn = Callable[[str, int, int], None]

#: Catalog GPU for a CUDA device name (first match of all the words, case-insensitive).
_GPU_NAMES: list[tuple[tuple[str, ...], str]] = [
    (("h100", "pcie"), "h100-pcie"), (("h100",), "h100-sxm"), (("h200",), "h200"),
    (("b200",), "b200"), (("a100", "40gb"), "a100-40-sxm"), (("a100",), "a100-80-sxm"),
    (("l40s",), "l40s"), (("l4",), "l4"), (("mi300x",), "mi300x"),
]  # fmt: skip


def gpu_for_device(
    device: DeviceKind, device_name: str, cpu_flags: frozenset[str] = frozenset()
) -> str | None:
    """The catalog GPU a device most likely is; None if unknown.

    A CPU is 'cpu-local-amx' when its flags include ``amx_bf16`` (bf16 GEMMs run on the AMX tile
    unit, far above the AVX-512 peak), else 'cpu-local'.
    """
    if device == "cpu":
        return "cpu-local-amx" if "amx_bf16" in cpu_flags else "cpu-local"
    lowered = device_name.lower()
    for words, name in _GPU_NAMES:
        if all(w in lowered for w in words):
            return name
    return None


def default_reference_model(device: DeviceKind) -> str:
    """Catalog model the reference check runs: small on CPUs, a real 8B model on GPUs."""
    return "tiny-cpu" if device == "cpu" else "llama-3-8b"


@dataclass
class CalibrationRun:
    """What one run produced, with its wall times."""

    profile: CalibrationProfile
    fit: FitResult
    measurements: Measurements
    plan: BenchmarkPlan
    benchmark_s: float
    accuracy: AccuracyReport | None = None
    check_s: float | None = None


def _gpu_spec(name: str) -> GpuSpec:
    gpus = bundled_catalog().gpus
    if name not in gpus:
        raise KeyError(f"unknown catalog GPU {name!r} (known: {', '.join(gpus)})")
    return gpus[name]


def _model_spec(model: str | ModelSpec | None, device: DeviceKind) -> ModelSpec:
    """A catalog model by name (default: the device's reference model), or a spec as given."""
    if isinstance(model, ModelSpec):
        return model
    models = bundled_catalog().models
    name = model or default_reference_model(device)
    if name not in models:
        raise KeyError(f"unknown catalog model {name!r} (known: {', '.join(models)})")
    return models[name]


def _base_parameters(gpu: str, device: DeviceKind) -> EfficiencyParameters:
    """Parameters a run does not measure come from the GPU's bundled profile (on a CPU without
    one, from 'cpu-local': what a CPU run leaves unmeasured is the GPU-to-GPU link)."""
    if device == "cpu" and gpu not in bundled_profile_names():
        gpu = "cpu-local"
    return bundled_profile(gpu).parameters


def calibrate(
    device: DeviceKind = "cpu",
    quick: bool = False,
    gpu: str | None = None,
    dtype: Dtype | None = None,
    threads: int | None = None,
    name: str | None = None,
    check: bool = True,
    reference_model: str | ModelSpec | None = None,
    progress: ProgressFn | None = None,
    plan: BenchmarkPlan | None = None,
) -> CalibrationRun:
    """Benchmark ``device``, fit a profile for catalog GPU ``gpu`` and, with ``check``, score it
    against the reference transformer.

    With ``check`` the reference's timed rounds are interleaved with the micro-benchmark's
    (spread evenly over them), so that both see the same machine even when a shared host's
    speed drifts during the run; its timings are stored in the profile, never fitted.
    ``dtype``: the serving dtype the profile describes (default bf16 where supported);
    ``threads``: CPU threads (default :data:`~calibration.benchmark_runtime.DEFAULT_CPU_THREADS`).
    Raises KeyError for an unknown GPU, ValueError for an unsupported dtype, RuntimeError when
    the device is missing.
    """
    from calibration.benchmark import Session
    from calibration.benchmark_runtime import configured, cpu_flags, supported_dtypes
    from calibration.reference_model import ReferenceSession

    plan = plan or plan_for(device, quick)
    clock = {"benchmark": 0.0, "reference": 0.0}

    def timed(phase: str, work: Callable[[], object]) -> None:
        t0 = time.perf_counter()
        work()
        clock[phase] += time.perf_counter() - t0

    with configured(device, threads) as runtime:
        dtypes = supported_dtypes(runtime.device)
        primary = dtype or dtypes[0]
        if primary not in dtypes:
            raise ValueError(f"dtype {primary} is not supported on {runtime.device_name} "
                             f"(supported: {', '.join(dtypes)})")  # fmt: skip
        gpu = gpu or gpu_for_device(device, runtime.device_name, cpu_flags())
        if gpu is None:
            raise KeyError(f"cannot tell which catalog GPU {runtime.device_name!r} is: pass --gpu")
        spec, base = _gpu_spec(gpu), _base_parameters(gpu, device)
        bench = Session(plan, runtime, dtypes, primary, progress)
        reference = None
        if check:
            model = _model_spec(reference_model, device)
            threads_used = runtime.threads if device == "cpu" else None
            repeats = min(plan.reference_repeats, plan.repeats)
            setup = ReferenceSetup(model, primary, repeats=repeats, threads=threads_used)
            reference = ReferenceSession(setup, runtime, progress)
        timed("benchmark", bench.prepare)
        if reference is not None:
            timed("reference", reference.prepare)
        # the reference's rounds spread evenly over the benchmark's (all of them when equal)
        reference_rounds: set[int] = set()
        if reference is not None:
            k = reference.rounds
            reference_rounds = {round(i * (plan.repeats - 1) / max(k - 1, 1)) for i in range(k)}
        done = 0
        for r in range(plan.repeats):
            timed("benchmark", lambda r=r: bench.round(r))
            if reference is not None and r in reference_rounds:
                timed("reference", lambda i=done: reference.round(i))
                done += 1
        measurements = bench.finish()
        timings = reference.finish() if reference is not None else None
    measurements.settings["benchmark_s"] = round(clock["benchmark"], 1)
    result = fit(measurements, spec, primary, base)
    profile = build_profile(name or f"{gpu}-measured", gpu, measurements, result)
    run = CalibrationRun(profile, result, measurements, plan, clock["benchmark"])
    if reference is not None and timings is not None:
        run.check_s = clock["reference"]
        run.accuracy = compare(reference.setup, timings, spec, profile)
        run.profile = build_profile(profile.name, gpu, measurements, result, run.accuracy)
    return run


def reference_setup_for(
    profile: CalibrationProfile,
    reference_model: str | ModelSpec | None = None,
    device: DeviceKind | None = None,
) -> tuple[ReferenceSetup, DeviceKind]:
    """The reference run that checks ``profile``: its dtype and threads, its device kind."""
    settings = profile.measurements.get("settings") or {}
    kind: DeviceKind = (
        device or settings.get("device_kind") or ("cpu" if profile.gpu.startswith("cpu-local") else "cuda")
    )
    dtype = settings.get("primary_dtype") or ("bf16" if kind == "cuda" else "fp32")
    threads = settings.get("threads") if kind == "cpu" else None
    repeats = settings.get("reference_repeats") or 5
    model = _model_spec(reference_model, kind)
    return ReferenceSetup(model, dtype, repeats=repeats, threads=threads), kind


def check(
    profile: CalibrationProfile,
    reference_model: str | ModelSpec | None = None,
    device: DeviceKind | None = None,
    progress: ProgressFn | None = None,
    setup: ReferenceSetup | None = None,
) -> AccuracyReport:
    """Rerun the reference transformer here and score ``profile``'s predictions of it."""
    chosen, kind = reference_setup_for(profile, reference_model, device)
    setup = setup or chosen
    timings = measure_reference(setup, kind, progress)
    return compare(setup, timings, _gpu_spec(profile.gpu), profile)


def measure_reference(
    setup: ReferenceSetup, device: str = "cpu", progress: object = None
) -> list[Timing]:
    """Run the reference model (imports torch) and return its timings."""
    from calibration.reference_model import measure

    return measure(setup, device, progress)  # type: ignore[arg-type]
