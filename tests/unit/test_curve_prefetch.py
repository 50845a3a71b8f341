"""Curves built beforehand in parallel processes equal the serial build, and are built once."""

from __future__ import annotations

import numpy as np

from simulator.fleet.projection import curve_requests
from simulator.inference import curve as curve_module
from simulator.inference.curve import QUICK_SETTINGS, latency_curve, prefetch
from tests.inference_support import chat_scenario


def test_parallel_prefetch_equals_the_serial_build(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(tmp_path))
    curve_module.clear_memory_cache()
    scenario = chat_scenario()
    wanted = curve_requests(scenario)
    assert sorted({(d, w) for _, d, w in wanted}) == [("chat-70b", "chat"), ("chat-8b", "chat")]
    progress = []
    built = prefetch(wanted + wanted, workers=2, quick=True, on_built=lambda done, total: progress.append((done, total)))
    assert built == 2 and progress[-1] == (2, 2)  # each once, though asked twice
    assert prefetch(wanted, workers=2, quick=True) == 0  # cached now
    assert len(list(tmp_path.glob("*.npz"))) == 2
    for deployment in ("chat-8b", "chat-70b"):
        parallel = curve_module.deployment_curve(scenario, deployment, "chat", quick=True)
        serial = latency_curve(scenario, deployment, "chat", settings=QUICK_SETTINGS)
        assert parallel.capacity_per_replica == serial.capacity_per_replica
        for name in ("rates_per_replica", "ttft_ms", "tpot_ms", "e2e_ms", "slo_attainment"):
            np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name))
    curve_module.clear_memory_cache()
