"""Calibration against measurement: a quick calibration of this machine predicts a real PyTorch
transformer's generate loop and training step.

The reference is ``tiny-cpu`` (Llama-style: RMSNorm, rotary, SwiGLU, KV cache; 4 layers, hidden
512) in bf16 on one CPU thread, at batch 1, 8, 32 x prompt 128, 512, plus one training step of
4 x 256 tokens. The profile is fitted on micro-benchmarks only; the reference's timed rounds
are interleaved with the benchmark's so both see the same (shared, noisy) machine. Acceptance:
MAPE <= 20% (the aim is 10%). About 1.5-2 minutes on the 2-core test VM.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from calibration.accuracy import LIMIT_MAPE, table_lines
from calibration.pipeline import CalibrationRun, calibrate
from calibration.profile_io import write_profile
from simulator.scenario.loading import load_profile

pytestmark = [pytest.mark.torch, pytest.mark.slow]


@pytest.fixture(scope="module")
def run() -> CalibrationRun:
    return calibrate("cpu", quick=True, check=True)


def test_quick_calibration_predicts_the_reference_transformer(run):
    report = run.accuracy
    assert report is not None
    table = "\n".join(table_lines(report))
    print(
        f"\n{table}\nquick micro-benchmark {run.benchmark_s:.0f} s, reference {run.check_s:.0f} s"
    )
    kinds = [(p.kind, p.batch, p.tokens) for p in report.points]
    assert kinds == [
        (k, b, p) for b in (1, 8, 32) for p in (128, 512) for k in ("prefill", "decode")
    ] + [("training", 4, 256)]
    assert report.mape <= LIMIT_MAPE, table


def test_the_fit_describes_its_own_micro_benchmarks(run):
    # Held to the same limit as the reference check. Measured: 9.1% on the AMD Zen 4 test machine
    # (cpu-local), 16.8% quick / 17.8% full on the Intel AMX one (cpu-local-amx), where the
    # saturating GEMM curve fits AMX tiles less well (prefill of 128 tokens at batch 1: -40%).
    assert run.fit.mape <= LIMIT_MAPE, run.fit.summary()
    p = run.profile.parameters
    assert 0.05 < p.gemm_efficiency_max <= 1.5
    assert p.layer_overhead_s > 0 and p.iteration_overhead_s >= 0
    assert 0 < p.training_mfu <= 1


def test_the_profile_holds_raw_points_fit_and_accuracy_and_loads_back(run, tmp_path):
    path = write_profile(run.profile, tmp_path / "quick.yaml")
    loaded = load_profile(path)
    m = loaded.measurements
    assert loaded.source == "measured" and loaded.torch_version == torch.__version__
    assert m["settings"]["threads"] == 1 and m["settings"]["clock"] == "thread CPU time"
    assert m["gemm"] and m["attention"] and m["overhead"] and m["training"]
    assert m["accuracy"]["mape_percent"] == pytest.approx(run.accuracy.mape, abs=0.01)
    assert loaded.fit_mape == pytest.approx(run.fit.mape, abs=0.01)
