"""``fleetsim report --html``: one self-contained page whose numbers equal summary.json, loaded
in a real headless Chromium (Debian's package): no script errors, every chart drawn, the
screenshot not blank. Curves: the closed-form M/M/1 (tests/synthetic.py), for speed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from matplotlib.image import imread
from typer.testing import CliRunner

import simulator
from simulator.cli.main import app
from simulator.fleet import projection
from simulator.report import write_files
from simulator.scenario.loading import load_scenario
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider

runner = CliRunner()
CHARTS = ("comparison", "monthly", "latency", "utilisation")
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def synthetic_curves(monkeypatch):
    monkeypatch.setattr(projection, "default_curve_provider", mm1_provider())


@pytest.fixture
def report(tmp_path):
    """The HTML report and the summary.json of each plan, from the same scenario."""
    data = minimal_scenario_dict()
    data["plans"] = [{"name": "dearer", "set": {"pools.gpus.pricing.usd_per_gpu_hour": 4.0}}]
    scenario = tmp_path / "mini.yaml"
    scenario.write_text(yaml.safe_dump(data, sort_keys=False))
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(scenario), "--html", str(page), "-q"])
    assert result.exit_code == 0, result.output
    loaded = load_scenario(scenario)
    summaries = {}
    for plan in ("base", "dearer"):  # summary.json as `fleetsim run --out` writes it, same curves
        out = tmp_path / "out" / plan
        write_files(simulator.run(loaded, plan=plan, curve_provider=mm1_provider()), out)
        summaries[plan] = json.loads((out / "summary.json").read_text())
    return page, summaries


def test_page_is_self_contained_and_its_numbers_equal_summary_json(report):
    page, summaries = report
    text = page.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)  # nothing fetched at view time
    for chart in CHARTS:
        assert f'id="chart-{chart}"' in text
    rows = re.findall(r"<tr><th>([^<]+)</th>(.*?)</tr>", text)
    shown = {plan: dict(re.findall(r"data-key='([^']+)' data-value='([^']+)'", cells))
             for plan, cells in rows if "data-key" in cells}
    assert set(shown) == set(summaries)
    for plan, summary in summaries.items():
        for key in ("total_cost_usd", "inference_cost_usd", "training_cost_usd", "idle_cost_usd", "gpu_hours_billed"):
            assert float(shown[plan][key]) == summary[key]
        assert float(shown[plan]["workloads.chat.slo_attainment"]) == summary["workloads"]["chat"]["slo_attainment"]
    embedded = re.search(r"<script type='application/json' id='fleetsim-summaries'>(.*?)</script>", text, re.DOTALL)
    assert json.loads(embedded.group(1).replace("<\\/", "</")) == summaries


def test_report_needs_a_workbook_or_a_page(tmp_path):
    scenario = tmp_path / "mini.yaml"
    scenario.write_text(yaml.safe_dump(minimal_scenario_dict()))
    result = runner.invoke(app, ["report", str(scenario)])
    assert result.exit_code == 2 and "--html NAME.html" in result.output
    result = runner.invoke(app, ["report", str(scenario), "--html", str(tmp_path / "r.pdf")])
    assert result.exit_code == 2 and "must be an .html file" in result.output


@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed (.ci/run installs Debian's package)")
def test_page_loads_in_headless_chromium_with_no_errors_and_draws_every_chart(report, tmp_path):
    page, _ = report
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0"]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=False)  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "rror" in line], console
    assert not re.search(r"<html[^>]*data-script-errors=", dom.stdout)  # the page's error hook saw nothing
    for chart in CHARTS:
        drawn = re.search(rf'id="chart-{chart}".*?class="main-svg"', dom.stdout, re.DOTALL)
        assert drawn, f"chart {chart} not drawn"
    assert dom.stdout.count('class="main-svg"') >= len(CHARTS)
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, "--window-size=1400,2400", f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120, check=False)  # fmt: skip
    pixels = imread(shot)[..., :3]
    assert pixels.shape[0] >= 2000 and np.std(pixels) > 0.05  # not blank
    colours = {tuple(np.round(p, 1)) for p in pixels[::7, ::7].reshape(-1, 3)}
    assert len(colours) > 20  # charts in colour, not one flat page
