"""Scenario authoring: ``fleetsim init`` templates, and a JSON Schema that accepts what the
loader accepts (checked with check-jsonschema and the jsonschema library)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
import subprocess

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.cli.validate import TEMPLATES
from simulator.common.errors import ScenarioError
from simulator.scenario.json_schema import MODELINE, SCHEMA_FILE, SCHEMA_ID, scenario_json_schema
from simulator.scenario.loading import load_scenario
from simulator.scenario.yamlio import parse_yaml
from tests.conftest import ROOT, SCENARIOS

runner = CliRunner()


@pytest.mark.parametrize("template", TEMPLATES)
def test_init_writes_a_valid_commented_scenario_and_its_schema(tmp_path, template):
    path = tmp_path / f"{template}.yaml"
    result = runner.invoke(app, ["init", str(path), "--template", template])
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert text.splitlines()[0] == MODELINE and text.count("# ") > 10 and "EDIT" in text
    scenario = load_scenario(path)
    assert scenario.name.startswith("my-")
    schema = json.loads((tmp_path / SCHEMA_FILE).read_text())
    assert schema["$id"] == SCHEMA_ID
    data, _ = parse_yaml(text, str(path))
    jsonschema.validate(_json_ready(data), schema)


def test_init_refuses_to_replace_a_file_and_rejects_unknown_templates(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\n")
    result = runner.invoke(app, ["init", str(path)])
    assert result.exit_code == 1 and "exists" in result.output
    assert path.read_text() == "name: mine\n"
    assert runner.invoke(app, ["init", str(path), "--force"]).exit_code == 0
    assert load_scenario(path).name == "my-chat"
    result = runner.invoke(app, ["init", str(tmp_path / "x.yaml"), "-t", "video"])
    assert result.exit_code == 2 and "expected one of chat, rag, training, lifecycle" in result.output
    assert not (tmp_path / "x.yaml").exists()


def test_schema_command_has_id_draft_and_catalog_suggestions():
    result = runner.invoke(app, ["schema"])
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/") and schema["$id"] == SCHEMA_ID
    pool_gpu = schema["$defs"]["Pool"]["properties"]["gpu"]
    assert "h100-sxm" in pool_gpu["examples"] and "b200" in pool_gpu["examples"]
    assert "llama-3-70b" in schema["$defs"]["Deployment"]["properties"]["model"]["examples"]


@pytest.mark.skipif(shutil.which("check-jsonschema") is None, reason="check-jsonschema is not installed")
def test_every_bundled_and_generated_scenario_passes_check_jsonschema(tmp_path):
    """check-jsonschema (its own YAML parser) on the bundled scenarios, every template and the
    README's inline-distribution example."""
    schema = tmp_path / SCHEMA_FILE
    schema.write_text(json.dumps(scenario_json_schema()))
    files = [str(p) for p in SCENARIOS]
    for template in TEMPLATES:
        runner.invoke(app, ["init", str(tmp_path / f"{template}.yaml"), "-t", template, "--force"])
        files.append(str(tmp_path / f"{template}.yaml"))
    readme = yaml.safe_load((ROOT / "scenarios" / "chat-assistant.yaml").read_text().replace("2.0e12", "2.0e+12")
                            .replace("2.0e9", "2.0e+9"))  # fmt: skip
    readme["workloads"][0]["traffic"]["growth_per_month"] = {"distribution": "normal", "mean": 0.05, "sd": 0.02}
    (tmp_path / "readme.yaml").write_text(yaml.safe_dump(readme))
    files.append(str(tmp_path / "readme.yaml"))
    done = subprocess.run(["check-jsonschema", "--schemafile", str(schema), *files], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _json_ready(value):
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


VARIANTS = {
    "uncertain growth (README)": lambda d: d["workloads"][0]["traffic"].update(
        growth_per_month={"distribution": "normal", "mean": 0.05, "sd": 0.02}),
    "uncertain price": lambda d: d["pools"][0]["pricing"].update(
        usd_per_gpu_hour={"distribution": "uniform", "low": 2.0, "high": 2.5}),
    "fixed output tokens": lambda d: d["workloads"][0].update(output_tokens={"distribution": "fixed", "value": 200}),
    "bare number for tokens": lambda d: d["workloads"][0].update(prompt_tokens=800),
    "text for a rate": lambda d: d["workloads"][0]["traffic"].update(requests_per_second="forty"),
    "unknown key": lambda d: d["pools"][0].update(gpus_max=4),
    "negative max_gpus": lambda d: d["pools"][0].update(max_gpus=-1),
    "unknown distribution": lambda d: d["workloads"][0].update(prompt_tokens={"distribution": "pareto", "mean": 3}),
    "missing slo": lambda d: d["workloads"][0].pop("slo"),
}  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_schema_accepts_what_the_loader_accepts(tmp_path, variant):
    """Field by field the schema and the loader agree (catalog names and cross-references are
    the loader's alone: they are left unchanged here)."""
    data, _ = parse_yaml((ROOT / "scenarios" / "chat-assistant.yaml").read_text())
    data = _json_ready(copy.deepcopy(data))
    VARIANTS[variant](data)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        load_scenario(path)
        loader = True
    except ScenarioError:
        loader = False
    try:
        jsonschema.validate(data, scenario_json_schema())
        schema = True
    except jsonschema.ValidationError:
        schema = False
    assert loader == schema


def test_every_schema_property_has_a_description():
    schema = scenario_json_schema()
    missing = [f"{name}.{key}" for name, d in [*schema["$defs"].items(), ("Scenario", schema)]
               for key, prop in d.get("properties", {}).items() if not prop.get("description")]  # fmt: skip
    assert missing == []


def test_init_leaves_a_foreign_schema_file_alone_and_says_so(tmp_path):
    foreign = tmp_path / SCHEMA_FILE
    foreign.write_text('{"title": "someone else\'s"}\n')
    result = runner.invoke(app, ["init", str(tmp_path / "s.yaml")])
    assert result.exit_code == 0
    assert foreign.read_text() == '{"title": "someone else\'s"}\n'
    assert "is not fleetsim's: left as it is" in " ".join(result.output.split())
