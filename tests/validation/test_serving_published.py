"""The serving cost model against published GPU serving measurements, replayed in the engine.

``tests/data/serving_calibration.csv`` (a copy of ``shared/published``: TensorRT-LLM v1.0,
v0.17 and v0.14 tables, sources in its SOURCES file) is what the bundled GPU profiles were fitted
to; ``serving_calibration_extra.csv`` holds 3 NIM batch-1 rows fitted beside them;
``tests/data/serving_holdout.csv`` (vLLM on MI300X, TensorRT-LLM v0.9/v0.15/v0.21/1.2,
gpt-fast, NIM; sources quoted in its SOURCES file) was not used for fitting. Limits are the
measured errors with a small margin, so a model change that makes them worse fails here.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from calibration.serving import cases_from_rows, evaluate, fit_profiles, replayable
from simulator.perf.profile import default_profile_for_gpu

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str):
    with open(DATA / name, encoding="utf-8") as handle:
        cases = cases_from_rows(list(csv.DictReader(handle)), name)
    kept, _ = replayable(cases, lambda c: default_profile_for_gpu(c.gpu).parameters)
    return kept


def bundled(case):
    return default_profile_for_gpu(case.gpu).parameters


#: measured at the fit (issue 15): 7.4% / 9.8% on the calibration rows, 12.4% on the 3 batch-1
#: rows fitted beside them; 16.8% / 15.9% / 21.6% on the held-out rows (latency: 6 Poisson-rate
#: and 6 closed-loop NIM rows)
CALIBRATION_LIMITS = {"throughput": 9.0, "latency": 12.0, "batch1": 15.0}
HOLDOUT_LIMITS = {"throughput": 19.0, "latency": 19.0, "batch1": 25.0}


def test_bundled_profiles_reproduce_the_calibration_set():
    evaluation = evaluate(load("serving_calibration.csv") + load("serving_calibration_extra.csv"), bundled)
    assert len(evaluation.results) >= 26
    for area, limit in CALIBRATION_LIMITS.items():
        assert evaluation.mape(area) <= limit, (area, evaluation.mape(area))


def test_bundled_profiles_on_published_figures_they_were_not_fitted_to():
    evaluation = evaluate(load("serving_holdout.csv"), bundled)
    assert len(evaluation.results) >= 41
    for area, limit in HOLDOUT_LIMITS.items():
        assert evaluation.mape(area) <= limit, (area, evaluation.mape(area))


def test_fit_on_one_release_predicts_another():
    """Fit H100's fp8 efficiency and bandwidth on TensorRT-LLM v1.0 rows from a wrong start;
    the v0.17 and v0.21 H100 fp8 rows (other ISL/OSL, KV-starved 70B, Mixtral, 405B 2k/2k)
    must then be predicted better than from the start, and within 20%."""
    cases = load("serving_calibration.csv") + load("serving_holdout.csv")
    h100_fp8 = [c for c in cases if c.gpu == "h100-sxm" and c.dtype == "fp8" and c.area == "throughput"]
    train = [c for c in h100_fp8 if c.case.startswith("trt10 ")]
    test = [c for c in h100_fp8 if not c.case.startswith("trt10 ")]
    assert len(train) >= 4 and len(test) >= 3
    wrong = default_profile_for_gpu("h100-sxm").parameters.model_copy(
        update={"fp8_gemm_efficiency_max": 0.95, "memory_bandwidth_efficiency": 0.6})
    fit = fit_profiles(train, {"h100-sxm": wrong},
                       per_gpu=("fp8_gemm_efficiency_max", "memory_bandwidth_efficiency"), iterations=60)  # fmt: skip
    fitted = fit.parameters["h100-sxm"]
    assert fit.after.mape() < fit.before.mape()
    before = evaluate(test, lambda _: wrong)
    after = evaluate(test, lambda _: fitted)
    assert after.mape() < before.mape()
    assert after.mape() <= 20.0, [(r.case.case, round(r.error_pct, 1)) for r in after.results]
    assert fitted.fp8_gemm_efficiency_max <= 1 and fitted.memory_bandwidth_efficiency <= 1


@pytest.mark.parametrize("metric", ["output_tokens_per_s", "mean_itl_ms"])
def test_replay_is_deterministic(metric):
    cases = [c for c in load("serving_calibration.csv") if c.metric == metric][:1]
    first = evaluate(cases, bundled).results[0].predicted
    assert evaluate(cases, bundled).results[0].predicted == first
