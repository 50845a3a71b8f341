"""Scenarios and theory shared by the inference-engine tests."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import yaml

from simulator.scenario.checks import validate_scenario_data
from simulator.scenario.schema import Scenario
from tests.conftest import ROOT

#: Seconds of one iteration of the "unit" deployment (the calibration overhead; the roofline
#: terms of its tiny model on a very fast GPU are ~1e-15 s).
UNIT_ITERATION_S = 0.01


def unit_scenario_dict(
    max_batch_size: int = 1,
    output: dict[str, Any] | None = None,
    prompt: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A deployment whose every iteration takes UNIT_ITERATION_S, whatever its batch or context.

    A tiny model on a GPU with enormous peaks, so the roofline terms vanish and the calibration
    profile's fixed per-iteration overhead is the whole iteration time.
    """
    return {
        "name": "unit",
        "seed": 0,
        "horizon": {"start": "2027-01-01", "months": 1},
        "catalog": {
            "gpus": [{"name": "unit-gpu", "vendor": "test", "bf16_tflops": 1e9, "fp32_tflops": 1e9,
                      "hbm_gib": 80, "hbm_tb_per_s": 1e9, "interconnect_gb_per_s": 1e9,
                      "tdp_w": 100}],
            "models": [{"name": "unit-model", "parameters": 1000, "layers": 1, "hidden_size": 8,
                        "heads": 1, "kv_heads": 1, "ffn_hidden_size": 8, "vocab_size": 8,
                        "max_context_tokens": 1_000_000}],
        },
        "calibration": {
            "name": "unit", "gpu": "unit-gpu", "device": "none", "source": "published",
            "parameters": {"gemm_efficiency_max": 1, "gemm_half_saturation_tokens": 0,
                           "attention_efficiency": 1, "memory_bandwidth_efficiency": 1,
                           "interconnect_efficiency": 1, "allreduce_latency_s": 0,
                           "iteration_overhead_s": UNIT_ITERATION_S, "training_mfu": 0.5},
        },
        "pools": [{"name": "p", "gpu": "unit-gpu", "max_gpus": 64,
                   "pricing": {"kind": "on_demand", "usd_per_gpu_hour": 1.0}}],
        "deployments": [{"name": "d", "pool": "p", "model": "unit-model",
                         "max_batch_size": max_batch_size, "max_batched_tokens": 64,
                         "autoscaling": {"min_replicas": 1, "max_replicas": 64}}],
        "workloads": [{"name": "w", "traffic": {"requests_per_second": 1.0},
                       "prompt_tokens": prompt or {"distribution": "fixed", "value": 1},
                       "output_tokens": output or {"distribution": "exponential", "mean": 100},
                       "routes": [{"deployment": "d", "share": 1.0}]}],
    }  # fmt: skip


def unit_scenario(**kwargs: Any) -> Scenario:
    return validate_scenario_data(unit_scenario_dict(**kwargs))


def chat_dict() -> dict[str, Any]:
    text = (ROOT / "scenarios" / "chat-assistant.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def chat_scenario(deployment: dict[str, Any] | None = None, workload: dict[str, Any] | None = None) -> Scenario:
    """The bundled chat scenario with fields of chat-8b and of the chat workload replaced."""
    data = copy.deepcopy(chat_dict())
    for dep in data["deployments"]:
        if dep["name"] == "chat-8b":
            dep.update(deployment or {})
    data["workloads"][0].update(workload or {})
    return validate_scenario_data(data)


# ---------------------------------------------------------------------------- theory


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in M/M/c (Erlang's C formula).

    C(c, a) = [a^c / c! * c / (c - a)] / [sum_{k<c} a^k / k! + a^c / c! * c / (c - a)], with
    a = lambda / mu < c (Kleinrock, Queueing Systems Vol. 1, 1975, eq. 3.40; Gross & Harris,
    Fundamentals of Queueing Theory, section 2.3). The terms a^k / k! are built iteratively
    (no factorial overflow).
    """
    a, c = offered_load, servers
    if not 0 <= a < c:
        raise ValueError("need 0 <= offered load < servers")
    term, total = 1.0, 0.0
    for k in range(c):
        total += term
        term *= a / (k + 1)
    top = term * c / (c - a)  # a^c / c! * c / (c - a)
    return top / (total + top)


def erlang_c_mean_wait_s(servers: int, arrival_rate: float, mean_service_s: float) -> float:
    """Mean wait in queue of M/M/c: W_q = C(c, a) / (c mu - lambda) (same references)."""
    mu = 1.0 / mean_service_s
    return erlang_c(servers, arrival_rate * mean_service_s) / (servers * mu - arrival_rate)


def rounded_exponential_moments(mean: float) -> tuple[float, float]:
    """E[K] and E[K^2] of K = max(1, round(X)), X ~ Exp(mean): the token counts
    :func:`simulator.scenario.distributions.sample_token_counts` draws from an exponential."""
    k = np.arange(1, int(60 * mean) + 2, dtype=float)
    p = np.exp(-(k - 0.5) / mean) - np.exp(-(k + 0.5) / mean)
    p[0] = 1 - math.exp(-1.5 / mean)  # X < 1.5 rounds to 0 or 1, raised to 1
    return float((k * p).sum()), float((k * k * p).sum())
