"""Speed of the inference engine, in simulated requests per wall-clock second (one core).

    python benchmarks/bench_inference.py            # all figures
    python benchmarks/bench_inference.py --profile  # plus cProfile of the chat case

(a) M/M/c, c = 16, rho = 0.9 (batch size 1, shared queue, exponential service): the engine
    against a bare simpy M/M/c loop (a Resource of capacity c, one process per customer) on
    the same number of customers, in the same run. The ratio is the figure (aim: <= 1.5x).
(b) A chat workload (lognormal prompts of mean 1,000 tokens, outputs of mean 250, batch up to
    256) on 8 replicas of Llama-3-8B on H100 at ~80% of their capacity (aim: >= 50,000 req/s).
    Also: simpy events per request and output tokens per event, which show that events scale
    with requests, not with tokens.
(c) Building the latency curves of the bundled chat scenario (two deployments), no cache.
(e) The chat case on 1, 8, 64 and 512 replicas (least-outstanding routing, which keeps its loads
    in heaps from 24 replicas), each against the bare simpy M/M/c loop on as many servers and
    customers, in the same run.
(d) The chat case as 4-turn conversations with the prefix cache simulated and session-affinity
    routing on 8 replicas (aim: >= 20,000 req/s), against the bare simpy M/M/c loop.

Figures are printed, not asserted: this is not a timed test.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

import numpy as np
import simpy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.environ.get("FLEETSIM_SOURCE", str(ROOT)))  # the package measured (compare_revisions.py)

from simulator.inference.api import replica_setup
from simulator.inference.engine import EngineConfig, RequestArrays, simulate
from simulator.scenario.distributions import Lognormal, sample_token_counts
from simulator.scenario.loading import load_scenario
from tests.inference_support import UNIT_ITERATION_S, unit_scenario


def best_of(repeats: int, fn):
    """(best wall seconds, last result) of ``repeats`` runs."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bare_simpy_mmc(arrival_s: np.ndarray, service_s: np.ndarray, servers: int) -> float:
    """The textbook simpy M/M/c: one process per customer, a Resource of ``servers``."""
    env = simpy.Environment()
    resource = simpy.Resource(env, capacity=servers)
    total_wait = [0.0]

    def customer(service: float):
        arrived = env.now
        with resource.request() as request:
            yield request
            total_wait[0] += env.now - arrived
            yield env.timeout(service)

    def source():
        for arrival, service in zip(arrival_s.tolist(), service_s.tolist()):
            yield env.timeout(arrival - env.now)
            env.process(customer(service))

    env.process(source())
    env.run()
    return total_wait[0] / len(arrival_s)


def count_events(fn) -> tuple[int, object]:
    """simpy events processed while running ``fn`` (by counting Environment.step calls)."""
    calls = [0]
    real_step = simpy.Environment.step

    def step(self):
        calls[0] += 1
        return real_step(self)

    simpy.Environment.step = step
    try:
        result = fn()
    finally:
        simpy.Environment.step = real_step
    return calls[0], result


def bench_mmc(n: int = 200_000, servers: int = 16, rho: float = 0.9) -> None:
    print(f"(a) M/M/c, c = {servers}, rho = {rho}, {n:,} customers")
    rng = np.random.default_rng(1)
    mean_service = 1.0
    rate = rho * servers / mean_service
    arrival = np.cumsum(rng.exponential(1 / rate, n))
    tokens = np.maximum(1, np.rint(rng.exponential(mean_service / UNIT_ITERATION_S, n))).astype(int)
    scenario = unit_scenario()
    config, _, timer = replica_setup(scenario, scenario.deployment("d"))
    engine_config = EngineConfig(config, servers, "shared_queue")
    requests = RequestArrays(arrival, np.ones(n, dtype=int), tokens, np.zeros(n, dtype=int))

    def engine():
        return simulate(engine_config, timer, requests, duration_s=float(arrival[-1]) + 1e-9)

    engine_s, record = best_of(3, engine)
    bare_s, bare_wait = best_of(3, lambda: bare_simpy_mmc(arrival, tokens * UNIT_ITERATION_S, servers))
    engine_wait = float(np.nanmean(record.first_scheduled_s - record.arrival_s))
    print(f"    engine (simulate)      {n / engine_s:10,.0f} req/s   mean wait {engine_wait:.4f} s")
    print(f"    bare simpy M/M/c loop  {n / bare_s:10,.0f} req/s   mean wait {bare_wait:.4f} s")
    print(f"    engine / bare time     {engine_s / bare_s:10.2f} x  (aim <= 1.5)")


def chat_requests(n_per_replica_s: float, replicas: int, duration_s: float, seed: int = 3):
    rng = np.random.default_rng(seed)
    rate = n_per_replica_s * replicas
    arrival = np.cumsum(rng.exponential(1 / rate, int(rate * duration_s)))
    n = len(arrival)
    prompt = sample_token_counts(Lognormal(distribution="lognormal", mean=1000, sigma=0.8), rng, n)
    output = sample_token_counts(Lognormal(distribution="lognormal", mean=250, sigma=0.6), rng, n)
    return RequestArrays(arrival, prompt, output, np.zeros(n, dtype=int))


def bench_chat(profile: bool, replicas: int = 8, per_replica_rps: float = 20.0,
               duration_s: float = 600.0) -> None:  # fmt: skip
    scenario = load_scenario(ROOT / "scenarios" / "chat-assistant.yaml")
    dep = scenario.deployment("chat-8b")
    config, _, timer = replica_setup(scenario, dep)
    requests = chat_requests(per_replica_rps, replicas, duration_s)
    n = len(requests)
    engine_config = EngineConfig(config, replicas, "least_outstanding")
    print(f"(b) chat workload (prompt ~1000, output ~250 tokens), {replicas} x {dep.model} on "
          f"{dep.pool}, batch <= {config.max_batch_size}, {per_replica_rps:g} req/s per replica, "
          f"{n:,} requests")  # fmt: skip

    def engine():
        return simulate(engine_config, timer, requests, duration_s=duration_s)

    wall_s, record = best_of(3, engine)
    events, _ = count_events(engine)
    tokens = int(record.output_tokens[record.status == "completed"].sum())
    window = record.duration_s - record.warmup_s
    busy = np.mean([s.busy_s / window for s in record.replica_stats])
    batch = np.mean([s.batch_sum / s.iterations for s in record.replica_stats])
    done = record.status == "completed"
    ttft = np.percentile(record.first_token_s[done] - record.arrival_s[done], 95) * 1e3
    print(f"    engine (simulate)      {n / wall_s:10,.0f} req/s   (aim >= 50,000)")
    print(f"    simpy events           {events / n:10.2f} per request")
    print(f"    tokens generated       {tokens:10,} ({tokens / events:.0f} per event: one event "
          "per token would be per-token simulation)")
    print(f"    mean batch {batch:.0f}, busy {busy:.0%}, TTFT p95 {ttft:.0f} ms, "
          f"{int(done.sum()):,} completed")  # fmt: skip
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(engine)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def bench_conversations(replicas: int = 8, per_replica_rps: float = 12.0, duration_s: float = 900.0) -> None:
    """(d) the chat case as conversations with the prefix cache simulated, session affinity,
    against the bare simpy M/M/c loop on the same number of customers (same run)."""
    from simulator.inference.api import streams
    from simulator.inference.sessions import sample_turns
    from simulator.scenario.checks import validate_scenario_data
    from simulator.scenario.loading import scenario_data

    scenario = load_scenario(ROOT / "scenarios" / "chat-assistant.yaml")
    data = scenario_data(scenario)
    data["workloads"][0].update(prefix_cache_hit_rate=0.0, prompt_tokens={"distribution": "lognormal", "mean": 300,
                                "sigma": 0.8}, sessions={"turns": {"distribution": "fixed", "value": 4},
                                "think_s": 30, "system_prompt_tokens": 500})  # fmt: skip
    scenario = validate_scenario_data(data)
    dep = scenario.deployment("chat-8b")
    config, _, timer = replica_setup(scenario, dep)
    turns = sample_turns(scenario.workload("chat"), per_replica_rps * replicas, duration_s, streams(3))
    n = len(turns.arrival_s)
    requests = RequestArrays(turns.arrival_s, turns.prompt_tokens, turns.output_tokens, np.zeros(n, dtype=int),
                             session=turns.session, reusable_tokens=turns.reusable_tokens,
                             shared_prefix_tokens=500)  # fmt: skip
    engine_config = EngineConfig(config, replicas, "session_affinity")
    print(f"(d) conversations (4 turns, 500-token system prompt, prefix cache simulated), {replicas} x "
          f"{dep.model}, session affinity, {n:,} requests")  # fmt: skip

    def engine():
        return simulate(engine_config, timer, requests, duration_s=duration_s)

    wall_s, record = best_of(3, engine)
    events, _ = count_events(engine)
    rng = np.random.default_rng(5)
    service = rng.exponential(0.9 * replicas / (per_replica_rps * replicas), n)
    bare_s, _ = best_of(3, lambda: bare_simpy_mmc(turns.arrival_s, service, replicas))
    done = record.status == "completed"
    hit = record.cached_tokens[done].sum() / record.prompt_tokens[done].sum()
    print(f"    engine (simulate)      {n / wall_s:10,.0f} req/s   (aim >= 20,000)")
    print(f"    bare simpy M/M/c loop  {n / bare_s:10,.0f} req/s   engine / bare time {wall_s / bare_s:.2f} x")
    print(f"    simpy events           {events / n:10.2f} per request, prefix-cache hit rate {hit:.1%}")


def bench_scaling(replica_counts: tuple[int, ...] = (1, 8, 64, 512), requests_per_case: int = 48_000,
                  per_replica_rps: float = 20.0) -> list[tuple[int, float, float]]:  # fmt: skip
    """(e) the chat case at several fleet sizes: (replicas, engine req/s, engine / bare time)."""
    scenario = load_scenario(ROOT / "scenarios" / "chat-assistant.yaml")
    config, _, timer = replica_setup(scenario, scenario.deployment("chat-8b"))
    print(f"(e) chat case by fleet size, {per_replica_rps:g} req/s per replica, least-outstanding routing")
    rows = []
    for replicas in replica_counts:
        duration_s = requests_per_case / (per_replica_rps * replicas)
        requests = chat_requests(per_replica_rps, replicas, duration_s)
        n = len(requests)
        engine_config = EngineConfig(config, replicas, "least_outstanding")
        service = np.random.default_rng(5).exponential(0.9 / per_replica_rps, n)

        def engine(c=engine_config, r=requests, d=duration_s):
            return simulate(c, timer, r, duration_s=d)

        def bare(r=requests, s=service, c=replicas):
            return bare_simpy_mmc(r.arrival_s, s, c)

        wall_s, _ = best_of(2, engine)
        bare_s, _ = best_of(2, bare)
        rows.append((replicas, n / wall_s, wall_s / bare_s))
        print(f"    {replicas:4d} replicas  {n / wall_s:10,.0f} req/s   engine / bare time {wall_s / bare_s:5.2f} x")
    return rows


def bench_curves() -> None:
    from simulator.inference.curve import clear_memory_cache, deployment_curve

    os.environ["FLEETSIM_CACHE_DIR"] = "off"
    clear_memory_cache()
    scenario = load_scenario(ROOT / "scenarios" / "chat-assistant.yaml")
    print("(c) latency curves of the bundled chat scenario (cache off)")
    total = 0.0
    for dep in scenario.deployments:
        start = time.perf_counter()
        curve = deployment_curve(scenario, dep.name, "chat")
        elapsed = time.perf_counter() - start
        total += elapsed
        print(f"    {dep.name:10s} {elapsed:6.2f} s   capacity {curve.capacity_per_replica:6.2f} "
              f"req/s per replica, {len(curve.rates_per_replica)} rates")  # fmt: skip
    print(f"    total      {total:6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="cProfile the chat case")
    args = parser.parse_args()
    bench_mmc()
    bench_chat(args.profile)
    bench_conversations()
    bench_scaling()
    bench_curves()


if __name__ == "__main__":
    main()
