"""Shared fixtures: paths to bundled scenarios and small scenario dicts."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
SHARED_TRACE = ROOT.parent / "shared" / "traces" / "azure-llm-2023-conv.csv"


@pytest.fixture
def chat_path() -> Path:
    return ROOT / "scenarios" / "chat-assistant.yaml"


def minimal_scenario_dict() -> dict:
    """A small valid scenario as plain data (one pool, one deployment, one workload, one job)."""
    return {
        "name": "mini",
        "seed": 1,
        "horizon": {"start": "2027-01-01", "months": 2},
        "pools": [
            {"name": "gpus", "gpu": "h100-sxm", "max_gpus": 64,
             "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 3.0}},
        ],
        "deployments": [
            {"name": "small", "pool": "gpus", "model": "llama-3-8b", "dtype": "bf16",
             "tensor_parallel": 1, "autoscaling": {"min_replicas": 1, "max_replicas": 8}},
        ],
        "workloads": [
            {"name": "chat", "traffic": {"requests_per_second": 2.0},
             "prompt_tokens": {"distribution": "fixed", "value": 500},
             "output_tokens": {"distribution": "fixed", "value": 100},
             "slo": {"ttft_p95_ms": 1000, "tpot_p95_ms": 100},
             "routes": [{"deployment": "small", "share": 1.0}]},
        ],
        "training_jobs": [
            {"name": "ft", "pool": "gpus", "model": "llama-3-8b", "tokens": 1e9, "gpus": 8,
             "start": "2027-01-05"},
        ],
    }  # fmt: skip


@pytest.fixture
def mini() -> dict:
    return minimal_scenario_dict()


@pytest.fixture(scope="session", autouse=True)
def _isolated_curve_cache(tmp_path_factory):
    """Latency curves cache into a fresh directory per test session, never the user's."""
    import os

    previous = os.environ.get("FLEETSIM_CACHE_DIR")
    os.environ["FLEETSIM_CACHE_DIR"] = str(tmp_path_factory.mktemp("curve-cache"))
    yield
    if previous is None:
        os.environ.pop("FLEETSIM_CACHE_DIR", None)
    else:
        os.environ["FLEETSIM_CACHE_DIR"] = previous
