"""Derived workloads: the calls a pipeline stage with a ``deployment`` sends to its model.

A stage backed by a deployment (a guardrail classifier such as Llama Guard 3 8B on some pool)
uses GPU time there. Rather than a second costing path, the validated scenario carries one
workload per such stage, named ``<workload>/<stage>`` (a '/' no written name may contain, so it
never clashes and is known as derived), which the projection sizes, serves and costs like any
other workload:

- traffic: the parent's, times the share of its requests the stage runs on (before the model:
  of those past the response cache; after it: of those that reached the model, counted as
  offered to it: a simplification, requests the plan leaves unserved are not taken out); a
  concurrent-users parent gives that share of its users with the parent's think time (a
  simplification: their rate is solved against the classifier's response time, not the whole
  pipeline's);
- prompt: the parent's prompt (after the model: prompt + output, the answer is what is
  checked); output: ``output_tokens`` (default 1, a label);
- routed to the stage's deployment (a list: equal shares, or with the parent's origins, which it
  keeps with its routing, to the nearest region's), with a TTFT target of ``latency_budget_ms``
  (if given) at the parent's attainment target; no response cache, prefix cache, sessions or
  stages.

The derived workloads are added by :func:`with_derived_workloads` when a scenario is validated
and left out of its plain data (:func:`simulator.scenario.paths.scenario_data`), so plans and
sampled inputs that change the parent re-derive them.
"""

from __future__ import annotations

import numpy as np

from simulator.scenario.distributions import Empirical, Fixed, sample_token_counts
from simulator.scenario.schema import Route, Scenario, Slo, Workload
from simulator.scenario.stages import AFTER_MODEL, BEFORE_MODEL, Stage, flows, model_share

SEPARATOR = "/"
#: Draws of prompt + output tokens that stand for an after-model stage's prompt distribution.
SUM_SAMPLES = 4096


def derived_name(workload: str, stage: str) -> str:
    return f"{workload}{SEPARATOR}{stage}"


def is_derived(name: str) -> bool:
    """Whether a workload name is a stage's derived workload."""
    return SEPARATOR in name


def stage_of(name: str) -> tuple[str, str] | None:
    """(parent workload, stage) of a derived workload's name; None for a written workload."""
    if not is_derived(name):
        return None
    parent, stage = name.split(SEPARATOR, 1)
    return parent, stage


def derived_workloads(scenario: Scenario) -> list[Workload]:
    """One workload per deployment-backed stage of the scenario's written workloads."""
    out = []
    for workload in scenario.workloads:
        if is_derived(workload.name):
            continue
        past_cache = 1.0 - workload.response_cache_hit_rate
        for flow in flows(workload):
            stage = flow.stage
            if stage.deployment is None:
                continue
            share = past_cache * flow.runs
            if stage.position == AFTER_MODEL:
                share *= model_share(workload)
            out.append(_derived(workload, stage, share))
    return out


def with_derived_workloads(scenario: Scenario) -> Scenario:
    """The scenario with its derived workloads (replacing any it has); itself when there are none."""
    derived = derived_workloads(scenario)
    if not derived and not any(is_derived(w.name) for w in scenario.workloads):
        return scenario
    written = [w for w in scenario.workloads if not is_derived(w.name)]
    out = scenario.model_copy(update={"workloads": written + derived})
    out._source = scenario._source
    return out


def _derived(parent: Workload, stage: Stage, share: float) -> Workload:
    traffic = parent.traffic
    if traffic.concurrent_users is not None:
        traffic = traffic.model_copy(update={"concurrent_users": traffic.concurrent_users * share,
                                             "think_s": parent.users_think_s})  # fmt: skip
    else:
        traffic = traffic.model_copy(update={"requests_per_second": traffic.requests_per_second * share})
    prompt = parent.prompt_tokens if stage.position == BEFORE_MODEL else _sum(parent.prompt_tokens, parent.output_tokens)
    slo = Slo(ttft_p95_ms=stage.latency_budget_ms, attainment_target=parent.slo.attainment_target) \
        if stage.latency_budget_ms is not None else Slo()  # fmt: skip
    workload = Workload(name="derived", traffic=traffic, prompt_tokens=prompt,
                        output_tokens=Fixed(value=stage.output_tokens), slo=slo,
                        routes=[Route(deployment=d, share=1.0 / len(stage.deployments)) for d in stage.deployments],
                        origins=parent.origins, routing=parent.routing)  # fmt: skip
    return workload.model_copy(update={"name": derived_name(parent.name, stage.name)})


def _sum(a, b):
    """The distribution of the sum of two token counts (fixed if both are; else resampled)."""
    if isinstance(a, Fixed) and isinstance(b, Fixed):
        return Fixed(value=a.value + b.value)
    rng = np.random.default_rng(20240917)
    total = sample_token_counts(a, rng, SUM_SAMPLES) + sample_token_counts(b, rng, SUM_SAMPLES)
    return Empirical(distribution="empirical", values=tuple(float(v) for v in total))
