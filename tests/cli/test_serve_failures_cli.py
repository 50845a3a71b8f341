"""CLI: ``fleetsim serve --failures`` (replica failures injected into the serving engine)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.inference.curve import clear_memory_cache

runner = CliRunner()
ARGS = ["-d", "chat-8b", "--rps", "20", "--duration-s", "300", "--replicas", "3", "--seed", "2"]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(tmp_path / "curves"))
    clear_memory_cache()
    yield
    clear_memory_cache()


def test_serve_failures_json_counts_every_request(chat_path):
    result = runner.invoke(app, ["serve", str(chat_path), *ARGS, "--failures-per-gpu-day", "300", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    f = data["failures"]
    assert f["per_gpu_day"] == 300 and f["failures"] > 0 and f["retry"] is True  # the scenario's default
    assert f["rate_per_replica_hour"] == pytest.approx(300 / 24)
    assert 0 < f["down_share"] < 1 and 0 < f["down_share_expected"] < 1
    assert f["replica_seconds_down"] > 0 and f["recovery_s"] > 0
    assert set(f["ttft_ms_during_failures"]) == {"mean", "p50", "p90", "p95", "p99"}
    assert data["requests_arrived"] == (data["requests_completed"] + data["requests_dropped"]
                                        + data["requests_failed"] + data["requests_in_flight"])  # fmt: skip
    assert data["requests_failed"] == 0 and data["requests_retried"] > 0
    assert 0 < data["availability"] <= 1


def test_serve_failures_table_and_the_default_rate(chat_path):
    result = runner.invoke(app, ["serve", str(chat_path), *ARGS, "--failures"])
    assert result.exit_code == 0, result.output
    for text in ("failures injected", "availability", "while a replica is down", "renewal theory"):
        assert text in result.output
    plain = runner.invoke(app, ["serve", str(chat_path), *ARGS, "--json"])
    assert "failures" not in json.loads(plain.output) and "availability" not in json.loads(plain.output)
    # the default rate (4.74e-4 per GPU-day): no failure in 5 minutes, the same figures as without
    quiet = json.loads(runner.invoke(app, ["serve", str(chat_path), *ARGS, "--failures", "--json"]).output)
    assert quiet["failures"]["failures"] == 0
    assert quiet["ttft_ms"] == json.loads(plain.output)["ttft_ms"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--failures-per-gpu-day", "-1"], "--failures-per-gpu-day"),
        (["--failures", "--plan", "disaggregated", "-d", "chat-70b"], "disaggregated"),
    ],
)
def test_serve_failures_bad_input_exit_2(chat_path, extra, message):
    result = runner.invoke(app, ["serve", str(chat_path), *ARGS, *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
