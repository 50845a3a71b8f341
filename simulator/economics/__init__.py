"""Layer 3, economics: what capacity costs.

Modules: ``pricing`` (on-demand, reserved, spot and owned pricing as hourly line items),
``refresh`` (GPU eras of a pool
refreshed in place, the scenario as it stands on a day, write-offs of retired owned GPUs),
``retrieval`` (a workload's retrieval stage: its latency, tokens and billed lines).

May import ``common``, ``catalog``, ``perf`` and ``scenario``.
"""
