"""Layer 4, the fleet projection: the hourly lifetime projection of a scenario.

Modules: ``demand`` (requests per hour: base rate x diurnal x weekly x growth x bursts),
``autoscale`` (demand into replicas through the capacity curve), ``latency`` (latency
distributions per hour read off the curves and mixed, never averaged), ``projection`` (demand,
autoscaler, training on what serving leaves, GPU-hours, energy and cost from each pool's pricing).

May import ``common``, ``catalog``, ``perf``, ``scenario``, ``economics``, ``inference`` and
``training``.
"""
