"""CLI: ``fleetsim serve`` and ``fleetsim curve``; bad input exits 2 with a message, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.inference.curve import clear_memory_cache
from tests.conftest import SHARED_TRACE

runner = CliRunner()
SUMMARY_KEYS = {"requests_completed", "requests_dropped", "ttft_ms", "tpot_ms", "e2e_ms",
                "queue_wait_ms", "throughput_tokens_per_s", "replica_utilization",
                "slo_attainment"}  # fmt: skip


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(tmp_path / "curves"))
    clear_memory_cache()
    yield
    clear_memory_cache()


def test_serve_table(chat_path):
    result = runner.invoke(app, ["serve", str(chat_path), "--deployment", "chat-8b", "--rps", "10",
                                 "--duration-s", "60", "--replicas", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    for text in ("ttft", "tpot", "e2e", "queue wait", "p95", "SLO attainment", "utilisation",
                 "tokens/s"):  # fmt: skip
        assert text in result.output


def test_serve_json(chat_path):
    args = ["serve", str(chat_path), "-d", "chat-70b", "-w", "chat", "--rps", "6", "--duration-s",
            "60", "--seed", "3", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert SUMMARY_KEYS <= set(data)
    for key in ("ttft_ms", "tpot_ms", "e2e_ms", "queue_wait_ms"):
        assert set(data[key]) == {"mean", "p50", "p90", "p95", "p99"}
    assert data["requests_completed"] > 0 and 0 <= data["slo_attainment"] <= 1
    again = json.loads(runner.invoke(app, args).output)
    assert again == data  # same seed, same numbers


def test_serve_trace_csv(chat_path, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_time_s,prompt_tokens,output_tokens\n"
                     + "".join(f"{i * 0.25},{100 + i},{20 + i % 7}\n" for i in range(80)))  # fmt: skip
    result = runner.invoke(app, ["serve", str(chat_path), "-d", "chat-8b", "--trace", str(trace),
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["requests_arrived"] + data["requests_cache_hits"] == 80
    assert data["duration_s"] == pytest.approx(79 * 0.25)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["-d", "nope", "--rps", "1", "--duration-s", "5"], "no deployment named 'nope'"),
     (["-d", "chat-8b", "-w", "nope", "--rps", "1", "--duration-s", "5"], "no workload named 'nope'"),
     (["-d", "chat-8b", "--duration-s", "5"], "give a request rate"),
     (["-d", "chat-8b", "--rps", "1", "--duration-s", "5", "--router", "x"], "unknown router"),
     (["-d", "chat-8b", "--trace", "absent.csv"], "absent.csv: trace: file not found")],
)  # fmt: skip
def test_serve_bad_input_exit_2(chat_path, args, message):
    result = runner.invoke(app, ["serve", str(chat_path), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_serve_bad_trace_columns(chat_path, tmp_path):
    trace = tmp_path / "bad.csv"
    trace.write_text("when,prompt,out\n1,2,3\n")
    result = runner.invoke(app, ["serve", str(chat_path), "-d", "chat-8b", "--trace", str(trace)])
    assert result.exit_code == 2
    assert f"{trace}: columns: no arrival-time column" in result.output
    assert "Traceback" not in result.output


def test_curve_json_and_plot(chat_path, tmp_path):
    plot = tmp_path / "curve.png"
    result = runner.invoke(app, ["curve", str(chat_path), "-d", "chat-8b", "--quick", "--json",
                                 "--plot", str(plot)])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["capacity_per_replica"] > 0
    rates = [p["rate_per_replica"] for p in data["points"]]
    assert rates == sorted(rates) and data["capacity_per_replica"] in rates
    assert set(data["points"][0]["ttft_ms"]) == {"p50", "p90", "p95", "p99"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "curves"]  # no temp files


def test_curve_table(chat_path):
    result = runner.invoke(app, ["curve", str(chat_path), "-d", "chat-70b", "--quick"])
    assert result.exit_code == 0, result.output
    assert "capacity per replica" in result.output and "TTFT p95" in result.output


def test_curve_bad_input(chat_path, tmp_path):
    result = runner.invoke(app, ["curve", str(chat_path), "-d", "chat-8x"])
    assert result.exit_code == 2 and "no deployment named 'chat-8x'" in result.output
    result = runner.invoke(app, ["curve", str(chat_path), "-d", "chat-8b", "--quick", "--plot",
                                 str(tmp_path / "c.gif")])  # fmt: skip
    assert result.exit_code == 2 and "unsupported image type 'gif'" in result.output
    result = runner.invoke(app, ["curve", str(chat_path), "-d", "chat-8b", "--quick", "--plot",
                                 str(tmp_path / "no-such-dir" / "c.png")])  # fmt: skip
    assert result.exit_code == 2 and "cannot write the plot" in result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(not SHARED_TRACE.exists(), reason="shared Azure trace not present")
def test_serve_the_real_azure_trace(chat_path):
    result = runner.invoke(app, ["serve", str(chat_path), "-d", "chat-8b", "--trace",
                                 str(SHARED_TRACE), "--replicas", "2", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["requests_arrived"] + data["requests_cache_hits"] == 19_366
    assert data["requests_completed"] > 0.99 * (data["requests_arrived"] - data["requests_dropped"])


def test_serve_refuses_a_run_it_could_not_hold_with_the_estimate(chat_path):
    result = runner.invoke(app, ["serve", str(chat_path), "-d", "chat-8b", "--rps", "1e9", "--duration-s", "10"])
    assert result.exit_code == 2 and "about 10,000,000,000 requests" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_serve_closed_loop_reports_the_rate_it_achieved(chat_path):
    result = runner.invoke(app, ["serve", str(chat_path), "-d", "chat-8b", "--concurrency", "16",
                                 "--think-s", "1", "--duration-s", "60", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["concurrency"] == 16 and s["think_s"] == 1
    # Little's law for the closed loop: users = rate x (response time + think time)
    users = s["offered_requests_per_s"] * (s["e2e_ms"]["mean"] / 1000 + 1)
    assert users == pytest.approx(16, rel=0.15)
    both = runner.invoke(app, ["serve", str(chat_path), "-d", "chat-8b", "--concurrency", "4", "--rps", "2",
                               "--duration-s", "10"])  # fmt: skip
    assert both.exit_code == 2 and "either --concurrency" in both.output


def test_serve_closed_loop_takes_a_users_workloads_think_time():
    """enterprise-rag's by-users plan: 1,500 users at 120 s; --concurrency alone uses the 120 s."""
    path = str(Path("scenarios/enterprise-rag.yaml"))
    result = runner.invoke(app, ["serve", path, "--plan", "by-users", "-d", "rag-70b", "--concurrency", "40",
                                 "--think", "exponential", "--duration-s", "600", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["think_s"] == 120 and s["think"] == "exponential"
    # 40 users at R ~ 4-5 s and Z = 120 s send about 40 / 125 = 0.32 req/s (the clients start
    # together, so the first ten minutes run a little above that)
    assert 0.25 < s["offered_requests_per_s"] < 0.45
    bad = runner.invoke(app, ["serve", path, "-d", "rag-70b", "--concurrency", "4", "--think", "gamma",
                              "--duration-s", "10"])  # fmt: skip
    assert bad.exit_code == 2 and "unknown think-time distribution" in bad.output


@pytest.mark.parametrize(("plan", "text"), [("speculative-decoding", "tokens/iteration"),
                                            ("disaggregated", "prefill : decode replicas")])  # fmt: skip
def test_serve_a_plan_shows_speculation_and_disaggregation(chat_path, plan, text):
    args = ["serve", str(chat_path), "--plan", plan, "-d", "chat-70b", "--rps", "4", "--duration-s", "60"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert text in result.output
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    key = "speculative" if plan == "speculative-decoding" else "disaggregation"
    assert key in data


def test_serve_unknown_plan_is_a_usage_error(chat_path):
    result = runner.invoke(app, ["serve", str(chat_path), "--plan", "nope", "-d", "chat-70b", "--rps", "4",
                                 "--duration-s", "60"])  # fmt: skip
    assert result.exit_code == 2
    assert "no plan named 'nope'" in result.output
    assert "Traceback" not in result.output
