"""Calibration fit: recovers known parameters from synthetic measurements (no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.fit import (
    attention_time_s,
    fit,
    fit_gemm,
    gemm_time_s,
    mape,
    nelder_mead,
    scale_for_mape,
)
from calibration.records import (
    AllreducePoint,
    AttentionPoint,
    ElementwisePoint,
    GemmPoint,
    Measurements,
    OverheadPoint,
    TrainingPoint,
)
from simulator.catalog import bundled_catalog
from simulator.perf.profile import bundled_profile

GPU = bundled_catalog().gpus["cpu-local"]
BASE = bundled_profile("cpu-local").parameters
BW = GPU.hbm_tb_per_s * 1e12
PEAK = GPU.peak_flops_per_s("bf16")

TRUE = {"eff_max": 0.55, "half": 20.0, "bw_eff": 0.15, "attn": 0.08, "kv": 0.05, "factor": 1.8,
        "fixed": 1.2e-4, "per_layer": 2.8e-4, "mfu": 0.4}  # fmt: skip


def synthetic() -> Measurements:
    """Measurements that follow the fit's own model exactly, from the TRUE parameters."""
    m = Measurements(settings={"primary_dtype": "bf16"})
    for hidden in (384, 1024):
        params = 4 * hidden * hidden + 3 * hidden * 3584
        for tokens in (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096):
            flops, weights = 2.0 * tokens * params, 2.0 * params
            t = float(gemm_time_s(np.array(flops), np.array(weights), np.array(float(tokens)),
                                  PEAK, BW, TRUE["eff_max"], TRUE["half"], TRUE["bw_eff"]))  # fmt: skip
            m.gemm.append(GemmPoint("bf16", hidden, 3584, tokens, flops, weights, t))
    for phase, batch, tokens in (("prefill", 1, 512), ("prefill", 16, 128), ("decode", 1, 128),
                                 ("decode", 16, 1024), ("decode", 64, 256)):  # fmt: skip
        pairs = batch * tokens * (tokens + 1) / 2 if phase == "prefill" else batch * tokens
        flops, kv = 4.0 * 512 * pairs, 2.0 * batch * tokens * 512 * 2
        t = float(
            attention_time_s(np.array(flops), np.array(kv), PEAK, BW, TRUE["attn"], TRUE["kv"])
        )
        m.attention.append(AttentionPoint("bf16", phase, batch, tokens, 8, 8, 64, flops, kv, t))
    for tokens in (256, 2048):
        min_bytes = 26_000.0 * tokens
        t = TRUE["factor"] * min_bytes / (BW * TRUE["bw_eff"])
        m.elementwise.append(ElementwisePoint("bf16", 512, 2048, tokens, min_bytes, t))
    m.overhead = [OverheadPoint(n, TRUE["fixed"] + n * TRUE["per_layer"]) for n in (1, 4, 8)]
    m.training = [TrainingPoint("bf16", 768, 2, 2, 256, 5e10, 5e10 / (PEAK * TRUE["mfu"]))]
    return m


def test_mape_is_mean_absolute_percentage_error():
    assert mape([110, 90], [100, 100]) == pytest.approx(10.0)
    assert mape([1.0], [2.0]) == pytest.approx(50.0)


def test_nelder_mead_finds_minimum_of_a_bowl():
    best = nelder_mead(lambda x: float((x[0] - 1.5) ** 2 + 3 * (x[1] + 2) ** 2), [0.0, 0.0])
    assert best == pytest.approx([1.5, -2.0], abs=1e-3)


def test_scale_for_mape_is_the_exact_minimiser():
    rng = np.random.default_rng(3)
    x = rng.uniform(1, 5, 9)
    y = x * rng.uniform(0.5, 2.0, 9)
    c = scale_for_mape(x, y)
    grid = np.linspace(0.3, 3, 5001)
    brute = grid[np.argmin([mape(g * x, y) for g in grid])]
    assert mape(c * x, y) <= mape(brute * x, y) + 1e-9


def test_fit_recovers_the_parameters_that_generated_the_data():
    result = fit(synthetic(), GPU, "bf16", BASE)
    p = result.parameters
    assert p.gemm_efficiency_max == pytest.approx(TRUE["eff_max"], rel=0.02)
    assert p.gemm_half_saturation_tokens == pytest.approx(TRUE["half"], rel=0.05)
    assert p.memory_bandwidth_efficiency == pytest.approx(TRUE["bw_eff"], rel=0.02)
    assert p.attention_efficiency == pytest.approx(TRUE["attn"], rel=0.02)
    assert p.kv_bandwidth_efficiency == pytest.approx(TRUE["kv"], rel=0.02)
    assert p.elementwise_traffic_factor == pytest.approx(TRUE["factor"], rel=0.02)
    assert p.iteration_overhead_s == pytest.approx(TRUE["fixed"], rel=1e-6)
    assert p.layer_overhead_s == pytest.approx(TRUE["per_layer"], rel=1e-6)
    assert p.training_mfu == pytest.approx(TRUE["mfu"], rel=1e-6)
    assert result.mape < 1.0
    assert set(result.mape_by_group) == {"gemm", "attention", "elementwise", "overhead", "training"}


def test_unmeasured_parameters_come_from_the_base_profile():
    result = fit(synthetic(), GPU, "bf16", BASE)
    assert result.parameters.interconnect_efficiency == BASE.interconnect_efficiency
    assert result.parameters.allreduce_latency_s == BASE.allreduce_latency_s
    assert any("not measured" in note for note in result.notes)


def test_allreduce_fit_recovers_latency_and_bus_efficiency():
    m = synthetic()
    link = GPU.interconnect_gb_per_s * 1e9
    for size in (8e3, 1e6, 16e6, 128e6, 512e6):
        bus = 2 * 7 / 8 * size
        m.allreduce.append(AllreducePoint(8, size, 2e-5 + bus / (link * 0.7)))
    p = fit(m, GPU, "bf16", BASE).parameters
    assert p.allreduce_latency_s == pytest.approx(2e-5, rel=0.05)
    assert p.interconnect_efficiency == pytest.approx(0.7, rel=0.02)


def test_gemm_fit_per_dtype_and_missing_primary_is_an_error():
    m = synthetic()
    assert fit_gemm(m, GPU, "fp32") is None
    with pytest.raises(ValueError, match="primary dtype"):
        fit(m, GPU, "fp32", BASE)


def test_measurements_round_trip_through_plain_data():
    m = synthetic()
    m.gemm[0] = GemmPoint("bf16", 384, 3584, 1, 1.0, 2.0, 0.5, (0.5, 0.6), "lm_head")
    back = Measurements.from_data(m.to_data())
    assert back.gemm[0] == m.gemm[0]
    assert len(back.attention) == len(m.attention)
    assert back.overhead[2].seconds == pytest.approx(m.overhead[2].seconds, rel=1e-4)


def test_a_cpu_with_amx_is_calibrated_against_the_amx_peaks():
    from calibration.pipeline import gpu_for_device

    zen4 = frozenset({"avx512f", "avx512_bf16"})
    sapphire_rapids = zen4 | {"amx_bf16", "amx_tile"}
    assert gpu_for_device("cpu", "AMD EPYC", zen4) == "cpu-local"
    assert gpu_for_device("cpu", "Intel(R) Xeon(R) Processor", sapphire_rapids) == "cpu-local-amx"
    amx, avx = (bundled_catalog().gpus[n].bf16_tflops for n in ("cpu-local-amx", "cpu-local"))
    assert amx > 10 * avx  # 1024 bf16 FLOP/cycle/core on AMX against ~64 on AVX-512 BF16
