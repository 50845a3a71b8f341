"""calibration.serving: reading benchmark rows, replaying them, fitting, and ``calibrate --fit``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from calibration.serving import (
    CaseError,
    case_from_row,
    cases_from_vllm_bench,
    predict,
    replay_setup,
)
from simulator.cli.main import app
from simulator.perf.profile import default_profile_for_gpu
from simulator.scenario.loading import load_profile

DATA = Path(__file__).resolve().parents[1] / "data"
ROW = {"case": "x", "engine": "TensorRT-LLM v1.0", "gpu": "h100", "model": "llama3-8b",
       "dtype": "fp8", "tp": "1", "isl": "128", "osl": "128", "requests": "200", "rate_rps": "",
       "max_batch_size": "", "max_tokens_per_iteration": "", "gpu_memory_fraction": "",
       "measure": "", "metric": "output_tokens_per_s", "value": "10000"}  # fmt: skip
H100 = default_profile_for_gpu("h100-sxm").parameters
runner = CliRunner()


def test_row_names_map_onto_the_catalog_and_the_engine_preset():
    case = case_from_row(ROW, "f.csv:2")
    assert (case.gpu, case.model, case.engine, case.area) == ("h100-sxm", "llama-3.1-8b", "tensorrt-llm", "throughput")
    setup = replay_setup(case, H100)
    assert setup.replica.admission == "reserve" and setup.replica.kv_block_tokens == 32


@pytest.mark.parametrize(("field", "value", "message"), [
    ("metric", "p99_ms", "metric 'p99_ms' is not one of"),
    ("isl", "", "column 'isl' is empty"),
    ("value", "fast", "column 'value': expected a number"),
    ("dtype", "fp6", "dtype 'fp6' is not one of"),
])  # fmt: skip
def test_bad_rows_name_the_row_and_the_column(field, value, message):
    with pytest.raises(CaseError, match=message) as info:
        case_from_row({**ROW, field: value}, "f.csv:7")
    assert str(info.value).startswith("f.csv:7")


def test_throughput_replay_counts_output_tokens_over_the_makespan():
    case = case_from_row(ROW, "f.csv:2")
    tokens_per_s = predict(case, H100)
    slower = predict(case, H100.model_copy(update={"memory_bandwidth_efficiency": 0.4}))
    assert 0 < slower < tokens_per_s


def test_closed_loop_latency_rows_replay_with_that_many_clients():
    row = {**ROW, "metric": "mean_itl_ms", "measure": "closed loop concurrency=25", "value": "30",
           "requests": ""}  # fmt: skip
    case = case_from_row(row, "f.csv:3")
    assert case.concurrency == 25 and case.area == "latency"
    one = predict(case_from_row({**row, "measure": "closed loop concurrency=1"}, "f.csv:4"), H100)
    many = predict(case, H100)
    assert many > one  # 25 clients batch together: each token takes longer


def test_vllm_bench_json_becomes_cases():
    result = {"completed": 100, "total_input_tokens": 100 * 512, "total_output_tokens": 100 * 128,
              "request_rate": 4.0, "mean_tpot_ms": 12.5, "mean_ttft_ms": 80.0}  # fmt: skip
    cases = cases_from_vllm_bench(result, "h100", "llama-3-8b", "bf16", 1, "run.json")
    assert [(c.metric, c.value, c.rate_rps, c.input_tokens) for c in cases] == [
        ("mean_itl_ms", 12.5, 4.0, 512), ("mean_ttft_ms", 80.0, 4.0, 512)]
    with pytest.raises(CaseError, match="not a vllm bench serve result"):
        cases_from_vllm_bench({"x": 1}, "h100", "llama-3-8b", "bf16", 1, "run.json")


def _write_rows(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_calibrate_fit_writes_a_profile_that_loads(tmp_path):
    with open(DATA / "serving_calibration.csv", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["gpu"] == "a100-80"]
    results = _write_rows(tmp_path / "a100.csv", rows)
    target = tmp_path / "fitted.yaml"
    got = runner.invoke(app, ["calibrate", "--fit", str(results), "--gpu", "a100-80-sxm", "--out", str(target),
                              "--fit-parameters", "gemm_efficiency_max", "--json"])  # fmt: skip
    assert got.exit_code == 0, got.output
    data = json.loads(got.stdout)
    assert data["mape_after_pct"] <= data["mape_before_pct"]
    profile = load_profile(target)
    assert profile.gpu == "a100-80-sxm" and profile.parameters.gemm_efficiency_max <= 1


def test_calibrate_fit_bad_input_is_one_message(tmp_path):
    results = _write_rows(tmp_path / "bad.csv", [{**ROW, "metric": "speed"}])
    got = runner.invoke(app, ["calibrate", "--fit", str(results), "--gpu", "h100-sxm"])
    assert got.exit_code == 2
    assert "bad.csv:2: metric 'speed'" in got.output and "Traceback" not in got.output
    got = runner.invoke(app, ["calibrate", "--fit", str(_write_rows(tmp_path / "ok.csv", [ROW])), "--gpu", "b200"])
    assert got.exit_code == 2 and "no row is for GPU 'b200'" in got.output


def test_profile_efficiency_above_peak_is_refused(tmp_path):
    text = (Path(__file__).resolve().parents[2] / "calibration/profiles/h100-sxm.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("gemm_efficiency_max: 0.75", "gemm_efficiency_max: 1.15"))
    from simulator.common.errors import ScenarioError

    with pytest.raises(ScenarioError, match="less than or equal to 1"):
        load_profile(bad)
