"""CLI: validate, schema, catalog, cost; bad input exits 2 with FILE:LINE lines, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from simulator.cli.main import app
from tests.conftest import SCENARIOS

runner = CliRunner()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_validate_bundled(path):
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_validate_bad_file_exit_2_no_traceback(tmp_path, chat_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(chat_path.read_text().replace("max_gpus: 512", "max_gpu: 512"))
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{bad}:11: pools.serving.max_gpu: unknown key 'max_gpu' (did you mean 'max_gpus'?)" in result.output


def test_schema_is_json_schema():
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    assert "pools" in schema["properties"]
    assert schema["additionalProperties"] is False


def test_catalog_tables():
    for what, needle in [("gpus", "h100-sxm"), ("models", "llama-3-70b")]:
        result = runner.invoke(app, ["catalog", what])
        assert result.exit_code == 0, result.output
        assert needle in result.output


def test_cost_json(chat_path):
    result = runner.invoke(app, ["cost", str(chat_path), "--deployment", "chat-70b", "--batch", "32",
                                 "--context", "2000", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["decode_tokens_per_s"] == pytest.approx(32 / (figures["decode_iteration_ms"] / 1e3))
    per_m = figures["replica_usd_per_hour"] / 3600 / figures["decode_tokens_per_s"] * 1e6
    assert figures["usd_per_million_output_tokens"] == pytest.approx(per_m)


def test_cost_unknown_deployment(chat_path):
    result = runner.invoke(app, ["cost", str(chat_path), "--deployment", "chat-7b"])
    assert result.exit_code == 2
    assert "no deployment named 'chat-7b'" in result.output


def test_cost_job_breakdown(chat_path):
    result = runner.invoke(app, ["cost", str(chat_path), "--job", "base-v2", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    shares = sum(v for k, v in figures.items() if k.startswith("share_"))
    assert shares == pytest.approx(1.0)
    assert figures["mfu_source"] == "model:h100-sxm" and 0.2 < figures["mfu"] < 0.6
    assert figures["memory_gib_per_gpu"] <= figures["memory_limit_gib_per_gpu"]
    assert figures["expected_gpu_hours"] == pytest.approx(figures["expected_wall_hours"] * figures["gpus"])
    assert 0.8 < figures["expected_goodput"] <= 1
    plain = runner.invoke(app, ["cost", str(chat_path), "--job", "base-v2"])
    assert plain.exit_code == 0 and "share pipeline bubble" in plain.output


def test_cost_needs_one_of_deployment_or_job(chat_path):
    for args in ([], ["--job", "base-v2", "--deployment", "chat-70b"]):
        result = runner.invoke(app, ["cost", str(chat_path), *args])
        assert result.exit_code == 2 and "exactly one of --deployment or --job" in result.output
    result = runner.invoke(app, ["cost", str(chat_path), "--job", "nope"])
    assert result.exit_code == 2 and "no training job 'nope'" in result.output


def test_validate_training_job_that_does_not_fit(tmp_path, chat_path):
    bad = tmp_path / "big.yaml"
    bad.write_text(chat_path.read_text().replace("model: llama-3-70b\n    tokens: 2.0e12\n    gpus: 1024",
                                                 "model: llama-3-405b\n    tokens: 2.0e12\n    gpus: 8"))
    assert "llama-3-405b" in bad.read_text()
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{bad}:56: training_jobs.base-v2.gpus: llama-3-405b on 8 x h100-sxm: does not fit in GPU memory" in result.output
    assert "GiB over" in result.output


def test_python_m_simulator_version():
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "--version"], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0 and "fleetsim" in done.stdout


def test_help_without_arguments_goes_to_stdout_with_exit_0():
    for args in ([], ["catalog"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Usage: ") and not result.stderr


def test_an_unknown_plan_names_the_file_and_line(chat_path):
    result = runner.invoke(app, ["run", str(chat_path), "--plan", "nope", "-q"])
    assert result.exit_code == 2
    assert result.output.startswith(f"{chat_path}:") and "no plan named 'nope'" in result.output


def test_validate_json_gives_machine_readable_problems(tmp_path, chat_path):
    import json

    ok = runner.invoke(app, ["validate", str(chat_path), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout) == {"valid": True, "problems": [], "warnings": []}
    bad = tmp_path / "bad.yaml"
    bad.write_text(chat_path.read_text().replace("max_gpus: 512", "max_gpu: 512"))
    result = runner.invoke(app, ["validate", str(bad), "--json"])
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert {"file": str(bad), "line": 11, "path": "pools.serving.max_gpu",
            "message": "unknown key 'max_gpu' (did you mean 'max_gpus'?)"} in report["problems"]  # fmt: skip
