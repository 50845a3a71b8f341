"""SLO attainment per request, percentiles, overload detection."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.inference import serve
from simulator.inference.metrics import describe, slo_met
from simulator.scenario.schema import Slo
from tests.inference_support import chat_scenario, unit_scenario


def test_slo_met_checks_every_target_per_request():
    ttft = np.array([100.0, 900.0, 100.0, 100.0, np.nan])
    tpot = np.array([10.0, 10.0, 70.0, np.nan, np.nan])  # NaN TPOT: one-token output
    e2e = np.array([1000.0, 1000.0, 1000.0, 100.0, np.nan])  # NaN: not served
    slo = Slo(ttft_p95_ms=800, tpot_p95_ms=60)
    assert slo_met(ttft, tpot, e2e, slo).tolist() == [True, False, False, True, False]
    assert slo_met(ttft, tpot, e2e, Slo(e2e_p95_ms=500)).tolist() == [False, False, False, True, False]
    assert slo_met(ttft, tpot, e2e, None).tolist() == [True, True, True, True, False]


def test_describe():
    d = describe(np.array([1.0, 2.0, 3.0, 4.0, np.nan]))
    assert d["mean"] == 2.5 and d["p50"] == 2.5
    assert describe(np.array([np.nan]))["p95"] is None


def test_attainment_is_the_share_meeting_the_targets():
    result = serve(chat_scenario(), "chat-8b", rps=10, duration_s=60, seed=4)
    frame = result.requests
    counted = frame[frame["measured"] & frame["status"].isin(["completed", "in_flight"])]
    assert result.summary["slo_attainment"] == pytest.approx(counted["slo_met"].mean())


def test_tight_slo_is_missed():
    scenario = chat_scenario(workload={"slo": {"ttft_p95_ms": 1, "tpot_p95_ms": 60}})
    assert serve(scenario, "chat-8b", rps=5, duration_s=30, seed=4).summary["slo_attainment"] == 0


def test_light_load_is_not_overloaded():
    s = serve(unit_scenario(max_batch_size=8), "d", rps=2, duration_s=300, seed=1).summary
    assert not s["overloaded"]
    assert s["requests_in_flight"] == 0
