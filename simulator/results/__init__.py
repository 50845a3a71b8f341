"""Layer 5, results: a run's tidy tables and summary, and runs compared.

Modules: ``result`` (:class:`~simulator.results.result.Result`: monthly, hourly, latency, jobs,
billing tables and ``summary``, built from a projection), ``runner`` (the main job as a function:
``run(scenario, plan, seed)``), ``compare`` (plans side by side, the cheapest meeting every SLO).

May import every layer below it: ``common``, ``catalog``, ``perf``, ``scenario``, ``economics``,
``inference``, ``training`` and ``fleet``.
"""
