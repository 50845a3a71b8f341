"""A workload's pipeline stages (:mod:`simulator.scenario.stages`): their billed lines, names
in the results and the per-request draws the inference engine uses.

- **Billed lines.** Each stage bills two lines, inference category, entity kind = the stage's
  kind (``retrieval``, ``moderation``, ``tool``, ``custom``), entity = the workload, under the
  pseudo-pool ``<stage>:<workload>`` (no GPUs): ``<stage>_calls`` (retrieval stages:
  ``<stage>_queries``) = requests it runs on / 1,000 x ``usd_per_thousand_calls``, and
  ``<stage>_hours`` = hours in which the workload has a serving deployment x ``usd_per_hour``.
  ``retrieval:`` is the stage ``retrieval`` of kind retrieval, so it bills ``retrieval_queries``
  and ``retrieval_hours`` under ``retrieval:<workload>`` as it always did. A stage with a
  ``deployment`` also uses GPU time, billed to its derived workload ``<workload>/<stage>``
  (:mod:`simulator.scenario.derived`) on that deployment's pool.
- **Calls.** Before the model a stage runs on the requests routed to a serving deployment
  (served, or unserved for lack of capacity) that earlier stages did not block, times its
  ``applies_share``; response-cache hits and requests with no serving deployment call no stage.
  After the model it runs on the requests the model served that earlier after-model stages did
  not block, times its ``applies_share``.
- **Blocked requests.** A before-model stage blocks ``block_share`` of the requests it runs on
  (they never reach the model; the projection takes them out of the demand every hour, served
  or not); an after-model stage blocks that share of the answers (the GPU work was done). So
  arrived = served + failed + unserved + response-cache hits + blocked.
- **Draws** (:func:`sample_stages`). Per request and stage in order: whether it applies, its
  latency (negative draws of a normal count as 0) and whether it blocks. Latencies are drawn
  from the ``retrieval`` stream (n per stage, in order: the first stage draws what a retrieval
  stage always drew), the applies/blocks decisions from the ``stages`` stream, and only for
  shares strictly between 0 and 1, so a workload whose only stage is ``retrieval:`` draws
  exactly what it drew before stages existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.economics.pricing import LineItem
from simulator.scenario.stages import (
    AFTER_MODEL,
    BEFORE_MODEL,
    STAGE_KINDS,
    Stage,
    after_model,
    before_model,
    pipeline,
)

#: Entity kinds of the stages' billed lines in monthly tables (one per stage kind).
STAGE_ENTITY_KINDS = STAGE_KINDS

#: Separates stage and workload in a stage's pseudo-pool label (no pool name may contain it).
POOL_SEPARATOR = ":"


def stage_pool(workload: str, stage: str) -> str:
    """The pseudo-pool label a workload's stage bills under: ``<stage>:<workload>``."""
    return f"{stage}{POOL_SEPARATOR}{workload}"


def is_stage_pool(label: object) -> bool:
    """Whether a billing/hourly/monthly pool label is a pipeline stage's (not a GPU pool's)."""
    return POOL_SEPARATOR in str(label)


def pool_stage(label: str) -> tuple[str, str]:
    """(workload, stage) of a stage's pseudo-pool label."""
    stage, workload = str(label).split(POOL_SEPARATOR, 1)
    return workload, stage


def call_noun(stage: Stage) -> str:
    """What one call of the stage is called in line items and the summary."""
    return "queries" if stage.kind == "retrieval" else "calls"


def stage_price_key(stage: Stage, field: str) -> str | None:
    """The billed price key a stage's price field sets (None for other fields)."""
    if field == "usd_per_thousand_calls":
        return f"usd_per_thousand_{call_noun(stage)}"
    return "usd_per_hour" if field == "usd_per_hour" else None


def find_stage(scenario, workload: str, stage: str) -> Stage | None:
    """A workload's stage by name (``retrieval`` for ``retrieval:``); None if there is none."""
    found = next((w for w in scenario.workloads if w.name == workload), None)
    return next((s for s in pipeline(found) if s.name == stage), None) if found is not None else None


def pool_stage_of(scenario, label: str) -> Stage | None:
    """The stage behind a pseudo-pool label ``<stage>:<workload>`` (None if none)."""
    if not is_stage_pool(label):
        return None
    workload, stage = pool_stage(label)
    return find_stage(scenario, workload, stage)


def stage_line_items(stage: Stage, calls: np.ndarray, hours: np.ndarray) -> list[LineItem]:
    """The hourly billed lines of a stage: thousands of calls, and hours served."""
    zero = np.zeros_like(calls, dtype=float)
    noun = call_noun(stage)
    return [
        LineItem(f"{stage.name}_{noun}", f"1k {noun}", f"usd_per_thousand_{noun}",
                 float(stage.usd_per_thousand_calls), calls / 1e3, zero, zero),
        LineItem(f"{stage.name}_hours", "hour", "usd_per_hour", float(stage.usd_per_hour),
                 np.asarray(hours, dtype=float), zero, zero),
    ]  # fmt: skip


def added_tokens_mean(workload) -> float:
    """Mean tokens the before-model stages add to the prompt of a request that reaches the
    model: each stage's tokens x the chance it ran on a request it did not block,
    a(1 - b) / (1 - ab) (stages decide independently)."""
    return float(sum(s.added_prompt_tokens * _ran_given_passed(s) for s in before_model(workload)))


def _ran_given_passed(stage: Stage) -> float:
    a, b = stage.applies_share, stage.block_share
    return a * (1 - b) / (1 - a * b)


def model_bound(workload):
    """The workload as the requests that reach its model see it (for latency curves): no
    response-cache hits, and before-model stages that block nothing but run on the share of
    the passed requests they ran on (the same latency and token mix at the model)."""
    update: dict = {"response_cache_hit_rate": 0.0}
    if any(s.block_share > 0 and s.position == BEFORE_MODEL for s in workload.stages):
        update["stages"] = [s.model_copy(update={"applies_share": _ran_given_passed(s), "block_share": 0.0})
                            if s.position == BEFORE_MODEL else s for s in workload.stages]  # fmt: skip
    return workload.model_copy(update=update)


@dataclass(frozen=True)
class StageDraws:
    """Per offered request: seconds in the stages before and after the model (None without
    such stages), prompt tokens the stages add (None: none), and whether a stage blocked it
    before the model (``blocked``) or its answer after (``blocked_after``; None: cannot)."""

    before_s: np.ndarray | None
    after_s: np.ndarray | None
    added_tokens: np.ndarray | None
    blocked: np.ndarray | None
    blocked_after: np.ndarray | None


def sample_stages(
    workload, latency_rng: np.random.Generator, share_rng: np.random.Generator, cache_hit: np.ndarray
) -> StageDraws:
    """Draw every stage for ``len(cache_hit)`` offered requests (response-cache hits run none;
    a request blocked before the model runs no later stage and reaches no after-model one)."""
    n = len(cache_hit)
    stages = [*before_model(workload), *after_model(workload)]  # draws: before-model stages first
    if not stages:
        return StageDraws(None, None, None, None, None)
    alive = {BEFORE_MODEL: ~np.asarray(cache_hit, dtype=bool)}
    seconds = {BEFORE_MODEL: np.zeros(n), AFTER_MODEL: np.zeros(n)}
    blocked = {BEFORE_MODEL: np.zeros(n, dtype=bool), AFTER_MODEL: np.zeros(n, dtype=bool)}
    added = np.zeros(n, dtype=np.int64)
    for stage in stages:
        if stage.position == AFTER_MODEL and AFTER_MODEL not in alive:  # what reached the model
            alive[AFTER_MODEL] = alive[BEFORE_MODEL].copy()
        latency = np.maximum(stage.latency_ms.sample(latency_rng, n), 0.0) / 1e3
        applies = _draw(share_rng, stage.applies_share, n)
        runs = alive[stage.position] & applies
        seconds[stage.position] += np.where(runs, latency, 0.0)
        if stage.added_prompt_tokens:
            added += np.where(applies, stage.added_prompt_tokens, 0)
        if stage.block_share > 0:
            stop = runs & _draw(share_rng, stage.block_share, n)
            blocked[stage.position] |= stop
            alive[stage.position] &= ~stop
    can_block = {p: any(s.block_share > 0 for s in stages if s.position == p) for p in (BEFORE_MODEL, AFTER_MODEL)}
    return StageDraws(
        before_s=seconds[BEFORE_MODEL] if before_model(workload) else None,
        after_s=seconds[AFTER_MODEL] if after_model(workload) else None,
        added_tokens=added if any(s.added_prompt_tokens for s in stages) else None,
        blocked=blocked[BEFORE_MODEL] if can_block[BEFORE_MODEL] else None,
        blocked_after=blocked[AFTER_MODEL] if can_block[AFTER_MODEL] else None,
    )


def _draw(rng: np.random.Generator, share: float, n: int) -> np.ndarray:
    """Bernoulli(share) per request; no draw for a share of 0 or 1."""
    if share >= 1:
        return np.ones(n, dtype=bool)
    if share <= 0:
        return np.zeros(n, dtype=bool)
    return rng.random(n) < share
