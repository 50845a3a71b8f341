"""Measured profiles on disk: atomic writes, validation on load, the bundled cpu-local profile."""

from __future__ import annotations

from datetime import date

import pytest
import yaml

from calibration import profile_io
from calibration.accuracy import LIMIT_MAPE, AccuracyPoint, AccuracyReport, table_lines
from calibration.fit import fit
from calibration.profile_io import build_profile, read_profile, write_profile
from calibration.records import Measurements
from simulator.common.errors import ScenarioError
from simulator.perf.profile import bundled_profile
from simulator.scenario.loading import load_profile
from tests.unit.test_calibration_fit import BASE, GPU, synthetic


def report() -> AccuracyReport:
    points = (AccuracyPoint("prefill", 1, 128, 0.030, 0.028),
              AccuracyPoint("decode", 8, 512, 0.025, 0.026),
              AccuracyPoint("training", 4, 256, 0.90, 1.05))  # fmt: skip
    return AccuracyReport(points, {"model": "tiny-cpu", "dtype": "bf16", "repeats": 5}, "p")


def profile(with_accuracy: bool = True):
    m = synthetic()
    m.settings.update(device="AMD EPYC", device_kind="cpu", threads=1, torch_version="2.13.0")
    return build_profile("p", "cpu-local", m, fit(m, GPU, "bf16", BASE),
                         report() if with_accuracy else None, today=date(2026, 11, 23))  # fmt: skip


def test_built_profile_has_provenance_fit_and_raw_points():
    p = profile()
    assert p.source == "measured" and p.device == "AMD EPYC" and p.torch_version == "2.13.0"
    assert p.date == "2026-11-23"
    assert p.fit_mape is not None and p.fit_mape < 1
    assert p.measurements["fit"]["mape_percent_by_group"]["gemm"] < 1
    assert len(p.measurements["gemm"]) == len(synthetic().gemm)
    assert p.measurements["accuracy"]["mape_percent"] == pytest.approx(report().mape, abs=0.01)


def test_write_then_load_gives_the_same_profile(tmp_path):
    p = profile()
    path = write_profile(p, tmp_path / "sub" / "p.yaml", "line one\nline two")
    text = path.read_text()
    assert text.startswith("# line one\n# line two\n")
    loaded = load_profile(path)
    assert loaded == p.model_validate(p.model_dump(mode="json"))
    back = Measurements.from_data(loaded.measurements)
    assert back.gemm[3].tokens == synthetic().gemm[3].tokens
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]


def test_failed_write_leaves_the_target_untouched(tmp_path, monkeypatch):
    target = tmp_path / "p.yaml"
    target.write_text("old: content\n")

    def broken(p, comment=""):
        return "name: [unclosed\n"

    monkeypatch.setattr(profile_io, "profile_yaml", broken)
    with pytest.raises(ScenarioError):
        write_profile(profile(), target)
    assert target.read_text() == "old: content\n"
    assert [f.name for f in tmp_path.iterdir()] == ["p.yaml"]


def test_invalid_profile_file_reports_file_line_and_field(tmp_path):
    data = yaml.safe_load(profile_io.profile_yaml(profile()))
    data["parameters"]["training_mfu"] = 3.0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ScenarioError) as info:
        load_profile(path)
    text = info.value.format()
    assert "parameters.training_mfu" in text and str(path) in text


def test_read_profile_by_path_or_bundled_name(tmp_path):
    assert read_profile("h100-sxm").gpu == "h100-sxm"
    path = write_profile(profile(), tmp_path / "mine.yaml")
    assert read_profile(path).name == "p"
    with pytest.raises(ScenarioError, match="no profile file or bundled profile"):
        read_profile("no-such-profile")


def test_table_lines_show_every_point_and_the_mape():
    lines = table_lines(report())
    assert lines[0].split()[:2] == ["point", "batch"]
    assert len(lines) == 1 + 3 + 1
    assert "+16.7%" in lines[3]
    assert lines[-1].startswith(f"MAPE {report().mape:.1f}%")


def test_bundled_cpu_local_profile_is_measured_with_its_accuracy():
    p = bundled_profile("cpu-local")
    assert p.source == "measured" and p.torch_version and p.fit_mape is not None
    m = p.measurements
    assert m["settings"]["plan"] == "full"
    assert {"gemm", "attention", "elementwise", "overhead", "training"} <= set(m)
    assert m["accuracy"]["mape_percent"] <= LIMIT_MAPE
    kinds = {(pt["kind"], pt["batch"], pt["tokens"]) for pt in m["accuracy"]["points"]}
    assert {("prefill", b, s) for b in (1, 8, 32) for s in (128, 512)} <= kinds
    assert {("decode", b, s) for b in (1, 8, 32) for s in (128, 512)} <= kinds
    assert any(k[0] == "training" for k in kinds)
