"""``fleetsim calibrate``: options, output, files and exit codes, with the measuring stubbed out.

The real measurement runs in tests/validation/test_calibration_accuracy.py.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import simulator.cli.calibrate as command
from calibration import pipeline
from calibration.accuracy import AccuracyPoint, AccuracyReport
from calibration.fit import fit
from calibration.plan import plan_for
from simulator.cli.main import app
from simulator.scenario.loading import load_profile
from tests.unit.test_calibration_fit import BASE, GPU, synthetic
from tests.unit.test_calibration_profile_io import profile, report

runner = CliRunner()


@pytest.fixture(autouse=True)
def torch_present(monkeypatch):
    monkeypatch.setattr(command, "_require_torch", lambda: None)


@pytest.fixture
def calls(monkeypatch):
    seen: dict = {}

    def fake_calibrate(device, **kwargs):
        seen.update(device=device, **kwargs)
        m = synthetic()
        m.settings.update(device="AMD EPYC", device_kind=device, threads=1, primary_dtype="bf16",
                          torch_version="2.13.0")  # fmt: skip
        result = fit(m, GPU, "bf16", BASE)
        p = profile().model_copy(update={"name": kwargs.get("name") or "cpu-local-measured"})
        return pipeline.CalibrationRun(p, result, m, plan_for("cpu", kwargs["quick"]), 12.0,
                                       report() if kwargs["check"] else None, 30.0)  # fmt: skip

    def fake_check(prof, reference_model=None, device=None, progress=None, setup=None):
        seen.update(checked=prof.name, device=device)
        return seen.get("report", report())

    monkeypatch.setattr(pipeline, "calibrate", fake_calibrate)
    monkeypatch.setattr(pipeline, "check", fake_check)
    return seen


def test_calibrate_writes_a_valid_profile_with_its_accuracy_comment(calls, tmp_path):
    out = tmp_path / "mine.yaml"
    result = runner.invoke(app, ["calibrate", "--device", "cpu", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert calls["device"] == "cpu" and calls["quick"] is True and calls["name"] == "mine"
    assert "Fitted parameters" in result.output and "MAPE" in result.output
    assert f"wrote {out}" in result.output.replace("\n", "")
    text = out.read_text()
    assert text.startswith("# Measured by `fleetsim ")
    assert "# Accuracy against the reference transformer (tiny-cpu, bf16" in text
    assert load_profile(out).name == "mine"


def test_no_accuracy_skips_the_reference_check(calls, tmp_path):
    out = tmp_path / "p.yaml"
    result = runner.invoke(app, ["calibrate", "--no-accuracy", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert calls["check"] is False and calls["device"] == "cpu"
    assert '"accuracy": null' in result.output


def test_check_prints_the_per_point_table(calls):
    result = runner.invoke(app, ["calibrate", "--check", "h100-sxm", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert calls["checked"] == "h100-sxm" and calls["device"] == "cpu"
    for word in ("prefill", "decode", "training", "MAPE"):
        assert word in result.output


def test_check_fails_above_the_limit(calls):
    bad = (AccuracyPoint("decode", 1, 128, 0.010, 0.020),)
    calls["report"] = AccuracyReport(bad, {"model": "tiny-cpu", "dtype": "bf16"}, "x")
    result = runner.invoke(app, ["calibrate", "--check", "cpu-local"])
    assert result.exit_code == 1
    assert calls["device"] is None  # the profile's own device kind is used


@pytest.mark.parametrize(
    "args,message",
    [(["--device", "tpu"], "expected cpu or cuda"),
     (["--check", "no-such-profile"], "no profile file or bundled profile"),
     (["--dtype", "int4"], "expected fp32 or bf16")],
)  # fmt: skip
def test_bad_input_exits_2_without_traceback(calls, args, message):
    result = runner.invoke(app, ["calibrate", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_run_errors_become_exit_2(monkeypatch):
    def missing_gpu(device, **kwargs):
        raise KeyError("cannot tell which catalog GPU 'Some GPU' is: pass --gpu")

    monkeypatch.setattr(pipeline, "calibrate", missing_gpu)
    result = runner.invoke(app, ["calibrate", "--device", "cuda"])
    assert result.exit_code == 2
    assert "pass --gpu" in result.output


def test_check_of_a_profile_measured_on_another_machine_says_so(calls, monkeypatch):
    """cpu-local was measured on an AMD EPYC: on another CPU the check names both devices and
    says to measure this machine first, and a failure gives that as the reason."""
    import calibration.benchmark_runtime as runtime

    monkeypatch.setattr(runtime, "cpu_name", lambda: "Intel(R) Xeon(R) Platinum 8488C")
    bad = (AccuracyPoint("decode", 1, 128, 0.010, 0.020),)
    calls["report"] = AccuracyReport(bad, {"model": "tiny-cpu", "dtype": "bf16"}, "x")
    result = runner.invoke(app, ["calibrate", "--check", "cpu-local"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "measured on 'AMD EPYC'; this machine is 'Intel(R) Xeon(R) Platinum 8488C'" in text
    assert "not on this 'Intel(R) Xeon(R) Platinum 8488C': measure this machine" in text
    monkeypatch.setattr(runtime, "cpu_name", lambda: "AMD EPYC")
    result = runner.invoke(app, ["calibrate", "--check", "cpu-local"])
    assert "measured on" not in result.output


def test_check_json_names_the_devices(calls, monkeypatch):
    import json

    import calibration.benchmark_runtime as runtime

    monkeypatch.setattr(runtime, "cpu_name", lambda: "Other CPU")
    result = runner.invoke(app, ["calibrate", "--check", "cpu-local", "--json"])
    data = json.loads(result.stdout)
    assert data["profile_device"] == "AMD EPYC" and data["device_here"] == "Other CPU"
    assert data["measured_elsewhere"] is True
