"""Hostile and extreme scenario files: one clear FILE:LINE line and exit 2, never a traceback."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from simulator.cli.main import app
from tests.conftest import minimal_scenario_dict

runner = CliRunner()
GOOD = yaml.safe_dump(minimal_scenario_dict(), sort_keys=False)


def validate(tmp_path, content: bytes):
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def test_a_utf8_bom_is_fine(tmp_path):
    assert validate(tmp_path, b"\xef\xbb\xbf" + GOOD.encode()).exit_code == 0


@pytest.mark.parametrize("content, message", [
    (GOOD.encode("utf-16"), "not UTF-8 text (byte 0)"),
    (GOOD.encode().replace(b"mini", b"mi\xffni", 1), "not UTF-8 text (byte"),
    (("a: " + "[" * 5000 + "]" * 5000).encode(), "nested too deeply"),
    ((b"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"),
     "once aliases are expanded"),
    (b"name: !!python/object/apply:os.system [echo hi]\n", "unknown YAML tag"),
    (b"name: !!python/object/new:builtins.dict {}\n", "unknown YAML tag"),
    (GOOD.replace("usd_per_gpu_hour: 3.0", "usd_per_gpu_hour: .inf").encode(), "finite number"),
    (GOOD.replace("requests_per_second: 2.0", "requests_per_second: .nan").encode(), "finite number"),
])  # fmt: skip
def test_hostile_files_give_one_clear_error(tmp_path, content, message):
    result = validate(tmp_path, content)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.startswith(str(tmp_path / "s.yaml"))


@pytest.mark.parametrize("name", ["../escaped-by-plan-name", "a/b", "", "x" * 65, ".hidden"])
def test_names_that_would_become_paths_are_refused(tmp_path, name):
    data = minimal_scenario_dict()
    data["plans"] = [{"name": name, "set": {"pools.gpus.pricing.usd_per_gpu_hour": 2.0}}]
    result = validate(tmp_path, yaml.safe_dump(data).encode())
    assert result.exit_code == 2
    assert "plans.0.name" in result.output or "plans" in result.output
    assert "is not a usable name: use letters, digits" in result.output
    assert not (tmp_path.parent / "escaped-by-plan-name").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["horizon"].update(start="9999-01-01"), "horizon.start"),
    (lambda d: d["workloads"][0]["traffic"].update(diurnal_peak_to_mean=100), "less than or equal to 24"),
    (lambda d: d["workloads"][0]["traffic"].update(requests_per_second=1e12), "less than or equal to 1000000"),
])  # fmt: skip
def test_bounds_keep_a_run_finite(tmp_path, edit, message):
    data = minimal_scenario_dict()
    edit(data)
    result = validate(tmp_path, yaml.safe_dump(data).encode())
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_job_that_could_never_finish_is_refused_not_run_forever(tmp_path):
    data = minimal_scenario_dict()
    data["horizon"]["months"] = 1
    data["training_jobs"][0].update(failures_per_gpu_day=100, restart_minutes=0, tokens=1e12)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["run", str(path), "-q"])
    assert result.exit_code == 2, result.output
    assert "training_jobs.ft.failures_per_gpu_day" in result.output and "almost never completes" in result.output


def test_a_custom_gpu_without_a_profile_is_a_clear_error(tmp_path):
    data = minimal_scenario_dict()
    data["catalog"] = {"gpus": [{"name": "my-gpu", "vendor": "X", "bf16_tflops": 500, "fp32_tflops": 50,
                                 "hbm_gib": 80, "hbm_tb_per_s": 2, "interconnect_gb_per_s": 100, "tdp_w": 500}]}  # fmt: skip
    data["pools"][0]["gpu"] = "my-gpu"
    result = validate(tmp_path, yaml.safe_dump(data).encode())
    assert result.exit_code == 2 and "has no bundled calibration profile" in result.output
    data["pools"][0]["calibration"] = "h100-sxm"
    assert validate(tmp_path, yaml.safe_dump(data).encode()).exit_code == 0


def test_an_empirical_column_of_negative_token_counts_is_refused(tmp_path):
    (tmp_path / "lengths.csv").write_text("tokens\n120\n-40\n300\n")
    data = minimal_scenario_dict()
    data["workloads"][0]["prompt_tokens"] = {"distribution": "empirical", "path": "lengths.csv", "column": "tokens"}
    result = validate(tmp_path, yaml.safe_dump(data).encode())
    assert result.exit_code == 2 and "token counts must be >= 1 (the column's smallest is -40)" in result.output


def test_a_grid_too_large_to_expand_is_refused_before_expanding():
    from simulator.common.errors import ScenarioError
    from simulator.sweep.grid import parse_grid

    grid = {"deployments.small.autoscaling.max_replicas": list(range(1, 11)),
            "deployments.small.autoscaling.min_replicas": list(range(10)),
            "workloads.chat.traffic.growth_per_month": [0.01 * j for j in range(10)],
            "workloads.chat.traffic.diurnal_peak_to_mean": [1 + 0.1 * j for j in range(10)],
            "workloads.chat.traffic.weekend_factor": [0.1 * j for j in range(10)],
            "pools.gpus.pricing.usd_per_gpu_hour": [1.0 + j for j in range(10)]}  # fmt: skip
    with pytest.raises(ScenarioError, match="1,000,000 combinations; at most 100,000"):
        parse_grid(grid)


@pytest.mark.parametrize("value", ["9999-12-31", "0001-01-01"])
def test_dates_outside_what_the_timeline_holds_are_refused(tmp_path, value):
    data = minimal_scenario_dict()
    data["training_jobs"][0]["deadline"] = value
    result = validate(tmp_path, yaml.safe_dump(data).encode())
    assert result.exit_code == 2 and "training_jobs.ft.deadline" in result.output


def test_a_date_no_calendar_has_is_a_file_line_error(tmp_path):
    path = tmp_path / "bad-date.yaml"
    text = yaml.safe_dump(minimal_scenario_dict(), sort_keys=False)
    path.write_text(text.replace("'2027-01-01'", "2027-02-30"))  # a YAML date, not a string
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "2027-02-30" in result.output and "day is out of range for month" in result.output
    assert f"{path}:" in result.output and "Traceback" not in result.output
