"""Latency curves: shape, capacity, and caching by content hash (memory and disk)."""

from __future__ import annotations

import numpy as np
import pytest

import simulator.inference.curve as curve_module
from simulator.inference import LatencyCurve, deployment_curve, latency_curve
from simulator.inference.curve import QUICK_SETTINGS, cache_dir, clear_memory_cache, curve_key
from tests.inference_support import chat_scenario, unit_scenario


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(tmp_path / "curves"))
    clear_memory_cache()
    yield tmp_path / "curves"
    clear_memory_cache()


@pytest.fixture
def computations(monkeypatch):
    """Counts the curves actually simulated."""
    calls = []
    real = curve_module.latency_curve

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(curve_module, "latency_curve", counting)
    return calls


def test_quick_curve_shape_and_capacity():
    curve = deployment_curve(chat_scenario(), "chat-8b", "chat", quick=True)
    assert isinstance(curve, LatencyCurve)
    n, q = len(curve.rates_per_replica), len(curve.quantile_levels)
    assert 8 <= n <= 12 and q == 201
    assert np.all(np.diff(curve.rates_per_replica) > 0) and curve.rates_per_replica[0] > 0
    for name in ("ttft_ms", "tpot_ms", "e2e_ms"):
        values = getattr(curve, name)
        assert values.shape == (n, q)
        assert np.all(np.diff(values, axis=1) >= 0)  # quantile functions are non-decreasing
    assert curve.slo_attainment.shape == curve.busy_fraction.shape == (n,)
    assert np.all((0 <= curve.busy_fraction) & (curve.busy_fraction <= 1))
    assert curve.capacity_per_replica in curve.rates_per_replica
    at = int(np.searchsorted(curve.rates_per_replica, curve.capacity_per_replica))
    assert curve.slo_attainment[at] >= 0.95
    assert curve.slo_attainment[-1] < 0.95  # 1.2 x capacity breaks the SLO
    prompt, output = curve.tokens_per_request
    assert prompt == pytest.approx(1200, rel=0.1) and output == pytest.approx(250, rel=0.1)
    # light load: low TTFT; the highest load: far higher
    assert curve.ttft_ms[0, 190] < 800 < curve.ttft_ms[-1, 190]


def test_curves_are_cached_in_memory_and_on_disk(isolated_cache, computations):
    scenario = chat_scenario()
    first = deployment_curve(scenario, "chat-8b", "chat", quick=True)
    again = deployment_curve(scenario, "chat-8b", "chat", quick=True)
    assert again is first and len(computations) == 1
    files = sorted(p.name for p in isolated_cache.iterdir())
    assert len(files) == 1 and files[0].endswith(".npz")  # no temp files left behind
    clear_memory_cache()
    loaded = deployment_curve(scenario, "chat-8b", "chat", quick=True)
    assert len(computations) == 1  # read from disk
    for field in ("rates_per_replica", "ttft_ms", "tpot_ms", "e2e_ms", "slo_attainment",
                  "busy_fraction", "quantile_levels"):  # fmt: skip
        np.testing.assert_array_equal(getattr(loaded, field), getattr(first, field))
    assert loaded.tokens_per_request == first.tokens_per_request
    assert loaded.capacity_per_replica == first.capacity_per_replica
    assert (loaded.deployment, loaded.workload) == ("chat-8b", "chat")


def test_cache_key_follows_the_inputs_that_matter():
    base = chat_scenario()
    dep, wl = base.deployment("chat-8b"), base.workload("chat")
    key = curve_key(base, dep, wl, 1, QUICK_SETTINGS)
    assert key == curve_key(base, dep, wl, 1, QUICK_SETTINGS)
    assert key != curve_key(base, dep, wl, 2, QUICK_SETTINGS)
    tighter = chat_scenario(workload={"slo": {"ttft_p95_ms": 500}})
    assert key != curve_key(tighter, dep, tighter.workload("chat"), 1, QUICK_SETTINGS)
    bigger = chat_scenario(deployment={"max_batch_size": 128})
    assert key != curve_key(bigger, bigger.deployment("chat-8b"), wl, 1, QUICK_SETTINGS)
    scaled = chat_scenario(deployment={"autoscaling": {"min_replicas": 3}})
    assert key == curve_key(scaled, scaled.deployment("chat-8b"), wl, 1, QUICK_SETTINGS)


def test_unwritable_or_disabled_disk_cache(tmp_path, monkeypatch, computations):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", str(blocker / "curves"))
    curve = deployment_curve(unit_scenario(max_batch_size=4), "d", "w", quick=True)
    assert curve.capacity_per_replica > 0
    monkeypatch.setenv("FLEETSIM_CACHE_DIR", "off")
    assert cache_dir() is None
    monkeypatch.delenv("FLEETSIM_CACHE_DIR")
    assert cache_dir().parts[-3:] == (".cache", "fleetsim", "curves")


def test_capacity_is_zero_when_the_slo_is_unreachable():
    scenario = chat_scenario(workload={"slo": {"ttft_p95_ms": 1}})
    curve = latency_curve(scenario, "chat-8b", "chat", settings=QUICK_SETTINGS)
    assert curve.capacity_per_replica == 0.0
    assert np.all(curve.rates_per_replica > 0) and np.all(curve.slo_attainment < 0.95)


def test_without_slo_capacity_is_the_stable_throughput():
    """Batch 1, 1 s mean service (M/M/1): the highest stable rate is just below 1 req/s."""
    curve = latency_curve(unit_scenario(), "d", "w", settings=QUICK_SETTINGS)
    assert 0.7 < curve.capacity_per_replica <= 1.05


def test_explicit_rates():
    curve = latency_curve(unit_scenario(max_batch_size=8), "d", "w", [0.5, 2.0, 1.0],
                          settings=QUICK_SETTINGS)  # fmt: skip
    assert curve.rates_per_replica.tolist() == [0.5, 1.0, 2.0]
    with pytest.raises(ValueError, match="> 0"):
        latency_curve(unit_scenario(), "d", "w", [0.0], settings=QUICK_SETTINGS)


def _tamper_capacity(path):
    with np.load(path, allow_pickle=False) as data:
        content = {name: np.array(data[name]) for name in data.files}
    content["capacity_per_replica"] = content["capacity_per_replica"] * 1000
    with open(path, "wb") as handle:
        np.savez(handle, **content)


@pytest.mark.parametrize("damage", [
    _tamper_capacity,
    lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),  # truncated
    lambda path: path.write_bytes(bytes(b ^ 0xFF if i == 200 else b for i, b in enumerate(path.read_bytes()))),
])  # fmt: skip
def test_a_damaged_cache_entry_is_rebuilt_never_used(isolated_cache, computations, damage):
    scenario = chat_scenario()
    first = deployment_curve(scenario, "chat-8b", "chat", quick=True)
    (path,) = isolated_cache.iterdir()
    damage(path)
    clear_memory_cache()
    again = deployment_curve(scenario, "chat-8b", "chat", quick=True)
    assert len(computations) == 2  # recomputed, not read
    assert again.capacity_per_replica == first.capacity_per_replica
    clear_memory_cache()
    deployment_curve(scenario, "chat-8b", "chat", quick=True)
    assert len(computations) == 2  # the rebuilt entry is good again


# ---------------------------------------------------------------------------- capacity alone, stated error


def test_capacity_alone_equals_the_curves_and_is_cached(isolated_cache, computations):
    """The screening capacity (no load grid) is the curve's capacity bit for bit; cached on disk
    as JSON, a damaged file recomputed; a cached curve answers without a search."""
    scenario = chat_scenario()
    capacity = curve_module.deployment_capacity(scenario, "chat-8b", "chat", quick=True)
    assert computations == []  # the search alone, not a curve
    files = list(isolated_cache.glob("*.capacity.json"))
    assert len(files) == 1
    clear_memory_cache()
    assert curve_module.deployment_capacity(scenario, "chat-8b", "chat", quick=True) == capacity
    files[0].write_text("{not json")
    clear_memory_cache()
    assert curve_module.deployment_capacity(scenario, "chat-8b", "chat", quick=True) == capacity
    curve = deployment_curve(scenario, "chat-8b", "chat", quick=True)
    assert curve.capacity_per_replica == capacity
    assert curve_module.replica_capacity(scenario, "chat-8b", "chat", settings=QUICK_SETTINGS) == capacity


def test_batch_means_error_of_independent_outcomes_is_the_binomial_error():
    """On independent Bernoulli(p) outcomes the batch-means standard error is sqrt(p(1-p)/n)."""
    rng = np.random.default_rng(11)
    p, runs, n = 0.9, 3, 4000
    ratios = []
    for _ in range(40):
        values = [(rng.random(n) < p).astype(float) for _ in range(runs)]
        ratios.append(curve_module.batch_means_stderr(values, np.mean) / np.sqrt(p * (1 - p) / (runs * n)))
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.05)
    assert np.isnan(curve_module.batch_means_stderr([np.array([1.0])], np.mean))


def test_curve_states_its_error():
    curve = deployment_curve(chat_scenario(), "chat-8b", "chat", quick=True)
    lo, hi = curve.capacity_bracket_per_replica
    assert lo == curve.capacity_per_replica and hi > lo
    error = curve.capacity_error()
    assert error["capacity_resolution"] == pytest.approx((hi - lo) / lo)
    assert error["capacity_resolution"] <= QUICK_SETTINGS.fine_tolerance / (1 - QUICK_SETTINGS.fine_tolerance) + 1e-12
    assert 0 <= error["slo_attainment_stderr"] < 0.1
    assert np.all(curve.slo_attainment_stderr >= 0) and curve.ttft_p95_stderr_ms.shape == curve.rates_per_replica.shape


def test_summary_states_each_simulated_curves_error():
    from simulator.results.runner import run
    from simulator.sweep.tasks import CurveSource

    scenario = chat_scenario()
    result = run(scenario, curve_provider=CurveSource(quick=True))
    stated = result.summary["workloads"]["chat"]["latency_curves"]
    assert {e["deployment"] for e in stated} == {r.deployment for r in scenario.workload("chat").routes}
    for e in stated:
        assert e["capacity_per_replica"] > 0 and e["capacity_resolution"] > 0
