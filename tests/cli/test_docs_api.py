"""docs/api.md's example runs as written (from a scratch folder, quick engine curves), and the
notebook API it documents behaves: Result's repr and HTML view, the writers' inputs."""

from __future__ import annotations

import re
import runpy

import openpyxl
import pytest

import simulator
from simulator.fleet import projection
from simulator.report import write_workbook
from simulator.sweep.tasks import CurveSource
from tests.conftest import ROOT
from tests.synthetic import mm1_provider

DOC = ROOT / "docs" / "api.md"


def example_code() -> str:
    return re.search(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL).group(1)


def test_the_documented_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(projection, "default_curve_provider", CurveSource(quick=True))
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    example = tmp_path / "example.py"
    example.write_text(example_code())
    runpy.run_path(str(example), run_name="__main__")
    printed = capsys.readouterr().out
    assert printed.startswith("<Result chat-assistant plan base: $")
    book = openpyxl.load_workbook(tmp_path / "chat.xlsx")
    assert any("speculative" in name for name in book.sheetnames)
    assert (tmp_path / "plots" / "cumulative_spend.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "base" / "summary.json").is_file()
    assert "monthly.csv" in {p.name for p in (tmp_path / "out" / "base").iterdir()}


def test_result_repr_and_html(mini_scenario):
    result = simulator.run(mini_scenario, curve_provider=mm1_provider())
    text = repr(result)
    assert "\n" not in text and len(text) < 300
    assert f"${result.summary['total_cost_usd']:,.0f}" in text and "chat met" in text
    page = result._repr_html_()
    assert page.count("<table>") == 2 and "chat" in page and "lifetime spend" in page


def test_writers_refuse_what_is_not_a_result(tmp_path, mini_scenario):
    with pytest.raises(TypeError, match="expected a simulator Result"):
        write_workbook([{"total_cost_usd": 1}], tmp_path / "x.xlsx")
    with pytest.raises(ValueError, match="no results"):
        write_workbook([], tmp_path / "x.xlsx")
    assert not (tmp_path / "x.xlsx").exists()


@pytest.fixture
def mini_scenario():
    from simulator.scenario.checks import validate_scenario_data
    from tests.conftest import minimal_scenario_dict

    return validate_scenario_data(minimal_scenario_dict())
