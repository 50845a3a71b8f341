"""Speed of the lifetime projection (issue: training jobs and the lifetime projection).

(a) A 36-month hourly projection with 5 workloads, 4 deployments and 3 training jobs, with the
    latency curves built beforehand (the closed-form M/M/1 curve stands in for them, so the
    figure is the projection alone): aim < 1 s.
(b) The whole `fleetsim run` of the bundled chat scenario (curves simulated, cold cache):
    aim < 30 s on 2 cores.

Prints figures; not a test. Run: python benchmarks/bench_projection.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.environ.get("FLEETSIM_SOURCE", str(ROOT)))  # the package measured (compare_revisions.py)

from simulator.results.runner import run
from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.loading import load_scenario
from tests.synthetic import mm1_provider


def big_scenario(n_workloads: int = 5, n_deployments: int = 4) -> dict:
    models = ["llama-3-8b", "llama-3-70b", "mistral-7b", "mixtral-8x7b"]
    deployments = [
        {"name": f"d{i}", "pool": "serving", "model": models[i % 4], "dtype": "fp8", "tensor_parallel": 4,
         "autoscaling": {"min_replicas": 1, "max_replicas": 64}}
        for i in range(n_deployments)
    ]  # fmt: skip
    workloads = [
        {"name": f"w{i}", "traffic": {"requests_per_second": 5 + 3 * i, "growth_per_month": 0.03,
                                      "diurnal_peak_to_mean": 1.6, "weekend_factor": 0.7},
         "prompt_tokens": {"distribution": "lognormal", "mean": 1000, "sigma": 0.7},
         "output_tokens": {"distribution": "lognormal", "mean": 250, "sigma": 0.6},
         "slo": {"ttft_p95_ms": 1000, "tpot_p95_ms": 80},
         "routes": [{"deployment": f"d{i % n_deployments}", "share": 0.5},
                    {"deployment": f"d{(i + 1) % n_deployments}", "share": 0.5}]}
        for i in range(n_workloads)
    ]  # fmt: skip
    jobs = [
        {"name": f"j{i}", "pool": "training", "model": "llama-3-70b", "tokens": 2e11, "gpus": 256,
         "start": f"2027-0{i + 2}-01", **({"repeat_every_months": 3} if i == 2 else {})}
        for i in range(3)
    ]  # fmt: skip
    return {
        "name": "bench", "seed": 1, "horizon": {"start": "2027-01-01", "months": 36},
        "pools": [
            {"name": "serving", "gpu": "h100-sxm", "max_gpus": 2048,
             "pricing": {"kind": "reserved", "committed_gpus": 128, "term_months": 36, "usd_per_gpu_hour": 2.0}},
            {"name": "training", "gpu": "h100-sxm", "max_gpus": 1024,
             "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 3.0}},
        ],
        "deployments": deployments, "workloads": workloads, "training_jobs": jobs,
    }  # fmt: skip


def projection_s(n_workloads: int, n_deployments: int, rounds: int = 3) -> float:
    """Best wall time of the whole run (projection and results) with closed-form curves."""
    scenario = validate_scenario_data(big_scenario(n_workloads, n_deployments))
    provider = mm1_provider(4.0, 3000)
    run(scenario, curve_provider=provider)  # warm imports
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(scenario, curve_provider=provider)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    print(f"(a) 36-month projection, 5 workloads / 4 deployments / 3 jobs: best {projection_s(5, 4):.3f} s "
          f"of 3 (aim < 1 s); 50 workloads / 20 deployments: {projection_s(50, 20):.3f} s")

    with tempfile.TemporaryDirectory() as cache:
        os.environ["FLEETSIM_CACHE_DIR"] = cache
        chat = load_scenario(ROOT / "scenarios" / "chat-assistant.yaml")
        start = time.perf_counter()
        run(chat)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        run(chat)
        warm = time.perf_counter() - start
    print(f"(b) chat-assistant run: cold curve cache {cold:.1f} s (aim < 30 s), warm {warm:.2f} s")


if __name__ == "__main__":
    main()
