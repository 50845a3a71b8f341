"""Pipeline stages of a workload: what runs before and after the model (``Workload.stages``).

A request meets the response cache first (a hit is answered at once and runs no stage), then
the ``before_model`` stages in the order written, then the model, then the ``after_model``
stages in order. Each stage runs on a share of the requests that reach it (``applies_share``,
drawn per request), takes ``latency_ms`` on them, may add prompt tokens (retrieved passages)
and may block a share of the requests it runs on (``block_share``, a guardrail's veto): blocked
before the model, a request never reaches the GPUs and is answered by a refusal; blocked after,
the GPU work was done and its answer is withheld. A stage costs ``usd_per_hour`` while the
workload is served and ``usd_per_thousand_calls`` per 1,000 requests it runs on; with
``deployment`` it is a small model (a classifier such as Llama Guard 3 8B) whose requests are
served by that deployment: the scenario then carries a derived workload
``<workload>/<stage>`` for it (:mod:`simulator.scenario.derived`), costed like any workload.

``retrieval:`` is one ``before_model`` stage named ``retrieval`` of kind ``retrieval``
(:func:`pipeline` puts it first): a scenario written either way gives the same results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from simulator.scenario.base import Name, Strict
from simulator.scenario.distributions import Distribution

STAGE_KINDS = ("retrieval", "moderation", "tool", "custom")
StageKind = Literal["retrieval", "moderation", "tool", "custom"]
BEFORE_MODEL, AFTER_MODEL = "before_model", "after_model"
#: The name ``retrieval:`` stands for as a stage.
RETRIEVAL_STAGE = "retrieval"


class Stage(Strict):
    """One stage of a workload's pipeline, before or after the model.

    Its latency adds to TTFT and E2E (before the model) or to E2E only (after it: a simplification,
    output moderation is taken to run on the whole answer, not alongside the stream).
    """

    name: Name = Field(description="Name of the stage, unique within the workload (its lines are billed as '<name>:<workload>').")
    kind: StageKind = Field(
        default="custom", description="What it is: 'retrieval', 'moderation' (guardrail), 'tool' (tool call) or 'custom'."
    )
    position: Literal["before_model", "after_model"] = Field(
        default="before_model", description="Where it runs: 'before_model' or 'after_model'."
    )
    latency_ms: Distribution = Field(
        description="Time the stage adds to each request it runs on, ms (>= 0; negative draws of a normal count as 0)."
    )
    applies_share: float = Field(
        default=1.0, ge=0, le=1, description="Share 0-1 of the requests reaching the stage that it runs on (drawn per request)."
    )
    added_prompt_tokens: int = Field(
        default=0, ge=0, description="Tokens it adds to the prompt of each request it runs on (retrieved passages; before_model only)."
    )
    block_share: float = Field(
        default=0.0, ge=0, lt=1,
        description="Share 0-1 (below 1) of the requests it runs on that it blocks: before the model they never "
        "reach the GPUs (answered by a refusal); after it the GPU work is done and the answer withheld.",
    )  # fmt: skip
    usd_per_hour: float = Field(
        default=0.0, ge=0, description="Cost of the stage while the workload is served, $ per hour (instances, licences)."
    )
    usd_per_thousand_calls: float = Field(
        default=0.0, ge=0, description="Cost per 1,000 requests the stage runs on, $ (a hosted API's price)."
    )
    deployment: str | list[str] | None = Field(
        default=None,
        description="Deployment (a small model, e.g. a safety classifier) whose GPU time the stage uses: its "
        "requests are served there as the workload '<workload>/<stage>' (default: none, no GPU time). A list "
        "shares them equally, or, for a workload with origins, by region like the workload (one per region).",
    )  # fmt: skip

    @property
    def deployments(self) -> list[str]:
        """The deployments the stage's calls go to (none without one)."""
        if self.deployment is None:
            return []
        return [self.deployment] if isinstance(self.deployment, str) else list(self.deployment)
    output_tokens: int = Field(
        default=1, ge=1, description="With deployment: tokens the stage's model emits per call (a classifier: its label)."
    )
    latency_budget_ms: float | None = Field(
        default=None, gt=0, description="With deployment: TTFT target its calls are sized to meet, ms (default: no target)."
    )

    @field_validator("latency_ms")
    @classmethod
    def _not_negative(cls, latency: Any) -> Any:
        lowest = _lowest(latency)
        if lowest is not None:
            raise ValueError(f"a stage's latency is >= 0 ms, but this distribution's {lowest[1]} is {lowest[0]:g} ms")
        return latency

    @model_validator(mode="after")
    def _fields_fit_the_position(self) -> Stage:
        if self.position == AFTER_MODEL and self.added_prompt_tokens:
            raise ValueError("added_prompt_tokens: only a before_model stage adds to the model's prompt")
        given = [name for name, default in (("output_tokens", 1), ("latency_budget_ms", None))
                 if getattr(self, name) != default]  # fmt: skip
        if self.deployment is None and given:
            raise ValueError(f"{', '.join(sorted(given))}: only a stage with a deployment has calls of its own to shape")
        return self


def _lowest(latency: Any) -> tuple[float, str] | None:
    """The smallest value a latency distribution gives, as (value, what) where negative, else
    None (an unbounded normal is judged by its mean; its negative draws count as 0)."""
    kind = latency.distribution
    if kind == "fixed":
        return (latency.value, "value") if latency.value < 0 else None
    if kind == "uniform":
        return (latency.low, "low") if latency.low < 0 else None
    if kind == "normal":
        return (latency.mean, "mean") if latency.mean < 0 else None
    if kind == "empirical" and latency.values:
        low = min(latency.values)
        return (low, "smallest value") if low < 0 else None
    return None


def retrieval_as_stage(retrieval: Any) -> Stage:
    """``retrieval:`` as the stage it stands for: before the model, on every request."""
    return Stage(name=RETRIEVAL_STAGE, kind="retrieval", position=BEFORE_MODEL, latency_ms=retrieval.latency_ms,
                 added_prompt_tokens=retrieval.retrieved_tokens, usd_per_hour=retrieval.usd_per_hour,
                 usd_per_thousand_calls=retrieval.usd_per_thousand_queries)  # fmt: skip


def pipeline(workload: Any) -> tuple[Stage, ...]:
    """Every stage of a workload in order: ``retrieval:`` (if given) first, then ``stages:``."""
    stages = tuple(getattr(workload, "stages", ()) or ())
    if workload.retrieval is None:
        return stages
    return (retrieval_as_stage(workload.retrieval), *stages)


def before_model(workload: Any) -> tuple[Stage, ...]:
    return tuple(s for s in pipeline(workload) if s.position == BEFORE_MODEL)


def after_model(workload: Any) -> tuple[Stage, ...]:
    return tuple(s for s in pipeline(workload) if s.position == AFTER_MODEL)


@dataclass(frozen=True)
class Flow:
    """Where a stage sits in its workload's request flow (shares, not counts).

    Before the model ``runs`` is the share of the requests past the response cache that the
    stage runs on (those the earlier stages did not block, times its ``applies_share``); after
    the model, the share of the requests the model answered (those the earlier after-model
    stages did not block, times its ``applies_share``). ``blocks`` = ``runs`` x ``block_share``.
    """

    stage: Stage
    runs: float

    @property
    def blocks(self) -> float:
        return self.runs * self.stage.block_share


def flows(workload: Any) -> list[Flow]:
    """Each stage of the pipeline with its share of the flow (see :class:`Flow`), in order."""
    out, reach = [], {BEFORE_MODEL: 1.0, AFTER_MODEL: 1.0}
    for stage in pipeline(workload):
        flow = Flow(stage, reach[stage.position] * stage.applies_share)
        reach[stage.position] -= flow.blocks
        out.append(flow)
    return out


def model_share(workload: Any) -> float:
    """Share of the requests past the response cache that reach the model (not blocked before it)."""
    return 1.0 - sum(f.blocks for f in flows(workload) if f.stage.position == BEFORE_MODEL)


def blocks(workload: Any) -> bool:
    """Whether some stage of the workload may block requests."""
    return any(s.block_share > 0 for s in pipeline(workload))
