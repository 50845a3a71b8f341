"""Layer 4, the inference engine: a discrete-event simulation of serving replicas.

- :func:`serve` simulates a deployment's replicas serving a workload or a trace and returns a
  :class:`ServeResult` (``requests`` and ``replicas`` DataFrames, ``summary`` dict).
- :func:`deployment_curve` / :func:`latency_curve` give latency percentiles against load on one
  replica and the capacity per replica under the SLO (:class:`LatencyCurve`), cached.
- :func:`read_trace` / :func:`parse_trace` read request traces (CSV).

Modules: ``arrivals`` (arrival processes), ``trace`` (trace files), ``router`` (routing policies),
``replica`` (the continuous-batching scheduler), ``timing`` (iteration times, closed-form decode
runs), ``engine`` (the simpy simulation), ``disaggregated`` (prefill and decode replica groups
with the KV transfer between them), ``failures`` (replica failures injected into a run, and the
per-replica failure rate and recovery time the projection shares), ``metrics`` (DataFrames,
summary, SLO, availability), ``api``
(``serve``), ``curve`` (latency curves, capacity, caching), ``replica_cost`` (one replica's
cost-model figures and $/1M tokens, for ``fleetsim cost``). Speculative decoding's model is
``simulator.perf.speculative``; the timer prices it.

May import ``common``, ``catalog``, ``perf``, ``scenario`` and ``economics``; not ``training``.
"""

from __future__ import annotations

from simulator.inference.api import ServeResult, serve
from simulator.inference.curve import LatencyCurve, deployment_curve, latency_curve
from simulator.inference.trace import Trace, parse_trace, read_trace

__all__ = [
    "LatencyCurve",
    "ServeResult",
    "Trace",
    "deployment_curve",
    "latency_curve",
    "parse_trace",
    "read_trace",
    "serve",
]
