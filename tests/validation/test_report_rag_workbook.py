"""The finance workbook of runs with a retrieval stage: retrieval bills as its own priced lines
(named prices on Assumptions), shows as its own Monthly column, is part of the workload's
spend and $/1M tokens, and the workbook still recomputes to the cent in LibreOffice."""

from __future__ import annotations

import shutil

import pytest

from simulator.report.runs import ReportRun
from simulator.results.runner import plan_names, run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import scenario_for_plan
from tests.conftest import minimal_scenario_dict
from tests.synthetic import mm1_provider
from tests.validation.test_report_workbook_values import SPEND, load, summary_table, write_report

MM1 = mm1_provider(service_rate=10.0, slo_ms=500.0)
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


def build_runs() -> list[ReportRun]:
    data = minimal_scenario_dict()
    data["training_jobs"][0]["failures_per_gpu_day"] = 0.0
    data["training_jobs"][0]["method"] = "lora"
    data["deployments"][0]["adapters"] = 10
    chat = data["workloads"][0]
    chat["traffic"].update(requests_per_second=12.0, diurnal_peak_to_mean=1.5)
    chat.update(adapters=10, adapter_zipf_exponent=1.0, response_cache_hit_rate=0.1)
    chat["retrieval"] = {"latency_ms": {"distribution": "lognormal", "mean": 120, "sigma": 0.5},
                         "retrieved_tokens": 800, "usd_per_hour": 2.5, "usd_per_thousand_queries": 0.3}  # fmt: skip
    plain = {**chat, "name": "plain", "retrieval": None, "adapters": 0}
    data["workloads"].append(plain)
    data["api_baseline"] = {
        "usd_per_million_input_tokens": 0.6,
        "usd_per_million_output_tokens": 2.4,
    }
    data["plans"] = [
        {"name": "dearer", "set": {"workloads.chat.retrieval.usd_per_thousand_queries": 0.5}}
    ]
    scenario = validate_scenario_data(data)
    return [ReportRun(plan, scenario_for_plan(scenario, plan), run(scenario, plan=plan, curve_provider=MM1))
            for plan in plan_names(scenario)]  # fmt: skip


@pytest.fixture(scope="module")
def runs():
    return build_runs()


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    return write_report(tmp_path_factory.mktemp("rag-workbook"), runs)


def check_summary(table, runs) -> None:
    for r in runs:
        s = r.result.summary
        assert table[(SPEND, "Lifetime spend")][r.label] == pytest.approx(
            s["total_cost_usd"], abs=0.005
        )
        assert table[(SPEND, "inference")][r.label] == pytest.approx(
            s["inference_cost_usd"], abs=0.005
        )
        chat = s["workloads"]["chat"]
        section = "Workload chat"
        assert table[(section, "Inference spend")][r.label] == pytest.approx(
            chat["cost_usd"], abs=0.005
        )
        assert table[(section, "of which retrieval (queries + hours)")][r.label] == pytest.approx(
            chat["retrieval_cost_usd"], abs=0.005)  # fmt: skip
        assert table[(section, "$ per 1M tokens (input + output)")][r.label] == pytest.approx(
            chat["cost_per_million_tokens_usd"], rel=1e-9)  # fmt: skip
        assert table[(section, "API baseline cost")][r.label] == pytest.approx(
            chat["api_baseline_cost_usd"], abs=0.005
        )
        plain = s["workloads"]["plain"]
        assert table[("Workload plain", "Inference spend")][r.label] == pytest.approx(
            plain["cost_usd"], abs=0.005
        )
        assert ("Workload plain", "of which retrieval (queries + hours)") not in table


def test_workbook_shows_retrieval_as_its_own_priced_lines(report, runs):
    values = load(report)
    check_summary(summary_table(values), runs)
    names = load(report, data_only=False).defined_names
    assert "retrieval_chat_usd_per_hour" in names  # the same in both runs: one shared cell
    assert {
        "retrieval_chat_usd_per_thousand_queries_base",
        "retrieval_chat_usd_per_thousand_queries_dearer",
    } <= set(names)
    monthly = values["Monthly base"]
    headers = [c.value for c in monthly[4]]
    assert "chat retrieval" in headers and "retrieval:chat inference" in headers
    billing = values["Billing base"]
    groups = " ".join(f"{r[1]}: {r[2]} x {r[6]}" for r in billing.iter_rows(min_row=5, values_only=True) if r[6])
    assert (
        "retrieval:chat: retrieval_queries x retrieval_chat_usd_per_thousand_queries_base" in groups
    )
    utilisation = values["Utilisation"]
    assert not any(
        str(row[2].value).startswith("retrieval:") for row in utilisation.iter_rows(min_row=5)
    )


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not on PATH")
def test_recalculated_workbook_and_a_changed_retrieval_price(report, runs, tmp_path):
    from tests.validation.test_report_workbook_recalc import (
        every_formula_matches_its_cached_value,
        recalculate,
        set_named_cell,
    )

    recalculated = load(recalculate(report, tmp_path))
    check_summary(summary_table(recalculated), runs)
    every_formula_matches_its_cached_value(report, recalculated, at_least=150)
    changed = tmp_path / "changed.xlsx"
    assert set_named_cell(report, "retrieval_chat_usd_per_hour", 3.5, changed) == 2.5
    after = summary_table(load(recalculate(changed, tmp_path)))
    before = summary_table(load(report))
    hours = {
        r.label: float(r.result.billing.query("line_item == 'retrieval_hours'")["quantity"].sum())
        for r in runs
    }
    for label, quantity in hours.items():
        assert quantity == pytest.approx((31 + 28) * 24)
        for section, figure in ((SPEND, "Lifetime spend"), ("Workload chat", "Inference spend"),
                                ("Workload chat", "of which retrieval (queries + hours)")):  # fmt: skip
            delta = after[(section, figure)][label] - before[(section, figure)][label]
            assert delta == pytest.approx(1.0 * quantity, abs=0.005)
        assert after[("Workload plain", "Inference spend")][label] == pytest.approx(
            before[("Workload plain", "Inference spend")][label], abs=1e-6)  # fmt: skip
