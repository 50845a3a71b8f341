"""Speed of sweeps on Dask (issue: sweeps, Monte Carlo ranges and the cheapest plan meeting the SLO).

(a) A 64-plan sweep of the bundled chat scenario whose grid varies what needs no new latency
    curve (the commitment, its price, the 70B deployment's target utilisation), curves built
    beforehand: wall time in this process, on a LocalCluster of 1 worker and of 2 workers, and
    the ratios (aim: 2 workers >= 1.7x 1 worker on 2 cores). Clusters are started and their
    workers warmed up (imports, curves read once) before the clock starts. The three set-ups run
    in alternating rounds and the ratio uses the best time of each, since the machine is shared.
(b) A 64-plan sweep that also builds curves (70B TP 4/8 x fp8/int4: 4 new curves plus the 8B
    one), from an empty cache, on 1 and on 2 workers.
(c) With --optimize: `fleetsim optimize` of the chat scenario from an empty cache on 2 workers
    (aim < 5 minutes).

Each part uses its own temporary curve cache. Prints figures and the load average around each
measurement (the machine may be shared); not a test. Run: python benchmarks/bench_sweep.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.environ.get("FLEETSIM_SOURCE", str(ROOT)))  # the package measured (compare_revisions.py)

import cloudpickle

from simulator.scenario.loading import load_scenario
from simulator.sweep.grid import PlanSpec, expand, parse_grid
from simulator.sweep.runner import Execution, Executor, plan_tasks, sweep
from simulator.sweep.tasks import CACHE_ENV, run_task

CHAT = ROOT / "scenarios" / "chat-assistant.yaml"

NO_NEW_CURVES = {
    "pools.serving.pricing.committed_gpus": [0, 16, 32, 48, 64, 80, 96, 128],
    "deployments.chat-70b.autoscaling.target_utilization": [0.5, 0.6, 0.7, 0.8],
    "pools.serving.pricing.usd_per_gpu_hour": [1.9, 2.1],
}
NEW_CURVES = {
    "deployments.chat-70b.tensor_parallel": [4, 8],
    "deployments.chat-70b.dtype": ["fp8", "int4"],
    "pools.serving.pricing.committed_gpus": [0, 16, 32, 48, 64, 80, 96, 128],
    "pools.serving.pricing.usd_per_gpu_hour": [1.9, 2.1],
}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load avg {one:.2f} (1 min), {five:.2f} (5 min)"


def use_cache(directory: str) -> None:
    os.environ[CACHE_ENV] = directory


def warm(executor: Executor, scenario, plans: list[PlanSpec]) -> None:
    """Start the cluster and run one plan on every worker (imports, curves into memory)."""
    if executor.execution.serial:
        run_task(plan_tasks(scenario, plans[:1], None)[0][0])
        return
    spec = plan_tasks(scenario, plans[:1], None)[0][0]
    executor.client.run(run_task, spec)


def cpu_timed_task(spec, after=None) -> dict:
    """run_task, plus the CPU seconds the task got (to see how much of the machine we had)."""
    started = time.process_time()
    row = run_task(spec, after)
    row["task_cpu_s"] = time.process_time() - started
    return row


def timed_sweep(scenario, plans: list[PlanSpec], execution: Execution, warm_up: bool) -> tuple[float, int, float]:
    """Wall seconds of the sweep, plans ok, and CPU seconds its tasks got."""
    with Executor(execution, task=cpu_timed_task) as executor:
        if warm_up:
            warm(executor, scenario, plans)
        started = time.perf_counter()
        rows = sweep(scenario, plans, None, executor)
        elapsed = time.perf_counter() - started
    return elapsed, int((rows["status"] == "ok").sum()), float(rows["task_cpu_s"].sum())


def part_a(scenario, rounds: int) -> dict[str, float]:
    plans = expand(parse_grid(NO_NEW_CURVES, scenario=scenario))
    print(f"(a) {len(plans)} plans, curves cached beforehand; {os.cpu_count()} cores; {rounds} rounds, "
          f"alternating; {load()}")  # fmt: skip
    setups = {"in process": Execution(workers=1), "1 worker": Execution(workers=1, in_process=False),
              "2 workers": Execution(workers=2)}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in setups}
    with tempfile.TemporaryDirectory() as cache:
        use_cache(cache)
        run_task(plan_tasks(scenario, plans[:1], None)[0][0])  # builds the two curves
        for r in range(rounds):
            for name, execution in setups.items():
                elapsed, _, cpu = timed_sweep(scenario, plans, execution, warm_up=True)
                times[name].append(elapsed)
                print(f"    round {r + 1} {name:>10}: {elapsed:6.2f} s  ({len(plans) / elapsed:5.1f} plans/s; "
                      f"tasks got {cpu / elapsed:.2f} cores)  [{load()}]")  # fmt: skip
    best = {name: min(t) for name, t in times.items()}
    print(f"    best of {rounds}: " + ", ".join(f"{n} {t:.2f} s" for n, t in best.items()))
    print(f"    ratio 1 worker / 2 workers: {best['1 worker'] / best['2 workers']:.2f}x   "
          f"in process / 2 workers: {best['in process'] / best['2 workers']:.2f}x   (best of {rounds})")  # fmt: skip
    return best


def part_b(scenario) -> None:
    plans = expand(parse_grid(NEW_CURVES, scenario=scenario))
    print(f"(b) {len(plans)} plans, 5 curves to build from an empty cache; {load()}")
    times = {}
    for name, workers in (("in process", 1), ("2 workers", 2)):
        with tempfile.TemporaryDirectory() as cache:
            use_cache(cache)
            times[name], ok, _ = timed_sweep(scenario, plans, Execution(workers=workers), warm_up=False)
        note = "; cluster start included" if workers > 1 else ""
        print(f"    {name:>10}: {times[name]:6.2f} s  ({ok} ok{note})  [{load()}]")
    print(f"    ratio in process / 2 workers: {times['in process'] / times['2 workers']:.2f}x")


def part_c(scenario) -> None:
    from simulator.sweep.optimize import optimize

    print(f"(c) optimize, empty cache, 2 workers; {load()}")
    with tempfile.TemporaryDirectory() as cache:
        use_cache(cache)
        started = time.perf_counter()
        with Executor(Execution(workers=2)) as executor:
            result = optimize(scenario, executor)
        elapsed = time.perf_counter() - started
    winner = result.winner
    print(f"    {elapsed:6.1f} s for {result.frame['plan'].nunique()} plans and {result.curves} screening curves  "
          f"[{load()}]")  # fmt: skip
    if winner is not None:
        print(f"    winner: {winner['plan']}: ${winner['total_cost_usd']:,.0f}")


def main() -> None:
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimize", action="store_true", help="also time fleetsim optimize (minutes)")
    parser.add_argument("--skip-build", action="store_true", help="skip part (b)")
    parser.add_argument("--only", choices=["a", "b", "c"], help="run one part only")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of part (a)")
    args = parser.parse_args()
    scenario = load_scenario(CHAT)
    if args.only in (None, "a"):
        part_a(scenario, args.rounds)
    if args.only == "b" or (args.only is None and not args.skip_build):
        part_b(scenario)
    if args.only == "c" or (args.only is None and args.optimize):
        part_c(scenario)


if __name__ == "__main__":
    main()
