"""The scenario file's schema: pydantic v2 models, the only way data enters fleetsim.

Every model is frozen and forbids unknown keys (typos must not pass silently). Units are in the
field names. Cross-references (catalog names, routes, pools, memory fit) are checked by
:func:`simulator.scenario.checks.cross_reference_problems`, which knows the catalog; this module checks
only what a single object can know about itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from simulator.catalog import GpuSpec, ModelSpec
from simulator.perf.engines import ENGINE_PRESETS, EnginePreset
from simulator.perf.memory import default_kv_dtype
from simulator.perf.profile import CalibrationProfile
from simulator.scenario.base import Name, Strict
from simulator.scenario.distributions import Distribution
from simulator.scenario.stages import Stage

#: Every date in a scenario: within what the hourly timeline (pandas timestamps) can hold.
Date = Annotated[dt.date, Field(ge=dt.date(1900, 1, 1), le=dt.date(2200, 12, 31))]


# --------------------------------------------------------------------------- horizon


class Horizon(Strict):
    """The period the projection covers, in calendar months from ``start``."""

    start: Date = Field(
        ge=dt.date(1990, 1, 1), le=dt.date(2200, 1, 1), description="First day simulated, YYYY-MM-DD (1990 to 2200)."
    )
    months: int = Field(gt=0, le=240, description="Length in calendar months.")

    @property
    def end(self) -> dt.date:
        """First day after the horizon."""
        return add_months(self.start, self.months)


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole calendar months (day clamped to the month's length)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    days_in_month = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return dt.date(year, month, min(day.day, days_in_month[month - 1]))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# --------------------------------------------------------------------------- schedules


class PriceStep(Strict):
    """From ``from`` on, GPU-hours cost ``usd_per_gpu_hour`` (e.g. a cheaper renewal)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    from_date: Date = Field(alias="from", description="Date the new price applies from, YYYY-MM-DD (00:00 UTC).")
    usd_per_gpu_hour: float = Field(ge=0, description="Price from that date on, $ per GPU-hour.")


class SizeStep(Strict):
    """From ``from`` on, the pool holds at most ``max_gpus``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    from_date: Date = Field(alias="from", description="Date the new size limit applies from, YYYY-MM-DD.")
    max_gpus: int = Field(
        ge=0, description="Most GPUs the pool holds from that date, GPUs (capped at the pool's max_gpus)."
    )


class ShareStep(Strict):
    """From ``from`` on, a route carries ``share``, reached by a linear ramp over ``ramp_days``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    from_date: Date = Field(alias="from", description="Date the ramp to the new share starts, YYYY-MM-DD.")
    share: float = Field(ge=0, le=1, description="Route's share of the workload's traffic once ramped, share 0-1.")
    ramp_days: float = Field(
        default=0, ge=0, description="Days of linear ramp from the previous share to this one (0: at once)."
    )


def _ordered(steps: list[Any], what: str) -> list[Any]:
    dates = [s.from_date for s in steps]
    if dates != sorted(dates) or len(set(dates)) != len(dates):
        raise ValueError(f"{what} steps must be in increasing date order")
    return steps


# --------------------------------------------------------------------------- pricing


class _PriceScheduled(Strict):
    """Pricing whose ``usd_per_gpu_hour`` may step by date (e.g. a cheaper renewal)."""

    price_schedule: list[PriceStep] = Field(
        default_factory=list, description="Price steps by date, each replacing usd_per_gpu_hour from its date."
    )

    @field_validator("price_schedule")
    @classmethod
    def _steps(cls, steps: list[PriceStep]) -> list[PriceStep]:
        return _ordered(steps, "price_schedule")


class OnDemandPricing(_PriceScheduled):
    """Pay for every GPU-hour held, in whole nodes, each rented for at least ``min_rental_hours``."""

    kind: Literal["on_demand"] = Field(description="Pricing kind 'on_demand': pay for every GPU-hour held.")
    usd_per_gpu_hour: float = Field(ge=0, description="Price of each GPU-hour held (in whole nodes), $ per GPU-hour.")
    min_rental_hours: float = Field(
        default=1, ge=1,
        description="Shortest rental of a node, hours (1 = hourly billing, 720 = monthly); a node rented "
        "for a peak is paid at least this long.",
    )  # fmt: skip


class ReservedPricing(_PriceScheduled):
    """``committed_gpus`` paid every hour of the term, used or not; more at the overflow price."""

    kind: Literal["reserved"] = Field(description="Pricing kind 'reserved': a commitment paid for its whole term.")
    committed_gpus: int = Field(ge=0, description="GPUs paid for every hour of the term, used or not, GPUs.")
    term_months: int = Field(gt=0, le=600, description="Length of the commitment from its start, months.")
    usd_per_gpu_hour: float = Field(ge=0, description="Price of committed GPU-hours, $ per GPU-hour.")
    overflow: Literal["on_demand", "none"] = Field(
        default="on_demand",
        description="Beyond the commitment: 'on_demand' (buy at the overflow price) or 'none' (no capacity).",
    )
    overflow_usd_per_gpu_hour: float | None = Field(
        default=None, ge=0, description="Overflow price, $ per GPU-hour; default: the catalog GPU's on-demand price."
    )
    start: Date | None = Field(
        default=None,
        description="Term start, YYYY-MM-DD; default: when the pricing takes effect (horizon start or refresh date).",
    )


class SpotPricing(_PriceScheduled):
    """Discounted capacity that the provider can take back (pre-emptions)."""

    kind: Literal["spot"] = Field(description="Pricing kind 'spot': discounted capacity the provider can pre-empt.")
    usd_per_gpu_hour: float = Field(ge=0, description="Spot price of each GPU-hour held, $ per GPU-hour.")
    preemptions_per_gpu_day: float = Field(
        default=0.05, ge=0,
        description="Pre-emptions per GPU per day; a replica or job is interrupted when any of its GPUs is.",
    )  # fmt: skip
    reload_gb_per_s: float = Field(
        default=2.0, gt=0,
        description="Weights load bandwidth per GPU after a pre-emption (object storage or a "
        "local cache; parallel streaming loaders reach 1-2 GB/s).",
    )  # fmt: skip
    startup_s: float = Field(
        default=90.0, ge=0,
        description="Seconds of node and engine start before the weights load (instance boot, container, "
        "CUDA graph capture); a minute or two for vLLM-class engines.",
    )  # fmt: skip


class Purchase(Strict):
    """A tranche of owned GPUs, in place from ``from``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    from_date: Date = Field(alias="from", description="Date the tranche is in place, YYYY-MM-DD.")
    gpus: int = Field(gt=0, description="GPUs bought in this tranche, GPUs.")


#: About the US cost of capital (Damodaran, cost of capital by sector, January 2025): the default
#: rate on owned capital and the default discount rate of the cash flow's NPV.
COST_OF_CAPITAL_PER_YEAR = 0.08


class OwnedPricing(Strict):
    """Bought hardware: straight-line capex over its life, power and an operations overhead."""

    kind: Literal["owned"] = Field(description="Pricing kind 'owned': bought hardware, depreciated over its life.")
    capex_usd_per_gpu: float = Field(
        ge=0, description="Purchase price, $ per GPU, depreciated straight-line over lifetime_years."
    )
    lifetime_years: float = Field(gt=0, description="Depreciation life of the GPUs, years.")
    power_usd_per_kwh: float = Field(
        default=0.10, ge=0, description="Electricity price, $ per kWh (GPU and host power, times the PUE)."
    )
    pue: float = Field(
        default=1.3, ge=1, description="Power usage effectiveness: facility power / IT power, ratio >= 1."
    )
    opex_fraction_per_year: float = Field(
        default=0.0, ge=0, description="Yearly operations cost, fraction of capex per year."
    )
    gpus: int | None = Field(
        default=None, gt=0,
        description="GPUs bought on day one; default: bought ahead of each year's peak (whole "
        "nodes, never sold), unless purchases are given.",
    )  # fmt: skip
    purchases: list[Purchase] = Field(
        default_factory=list, description="GPUs bought in tranches, by date (instead of gpus)."
    )
    overflow: Literal["on_demand", "none"] = Field(
        default="none",
        description="Beyond the owned GPUs: 'none' (no capacity) or 'on_demand' (buy at the overflow price).",
    )
    overflow_usd_per_gpu_hour: float | None = Field(
        default=None, ge=0, description="Overflow price, $ per GPU-hour; default: the catalog GPU's on-demand price."
    )
    # Total cost of ownership beyond the GPU: each is its own line item (see economics/pricing).
    host_power_w_per_gpu: float | None = Field(
        default=None, ge=0,
        description="Server power beyond the GPU, W per GPU, drawn while the GPUs are in place; "
        "default: the catalog GPU's (from the vendor's system datasheet, e.g. DGX H100 ~10.2 kW).",
    )  # fmt: skip
    colocation_usd_per_kw_month: float = Field(
        default=150.0, ge=0,
        description="Data-centre space, cooling and power delivery, $ per kW of IT load (GPU TDP + "
        "host) per month. Default: ~$150-185/kW-month wholesale colocation in North American "
        "primary markets (CBRE North America Data Center Trends, H2 2024); 0 for your own building.",
    )  # fmt: skip
    network_capex_usd_per_gpu: float | None = Field(
        default=None, ge=0,
        description="Cluster network (NICs, switches, optics), $ per GPU, depreciated with the GPU. "
        "Default: 10% of capex_usd_per_gpu (networking is roughly a tenth of an AI cluster's "
        "capital cost in published TCO models, e.g. SemiAnalysis).",
    )  # fmt: skip
    support_fraction_per_year: float = Field(
        default=0.05, ge=0,
        description="Hardware support and spares, fraction of capex per year. Default 5%: "
        "OEM 3-year support contracts run ~15% of the hardware price.",
    )  # fmt: skip
    staff_usd_per_year: float = Field(
        default=0.0, ge=0, description="Operations staff for this pool, $ per year (no default: your team)."
    )
    cost_of_capital_per_year: float = Field(
        default=COST_OF_CAPITAL_PER_YEAR, ge=0,
        description="Rate per year (0.08 = 8%) on the capital tied up (GPUs and network), charged on "
        "the average book value over the life (half the capex). Default 8%: about the US cost of capital "
        "(Damodaran, cost of capital by sector, January 2025).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_way_to_buy(self) -> OwnedPricing:
        if self.gpus is not None and self.purchases:
            raise ValueError("give gpus (all on day one) or purchases (tranches), not both")
        return self


Pricing = Annotated[
    OnDemandPricing | ReservedPricing | SpotPricing | OwnedPricing, Field(discriminator="kind")
]


class GpuRefresh(Strict):
    """From ``from`` on, the pool's GPUs are of another catalog type (a hardware refresh).

    The pool keeps its name, size limits, deployments and jobs; capacity curves, training speed,
    power and prices follow the new GPU. Owned GPUs retired at the refresh are sold at
    ``residual_usd_per_gpu``: the rest of their book value is written off on that day.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    from_date: Date = Field(alias="from", description="First day on the new GPUs, YYYY-MM-DD.")
    gpu: str = Field(description="Catalog GPU name of the new hardware.")
    pricing: Pricing | None = Field(
        default=None,
        description="How the new GPUs are bought; default: the terms in force before (an owned "
        "pool buys new GPUs at the same capex, a reserved commitment carries over).",
    )
    calibration: str | CalibrationProfile | None = Field(
        default=None, description="Profile of the new GPUs; default: the new GPU's bundled one."
    )
    residual_usd_per_gpu: float = Field(
        default=0.0,
        ge=0,
        description="Sale value of each retired owned GPU, $ per GPU (0: written off entirely).",
    )


class Pool(Strict):
    """GPU capacity of one kind and how it is bought."""

    name: Name
    gpu: str = Field(description="Catalog GPU name.")
    max_gpus: int = Field(gt=0, description="Most GPUs this pool can hold at once, GPUs.")
    pricing: Pricing = Field(description="How the GPUs are bought: on_demand, reserved, spot or owned (by kind).")
    provider: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="Who supplies the GPUs and bills for them (e.g. 'AWS', 'CoreWeave', 'our data centre'), "
        "shown as ProviderName in the FOCUS export; default: 'owned hardware' for owned pricing, else 'GPU cloud'.",
    )  # fmt: skip
    calibration: str | CalibrationProfile | None = Field(
        default=None, description="Calibration profile name or path; default: the GPU's."
    )
    region: str | None = Field(
        default=None,
        description="Name of the region (scenario regions) the pool's GPUs are in; its deployments serve "
        "from there. Default: no region (single-site scenarios).",
    )
    priority: Literal["inference", "training"] = Field(
        default="inference", description="Who gets GPUs first when the pool is short: 'inference' or 'training'."
    )
    max_gpus_schedule: list[SizeStep] = Field(
        default_factory=list, description="Pool size steps by date (never above max_gpus)."
    )
    gpus_per_node: int | None = Field(
        default=None, gt=0,
        description="GPUs per node, the unit capacity is rented and bought in; default: the "
        "catalog GPU's (8 for SXM/OAM baseboards, 1 for PCIe cards rented singly).",
    )  # fmt: skip

    refresh: list[GpuRefresh] = Field(
        default_factory=list, description="GPU type changes by date (hardware refresh)."
    )

    @field_validator("max_gpus_schedule")
    @classmethod
    def _steps(cls, steps: list[SizeStep]) -> list[SizeStep]:
        return _ordered(steps, "max_gpus_schedule")

    @field_validator("refresh")
    @classmethod
    def _refresh_steps(cls, steps: list[GpuRefresh]) -> list[GpuRefresh]:
        return _ordered(steps, "refresh")


# --------------------------------------------------------------------------- deployments

WeightDtype = Literal["fp32", "bf16", "fp8", "fp4", "int8", "int4"]


#: Unexpected interruptions per GPU-day, from the Llama 3 paper (Dubey et al. 2024, "The Llama 3
#: Herd of Models", Sec. 3.3.4): 419 in a 54-day snapshot of pre-training on 16,384 H100 GPUs ->
#: 419 / (54 x 16,384) = 4.74e-4 per GPU-day; 78% of them hardware (GPU, HBM, host, network).
#: The same order as the OPT-175B logbook (Zhang et al. 2022): ~6e-4 per GPU-day on A100s.
FAILURES_PER_GPU_DAY_LLAMA3 = 419 / (54 * 16_384)


class ServingFailures(Strict):
    """GPU and node failures of a deployment's replicas: each takes its replica out until a
    replacement is up, and the requests in flight on it are lost (retried on another replica,
    or failed). Renewal theory: the expected share of replicas down is r / (1/rate + r)."""

    per_gpu_day: float = Field(
        default=FAILURES_PER_GPU_DAY_LLAMA3, ge=0, le=10,
        description="Failures per GPU per day; a replica fails when any of its GPUs does. Default 4.74e-4: "
        "Llama 3's 419 interruptions in 54 days on 16,384 H100s (Dubey et al. 2024); 0 turns failures off.",
    )  # fmt: skip
    recovery_minutes: float | None = Field(
        default=None, gt=0, le=7 * 24 * 60,
        description="Minutes a failed replica serves nothing: a replacement's start and weights load. Default: "
        "90 s of node and engine start + the weights shard at 2 GB/s per GPU (as spot reloads).",
    )  # fmt: skip
    retry: bool = Field(
        default=True,
        description="Requests in flight on a failed replica are retried on another (true) or fail (false).",
    )


class Redundancy(Strict):
    """Capacity held beyond what the load needs, for failures: N + k, and spreading over zones."""

    spare_replicas: int = Field(
        default=0, ge=0, le=1000, description="Replicas held beyond the autoscaler's, whenever it serves (N + k)."
    )
    availability_target: float | None = Field(
        default=None, gt=0, lt=1,
        description="Hold the fewest spares k such that, with replicas failing independently, P(more than k "
        "down at once) <= 1 - target each hour (e.g. 0.999); added to spare_replicas. Default: none.",
    )  # fmt: skip
    zones: int = Field(
        default=1, ge=1, le=16,
        description="Availability zones the replicas are spread over evenly (1: one zone).",
    )
    survive_zone_loss: bool = Field(
        default=False,
        description="With zones > 1: hold enough replicas that losing the fullest zone leaves what the load "
        "needs (the smallest M with M - ceil(M / zones) >= N), before spare_replicas.",
    )


class Autoscaling(Strict):
    """Replicas follow peak demand / capacity-per-replica / target utilisation.

    Headroom is taken once: the capacity per replica is already the highest load that meets the
    SLO, so ``target_utilization`` (a fraction of that capacity) defaults to 1; a lower value is
    an extra, explicit margin. Peaks inside the hour are the workload's
    ``traffic.peak_to_mean_within_hour``.
    """

    min_replicas: int = Field(
        default=1, ge=0, description="Fewest replicas held even without demand (units of P + D when disaggregated)."
    )
    max_replicas: int = Field(
        default=64, ge=1, description="Most replicas the autoscaler asks for (units of P + D when disaggregated)."
    )
    target_utilization: float = Field(
        default=1.0, gt=0, le=1,
        description="Fraction 0-1 of the SLO capacity per replica the autoscaler fills (1: no margin "
        "beyond the SLO; the capacity already is the highest load meeting it).",
    )  # fmt: skip
    scale_up_delay_minutes: float = Field(
        default=10, ge=0, description="Minutes from asking for a replica to its serving (billed from the ask)."
    )
    scale_down_delay_minutes: float = Field(
        default=5, ge=0,
        description="Minutes a replica is kept after demand falls (hysteresis). Default: the "
        "Kubernetes HPA scale-down stabilisation window, 300 s.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _range(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas (={self.max_replicas}) must be >= min_replicas "
                f"(={self.min_replicas})"
            )
        return self


#: The default engine, whose preset gives the fields' defaults (other engines: see the validator).
_VLLM = ENGINE_PRESETS["vllm"]


class Speculative(Strict):
    """Speculative decoding on a deployment (simulator.perf.speculative): a draft proposes
    ``draft_tokens`` tokens per request, the target verifies them in one pass."""

    method: Literal["draft_model", "mtp"] = Field(
        default="draft_model",
        description="'draft_model': a small catalog model with the target's tokenizer, its own "
        "weights and KV cache on the replica; 'mtp': a multi-token-prediction / EAGLE-style head "
        "(one decoder layer of the target's shape sharing its embedding and LM head).",
    )
    draft_model: str | None = Field(
        default=None, description="Catalog model that drafts (method draft_model only)."
    )
    draft_tokens: int = Field(
        ge=1, le=16, description="Tokens drafted per request and iteration (k; vLLM's num_speculative_tokens)."
    )
    acceptance_rate: float = Field(
        ge=0, lt=1,
        description="Probability (0-1) that a drafted token is accepted (alpha of Leviathan et al. "
        "2023); measure it on your traffic (vLLM logs it as the draft acceptance rate). "
        "A workload may override it.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _draft(self) -> Speculative:
        if self.method == "draft_model" and self.draft_model is None:
            raise ValueError("method draft_model needs draft_model (a catalog model name)")
        if self.method == "mtp" and self.draft_model is not None:
            raise ValueError("method mtp drafts with the target's own head: leave draft_model out")
        return self


class Disaggregation(Strict):
    """Prefill and decode on separate replica groups (simulator.inference.disaggregated): a unit
    of ``prefill_replicas`` + ``decode_replicas`` replicas is what the autoscaler scales."""

    prefill_replicas: int = Field(default=1, ge=1, le=64, description="Prefill replicas per unit (P).")
    decode_replicas: int = Field(default=1, ge=1, le=64, description="Decode replicas per unit (D).")
    prefill_tensor_parallel: int | None = Field(
        default=None, gt=0, description="GPUs per prefill replica (default: the deployment's tensor_parallel)."
    )
    prefill_max_batched_tokens: int | None = Field(
        default=None, gt=0, description="Prefill replicas' token budget per iteration (default: the deployment's)."
    )
    kv_transfer_gb_per_s: float | None = Field(
        default=None, gt=0,
        description="Bandwidth the KV cache moves at from a prefill to a decode replica, GB/s "
        "(default: the GPU's internode_gb_per_s x the smaller group's GPUs per replica: every "
        "GPU's own NIC, as NIXL and Mooncake send rank to rank).",
    )  # fmt: skip
    kv_transfer_latency_ms: float = Field(
        default=0.0, ge=0, description="Fixed milliseconds per transfer (set-up, handshakes)."
    )


class Deployment(Strict):
    """A model served on a pool by replicas of ``tensor_parallel`` GPUs each."""

    name: Name
    pool: str = Field(description="Name of the pool whose GPUs serve it.")
    model: str = Field(description="Catalog model name.")
    dtype: WeightDtype = Field(default="bf16", description="Weight quantization: fp32, bf16, fp8, fp4, int8 or int4.")
    kv_cache_dtype: Literal["auto", "bf16", "fp8"] = Field(
        default="auto",
        description="KV-cache dtype: bf16, fp8 or 'auto' (fp8 when the weights are fp8 or fp4, else bf16).",
    )
    tensor_parallel: int = Field(
        default=1, gt=0,
        description="GPUs per replica (tensor-parallel degree; the decode replicas' when disaggregated).",
    )  # fmt: skip
    expert_parallel: int = Field(
        default=1, gt=0,
        description="MoE models: spread the routed experts over this many of the replica's "
        "GPUs (whole experts per GPU, tokens sent by all-to-all) instead of slicing every "
        "expert by tensor_parallel; must divide tensor_parallel and the expert count.",
    )  # fmt: skip
    engine: Literal["vllm", "sglang", "tensorrt-llm"] = Field(
        default="vllm",
        description="Serving engine (vllm, sglang or tensorrt-llm) whose scheduler defaults apply "
        "(admission policy, batch and token limits, memory fraction, KV block size, host overhead; "
        "simulator.perf.engines). The fields below override them.",
    )
    max_batch_size: int = Field(
        default=_VLLM.max_batch_size, gt=0, description="Running requests per replica (default: the engine's)."
    )
    max_batched_tokens: int = Field(
        default=_VLLM.max_batched_tokens, gt=0,
        description="Token budget per iteration (chunked prefill; default: the engine's).",
    )  # fmt: skip
    gpu_memory_utilization: float = Field(
        default=_VLLM.gpu_memory_fraction, gt=0, le=1,
        description="Memory share 0-1 for the engine (vLLM/SGLang: of the GPU; TensorRT-LLM: of "
        "what is free after weights, for the KV cache). Default: the engine's.",
    )  # fmt: skip
    kv_block_tokens: int = Field(
        default=_VLLM.kv_block_tokens, gt=0, description="KV-cache block size, tokens (default: the engine's)."
    )
    router: Literal["round_robin", "least_outstanding", "session_affinity"] = Field(
        default="least_outstanding",
        description="How requests pick a replica (round_robin, least_outstanding, session_affinity); "
        "session_affinity keeps a conversation's turns where its prefix is cached (the SGLang "
        "gateway's and vLLM router's cache-aware policy).",
    )
    autoscaling: Autoscaling = Field(
        default=Autoscaling(), description="How the replica count follows demand (bounds, target utilisation, delays)."
    )
    failures: ServingFailures = Field(
        default=ServingFailures(),
        description="GPU and node failures of its replicas (rate, recovery, retry); per_gpu_day: 0 turns them off.",
    )
    redundancy: Redundancy = Field(
        default=Redundancy(), description="Spare replicas held for failures: a fixed N + k, or from an availability target."
    )
    from_date: Date | None = Field(
        default=None, alias="from", description="First day it serves, YYYY-MM-DD (default: from the start)."
    )
    until: Date | None = Field(
        default=None, description="First day it no longer serves, YYYY-MM-DD (default: serves to the end)."
    )
    after_job: str | None = Field(
        default=None, description="Serves only once this training job's first run has finished."
    )
    adapters: int = Field(
        default=0, ge=0, description="LoRA adapters served on the base model (0: none)."
    )
    adapter_rank: int = Field(default=16, gt=0, description="LoRA rank r of the adapters.")
    adapter_modules: Literal["attention", "all_linear"] = Field(
        default="all_linear",
        description="Matrices each adapter adapts: q,k,v,o ('attention') or also gate,up,down.",
    )
    max_adapters_per_batch: int | None = Field(
        default=None,
        gt=0,
        description="Most distinct adapters in one batch (GPU adapter slots, vLLM's max_loras); "
        "default: all adapters resident, no limit.",
    )
    speculative: Speculative | None = Field(
        default=None, description="Speculative decoding (default: off, one token per iteration)."
    )
    disaggregation: Disaggregation | None = Field(
        default=None,
        description="Separate prefill and decode replica groups (default: co-located, each "
        "replica does both); replicas are then counted in units of P + D.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _engine_defaults(cls, data: Any) -> Any:
        """Fields the file leaves out take the engine preset's value."""
        if not isinstance(data, dict) or data.get("engine") in (None, "vllm"):
            return data
        preset = ENGINE_PRESETS.get(data["engine"])
        if preset is None:
            return data  # the Literal reports the unknown engine
        defaults = {"max_batch_size": preset.max_batch_size,
                    "max_batched_tokens": preset.max_batched_tokens,
                    "gpu_memory_utilization": preset.gpu_memory_fraction,
                    "kv_block_tokens": preset.kv_block_tokens}  # fmt: skip
        return {**defaults, **data}

    @property
    def preset(self) -> EnginePreset:
        """The engine's scheduler defaults (admission policy, memory semantics, overheads)."""
        return ENGINE_PRESETS[self.engine]

    @model_validator(mode="after")
    def _window(self) -> Deployment:
        if self.from_date and self.until and self.until <= self.from_date:
            raise ValueError(f"until (={self.until}) must be after from (={self.from_date})")
        return self

    @property
    def gpus_per_replica(self) -> int:
        """GPUs of one replica, or of one prefill + decode unit when disaggregated."""
        d = self.disaggregation
        if d is None:
            return self.tensor_parallel
        return d.prefill_replicas * (d.prefill_tensor_parallel or self.tensor_parallel) + d.decode_replicas * self.tensor_parallel

    @property
    def kv_dtype(self) -> WeightDtype:
        if self.kv_cache_dtype != "auto":
            return self.kv_cache_dtype
        return default_kv_dtype(self.dtype)  # type: ignore[return-value]


# --------------------------------------------------------------------------- workloads


class TrafficEvent(Strict):
    """A burst: traffic multiplied by ``multiplier`` from ``start`` for ``days``."""

    name: str = Field(default="event", description="Label of the event (for the reader; not used in the calculation).")
    start: Date = Field(description="First day of the event, YYYY-MM-DD (00:00 UTC).")
    days: float = Field(default=1, gt=0, description="Duration from the start, days (may be fractional).")
    multiplier: float = Field(gt=0, description="Factor on the traffic during the event (overlapping events multiply).")


class Traffic(Strict):
    """Load over time: base x diurnal x weekly x growth x events, where the base is a request
    rate (open loop) or a number of users active at once (closed loop).

    Users: each sends a request, waits for the answer, thinks ``think_s`` and sends the next,
    so the rate is users / (response time + think_s) (the response-time law of interactive
    systems, Denning & Buzen 1978), solved against the response time the plan delivers.
    """

    requests_per_second: float | None = Field(
        default=None, ge=0, le=1e6,
        description="Mean rate in the first month, req/s (at most a million); give this "
        "or concurrent_users.",
    )  # fmt: skip
    concurrent_users: float | None = Field(
        default=None, ge=0, le=1e9,
        description="Users active at once, mean over the first month (closed loop, instead of "
        "requests_per_second): each sends a request, reads the answer for think_s and sends the "
        "next. The diurnal, weekly, growth and event factors scale the users.",
    )  # fmt: skip
    think_s: float | None = Field(
        default=None, gt=0, le=86400,
        description="With concurrent_users: mean seconds from an answer to the user's next "
        "request (default, for conversations: the sessions' think_s).",
    )  # fmt: skip
    growth_per_month: float = Field(
        default=0.0, gt=-1, description="Compound monthly growth, fraction per month (0.05 = +5% a month)."
    )
    diurnal_peak_to_mean: float = Field(
        default=1.0, ge=1, le=24,
        description="Daily peak / daily mean, ratio >= 1 (at most 24: all of a day's traffic in one hour).",
    )  # fmt: skip
    peak_hour_utc: float = Field(
        default=15, ge=0, lt=24,
        description="Hour of the daily peak, hours UTC (0 to 24); a workload with origins peaks at each "
        "origin's peak_hour_local instead.",
    )  # fmt: skip
    weekend_factor: float = Field(default=1.0, ge=0, description="Weekend (Sat, Sun) rate / weekday rate, ratio.")
    arrival: Literal["poisson", "bursty"] = Field(
        default="poisson", description="Arrival process: 'poisson' or 'bursty' (gamma gaps with burstiness_cv)."
    )
    burstiness_cv: float = Field(
        default=2.0, gt=0, description="Coefficient of variation of the gaps (unitless) when arrival=bursty; 1 is Poisson-like."
    )
    events: list[TrafficEvent] = Field(
        default_factory=list, description="Bursts: traffic multiplied by a factor for some days from a date."
    )
    peak_to_mean_within_hour: float = Field(
        default=1.0, ge=1,
        description="Busiest minutes' rate / the hour's mean, ratio >= 1; replicas are sized for the peak "
        "(latency is read at the hour's mean). The Azure LLM conversation trace (2023-11-16, used "
        "by Splitwise) shows 1.32 over 5-minute windows, 1.52 over 1-minute ones; Poisson "
        "arrivals at its rate alone give about 1.1.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _rate_or_users(self) -> Traffic:
        if (self.requests_per_second is None) == (self.concurrent_users is None):
            raise ValueError("give either requests_per_second (open loop) or concurrent_users "
                             "(closed loop, with think_s)")  # fmt: skip
        if self.think_s is not None and self.concurrent_users is None:
            raise ValueError("think_s goes with concurrent_users (a request rate needs no think time)")
        return self


class Slo(Strict):
    """Latency targets; a request meets the SLO when it meets every target given."""

    ttft_p95_ms: float | None = Field(
        default=None, gt=0,
        description="Time-to-first-token target per request, ms (queueing included; none: no target).",
    )  # fmt: skip
    tpot_p95_ms: float | None = Field(
        default=None, gt=0,
        description="Time-per-output-token target per request, ms (after the first; none: no target).",
    )  # fmt: skip
    e2e_p95_ms: float | None = Field(
        default=None, gt=0, description="End-to-end target per request, arrival to last token, ms (none: no target)."
    )
    attainment_target: float = Field(
        default=0.95, gt=0, le=1, description="Share of requests that must meet the targets, share 0-1."
    )


class Route(Strict):
    """Share of a workload's traffic sent to a deployment; ``schedule`` changes it over time.

    While a route's deployment is not serving (before ``from``/``after_job``, after ``until``),
    its share goes to the workload's other serving routes in proportion to theirs; routes with
    share 0 act as fallbacks when no serving route has a share.
    """

    deployment: str = Field(description="Name of the deployment this traffic goes to.")
    share: float = Field(ge=0, le=1, description="Share of the workload's traffic at the start (before any step), 0-1.")
    schedule: list[ShareStep] = Field(
        default_factory=list, description="Share changes by date, each reached by a linear ramp."
    )

    @field_validator("schedule")
    @classmethod
    def _steps(cls, steps: list[ShareStep]) -> list[ShareStep]:
        return _ordered(steps, "schedule")


#: Most turns a conversation may have on average (a session's turns are simulated one by one,
#: and with a few hundred tokens a turn its history passes every catalog model's context well
#: before this many).
MAX_MEAN_TURNS = 1000


class Sessions(Strict):
    """Multi-turn conversations: each request is a turn whose prompt is the system prompt, the
    whole history (earlier prompts and answers) and the turn's new tokens (``prompt_tokens``).
    The prefix cache's hit rate then comes out of the simulation (each replica keeps the KV of
    finished turns in its free cache blocks, least recently used evicted first) instead of
    ``prefix_cache_hit_rate``."""

    turns: Distribution = Field(description="Turns per conversation (drawn like token counts: whole, >= 1; mean at most 1000).")
    think_s: float = Field(
        gt=0, le=86400,
        description="Mean seconds from one turn's arrival to the next (exponential; the user "
        "reads the answer and types). Turns are spaced from arrivals, not from answers: a "
        "simplification that holds while answers take less than the think time.",
    )  # fmt: skip
    system_prompt_tokens: int = Field(
        default=0, ge=0, description="Tokens of a system prompt every conversation of the workload starts with."
    )

    @field_validator("turns")
    @classmethod
    def _turns_bounded(cls, turns: Distribution) -> Distribution:
        if turns.mean > MAX_MEAN_TURNS:
            raise ValueError(f"mean turns per conversation {turns.mean:g} is above {MAX_MEAN_TURNS}: every turn "
                             "carries the whole history, which passes any model's context long before that")  # fmt: skip
        return turns


class Retrieval(Strict):
    """A retrieval stage (vector search, re-ranking) that runs before the model.

    Its latency adds to each request's TTFT and E2E; its passages add ``retrieved_tokens`` to
    the prompt; it costs ``usd_per_hour`` for every hour the workload is served plus
    ``usd_per_thousand_queries`` per 1,000 requests that reach it (response-cache hits do not).
    """

    latency_ms: Distribution = Field(description="Retrieval latency per request, ms.")
    retrieved_tokens: int = Field(default=0, ge=0, description="Tokens added to each prompt.")
    usd_per_hour: float = Field(
        default=0.0, ge=0,
        description="Cost of the stage while the workload is served, $ per hour (CPU instances, vector DB).",
    )  # fmt: skip
    usd_per_thousand_queries: float = Field(
        default=0.0, ge=0, description="Cost of queries, $ per 1,000 requests reaching retrieval."
    )


class ApiBaseline(Strict):
    """The buy-instead price of a hosted API: a bundled public list price by name
    (``provider``, see ``fleetsim catalog apis``) or explicit prices per 1M tokens."""

    provider: str | None = Field(
        default=None, description="Name of a bundled API price (simulator/catalog/api_prices.yaml)."
    )
    usd_per_million_input_tokens: float | None = Field(
        default=None, ge=0, description="API price of prompt (input) tokens, $ per million tokens."
    )
    usd_per_million_output_tokens: float | None = Field(
        default=None, ge=0, description="API price of output tokens, $ per million tokens."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ApiBaseline:
        explicit = (self.usd_per_million_input_tokens, self.usd_per_million_output_tokens)
        if self.provider is not None and any(v is not None for v in explicit):
            raise ValueError("give either provider or the two usd_per_million_* prices, not both")
        if self.provider is None and any(v is None for v in explicit):
            raise ValueError("give provider, or both usd_per_million_input_tokens and "
                             "usd_per_million_output_tokens")  # fmt: skip
        return self


class TrafficOrigin(Strict):
    """Share of a workload's users in one region, with that region's daily peak (the sun's)."""

    region: str = Field(description="Name of the region (scenario regions) the users are in.")
    share: float = Field(ge=0, le=1, description="Share of the workload's requests that come from there, 0-1.")
    peak_hour_local: float = Field(
        default=15, ge=0, lt=24,
        description="Hour of the daily peak in the region's local time (standard time), hours 0-24; "
        "default 15, like traffic.peak_hour_utc for a single site.",
    )  # fmt: skip


class RegionRouting(Strict):
    """How a workload's requests find a region: the nearest serving one, by round-trip time.

    Traffic from an origin goes to the workload's deployments in the nearest region that serves
    it (its own when it has one); route shares split it among the deployments of one region.
    Served in another region, a request's TTFT and end-to-end latency carry the round trip.
    """

    policy: Literal["nearest", "spill_over"] = Field(
        default="nearest",
        description="'nearest': each origin to its nearest serving region; 'spill_over': as nearest, and "
        "what that region cannot hold at its limits (max replicas, pool size) goes on to the next nearest.",
    )  # fmt: skip
    failover: bool = Field(
        default=True,
        description="While a region is down, its traffic goes to the nearest region up (false: it is unserved).",
    )
    reserve_for_region_loss: bool = Field(
        default=False,
        description="Hold, every hour, the replicas the surviving regions would need if any one region "
        "went down (no scale-up delay at an outage); their cost is shown as redundancy.",
    )


class Region(Strict):
    """A place pools live in and users come from: its time zone and round trips to the others."""

    name: Name
    utc_offset_hours: float = Field(
        ge=-12, le=14, description="Local standard time minus UTC, hours (daylight saving is not modelled)."
    )
    rtt_ms: dict[str, float] = Field(
        default_factory=dict,
        description="Network round trip to other regions by name, ms (give each pair once, on either side). "
        "AWS public figures: us-east-1 to eu-west-1 about 80 ms, to ap-northeast-1 about 145 ms.",
    )

    @field_validator("rtt_ms")
    @classmethod
    def _positive(cls, rtt: dict[str, float]) -> dict[str, float]:
        for other, ms in rtt.items():
            if not ms >= 0:
                raise ValueError(f"rtt_ms.{other}: a round trip is >= 0 ms (got {ms!r})")
        return rtt


class RegionOutage(Strict):
    """A region down for some hours: its deployments serve nothing, its traffic fails over."""

    name: str = Field(default="outage", description="Label of the outage (for the reader).")
    region: str = Field(description="Name of the region that goes down.")
    start: Date = Field(description="Day the outage starts, YYYY-MM-DD.")
    start_hour_utc: float = Field(default=0, ge=0, lt=24, description="Hour of that day it starts, hours UTC.")
    hours: float = Field(gt=0, le=24 * 366, description="How long the region is down, hours.")


class Workload(Strict):
    """Continuous inference traffic of one product or feature."""

    name: Name
    traffic: Traffic = Field(
        description="Load over time: a request rate or concurrent users, times diurnal, weekly, growth and "
        "event factors."
    )
    prompt_tokens: Distribution = Field(
        description="Prompt length per request, tokens (with sessions: the turn's new tokens); drawn whole, >= 1."
    )
    output_tokens: Distribution = Field(description="Output length per request, tokens; drawn whole, >= 1.")
    prefix_cache_hit_rate: float = Field(
        default=0.0, ge=0, le=1,
        description="Share 0-1 of each prompt's tokens served from the prefix cache (the last one is always computed).",
    )  # fmt: skip
    response_cache_hit_rate: float = Field(
        default=0.0, ge=0, lt=1,
        description="Share 0-1 (below 1) of requests answered by a response cache, never reaching the GPUs.",
    )  # fmt: skip
    speculative_acceptance_rate: float | None = Field(
        default=None, ge=0, lt=1,
        description="Draft acceptance rate (probability 0-1) on this workload's traffic, for deployments that "
        "decode speculatively (default: the deployment's acceptance_rate).",
    )  # fmt: skip
    slo: Slo = Field(default=Slo(), description="Latency targets its requests must meet (default: no latency targets).")
    routes: list[Route] = Field(
        min_length=1, description="Deployments that serve it and their shares of its traffic (at least one)."
    )
    adapters: int = Field(
        default=0,
        ge=0,
        description="Distinct LoRA adapters its requests address (0: the base model).",
    )
    adapter_zipf_exponent: float = Field(
        default=0.0,
        ge=0,
        description="Popularity of adapter k (1-based) is proportional to k^-s; 0 = uniform.",
    )
    api_baseline: ApiBaseline | None = Field(
        default=None, description="This workload's buy-instead API price (default: the scenario's)."
    )
    retrieval: Retrieval | None = Field(
        default=None, description="Retrieval stage before the model (RAG); default none."
    )
    stages: list[Stage] = Field(
        default_factory=list,
        description="Pipeline stages before and after the model, in order (retrieval, moderation, tool calls; "
        "see simulator/scenario/stages.py); retrieval: runs before them. Default: none.",
    )  # fmt: skip
    sessions: Sessions | None = Field(
        default=None,
        description="Requests are turns of conversations with a simulated prefix cache "
        "(default: independent requests, prefix_cache_hit_rate as given).",
    )
    origins: list[TrafficOrigin] = Field(
        default_factory=list,
        description="Regions its users are in, with their shares and local peak hours (default: one "
        "site, peaking at traffic.peak_hour_utc); needs regions on the pools of its routes.",
    )
    routing: RegionRouting = Field(
        default_factory=lambda: RegionRouting(),
        description="With origins: nearest region or spill-over, failover, and capacity held for a region's loss.",
    )

    @model_validator(mode="after")
    def _users_think(self) -> Workload:
        if self.traffic.concurrent_users is not None and self.users_think_s is None:
            raise ValueError("traffic.concurrent_users needs traffic.think_s (the users' mean "
                             "seconds between an answer and their next request)")  # fmt: skip
        return self

    @property
    def users_think_s(self) -> float | None:
        """Users' mean think time where the traffic is concurrent users: the traffic's, else
        the sessions'; None for a request rate."""
        if self.traffic.concurrent_users is None:
            return None
        if self.traffic.think_s is not None:
            return self.traffic.think_s
        return self.sessions.think_s if self.sessions is not None else None

    @model_validator(mode="after")
    def _sessions_or_fixed_hit_rate(self) -> Workload:
        if self.sessions is not None and self.prefix_cache_hit_rate > 0:
            raise ValueError("sessions simulate the prefix cache: leave prefix_cache_hit_rate out (it is the simple mode)")
        return self

    @model_validator(mode="after")
    def _token_counts(self) -> Workload:
        for field in ("prompt_tokens", "output_tokens"):
            values = getattr(getattr(self, field), "values", None)
            if values is not None and min(values) < 1:
                raise ValueError(f"{field}: token counts must be >= 1 (the column's smallest is {min(values):g})")
        return self


# --------------------------------------------------------------------------- training


class TrainingJob(Strict):
    """A one-off or periodic training run on a pool."""

    name: Name
    pool: str = Field(description="Name of the pool the job runs on.")
    model: str = Field(description="Catalog model name of the model trained.")
    tokens: float = Field(
        gt=0, le=1e16,
        description="Training tokens D per run, tokens (at most 1e16: the largest published runs are ~4e13).",
    )  # fmt: skip
    gpus: int = Field(gt=0, description="GPUs each run holds while it runs, GPUs.")
    start: Date = Field(description="Earliest start, YYYY-MM-DD (it may queue for GPUs); repeats count from it.")
    dtype: Literal["bf16", "fp8"] = Field(
        default="bf16", description="Compute precision: 'bf16' or 'fp8' (fp8 only where the GPU has FP8 units)."
    )
    sequence_length_tokens: int = Field(default=8192, gt=0, description="Length of each training sequence, tokens.")
    mfu: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Model FLOPs utilisation, fraction of peak 0-1; default: computed from the layout "
        "(simulator.perf.training), or the profile's training_mfu where it sets one.",
    )
    tensor_parallel: int | None = Field(
        default=None, gt=0, description="Tensor-parallel degree, GPUs; default: the layout rule."
    )
    pipeline_parallel: int | None = Field(
        default=None, gt=0, description="Pipeline-parallel degree (stages); default: the layout rule."
    )
    context_parallel: int | None = Field(
        default=None, gt=0, description="Context-parallel degree (GPUs splitting each sequence); default: the layout rule."
    )
    expert_parallel: int | None = Field(
        default=None, gt=0, description="Expert-parallel degree, GPUs (MoE models); default: the layout rule."
    )
    virtual_pipeline_stages: int | None = Field(
        default=None, gt=0, description="Interleaved 1F1B stages per GPU; default: one layer each."
    )
    micro_batch_sequences: int = Field(default=1, gt=0, description="Sequences per micro-batch.")
    global_batch_tokens: float | None = Field(
        default=None,
        gt=0,
        description="Tokens per optimizer step; default: DeepSeek LLM's compute-optimal "
        "batch size 0.292 x C^0.3271 for the run's C FLOPs.",
    )
    activation_recompute: Literal["selective", "full"] | None = Field(
        default=None,
        description="Activation recomputation, 'selective' or 'full'; default: selective where it fits in memory, "
        "else full.",
    )
    data_parallel_sharding: Literal["optimizer", "gradients", "full"] | None = Field(
        default=None,
        description="'optimizer': ZeRO-1 / distributed optimizer; 'gradients': ZeRO-2 "
        "(gradients sharded too); 'full': FSDP / ZeRO-3 (weights too). Default: the fastest "
        "that fits.",
    )
    overlap_expert_communication: bool = Field(
        default=False,
        description="Overlap the MoE all-to-all with compute (DeepSeek-V3's DualPipe).",
    )
    checkpoint_interval_hours: float | None = Field(
        default=None,
        gt=0,
        description="Hours between checkpoints; default: the Young-Daly optimum for the job's interruption "
        "rate and checkpoint time.",
    )
    checkpoint_minutes: float | None = Field(
        default=None,
        ge=0,
        description="Minutes to write one checkpoint; default: weights and optimizer state (14 bytes per "
        "parameter) over checkpoint_storage_gb_per_s_per_gpu x GPUs.",
    )
    checkpoint_storage_gb_per_s_per_gpu: float = Field(
        default=0.122,
        gt=0,
        description="Storage write bandwidth per GPU of the job, GB/s (default: Llama 3's "
        "2 TB/s sustained Tectonic throughput for 16,384 GPUs).",
    )
    failures_per_gpu_day: float | None = Field(
        default=None, ge=0,
        description="Failures per GPU per day (spot pre-emptions add to them); default: published large-run rates.",
    )  # fmt: skip
    restart_minutes: float = Field(
        default=10.0,
        ge=0,
        description="Minutes of relaunch, collective set-up and checkpoint load after an interruption "
        "(default: an estimate; see simulator.training.plan).",
    )
    repeat_every_months: int | None = Field(
        default=None, gt=0, le=600,
        description="Period of a recurring job, months from start; each run is due by the next (default: one-off).",
    )  # fmt: skip
    repeat_until: Date | None = Field(
        default=None,
        description="Last date a recurrence may start, YYYY-MM-DD (inclusive; default: to the horizon end).",
    )
    priority: int = Field(default=0, description="Higher runs first among queued jobs.")
    deadline: Date | None = Field(
        default=None, description="Date the first run should finish by, YYYY-MM-DD; a miss is reported, not prevented."
    )
    method: Literal["full", "lora"] = Field(
        default="full",
        description="'full': all weights trained (6 N D); 'lora': frozen base + LoRA adapters "
        "on every linear layer (about 4 N D, far less memory).",
    )
    lora_rank: int = Field(default=16, gt=0, description="LoRA rank r when method is 'lora'.")


# --------------------------------------------------------------------------- the file


class Plan(Strict):
    """A variant of the scenario: overrides by dotted path (list items by name)."""

    name: Name
    description: str = Field(default="", description="Free-text note on what the plan changes.")
    set: dict[str, Any] = Field(
        default_factory=dict, description="Overrides: dotted path (list items by name) -> value, applied to the base."
    )

    @field_validator("name")
    @classmethod
    def _not_base(cls, name: str) -> str:
        if name == "base":
            raise ValueError("'base' is the scenario as written; choose another plan name")
        return name


class CustomCatalog(Strict):
    """Scenario-local catalog entries, added to (or replacing) the bundled ones by name."""

    gpus: list[GpuSpec] = Field(
        default_factory=list, description="GPUs added to the bundled catalog, or replacing by name."
    )
    models: list[ModelSpec] = Field(
        default_factory=list, description="Models added to the bundled catalog, or replacing by name."
    )


class Currency(Strict):
    """The currency reports show money in; the scenario's and catalog's prices are US dollars,
    converted at ``usd_rate`` (a simplification: one rate for the whole horizon)."""

    code: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. USD, EUR, GBP, JPY.",
        examples=["EUR"],
    )  # fmt: skip
    usd_rate: float = Field(
        default=1.0, gt=0,
        description="Units of this currency per US dollar (e.g. 0.92 EUR per USD); every $ figure (the "
        "scenario's and the catalog's prices are US dollars) is multiplied by it.",
    )  # fmt: skip
    symbol: str | None = Field(
        default=None, max_length=4,
        description="Symbol in number formats; default: the code's usual one ($, EUR, GBP, JPY ...).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _usd_is_usd(self) -> Currency:
        if self.code == "USD" and self.usd_rate != 1.0:
            raise ValueError("currency: code USD needs usd_rate 1 (prices are US dollars)")
        return self

    @property
    def sign(self) -> str:
        """The symbol shown in number formats."""
        return self.symbol or CURRENCY_SYMBOLS.get(self.code, self.code)


#: Usual symbols of common currencies (others show their ISO code).
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹", "CHF": "CHF",
                    "CAD": "C$", "AUD": "A$", "KRW": "₩", "SEK": "kr", "SGD": "S$"}  # fmt: skip


class Scenario(Strict):
    """A whole scenario file."""

    #: The file it was read from and its path -> line map, so that problems found later (a
    #: plan's overrides) can name FILE:LINE; not part of the data.
    _source: tuple[str, dict[tuple[str | int, ...], int]] | None = PrivateAttr(default=None)

    name: str = Field(description="Name of the scenario, shown in reports and results.")
    description: str = Field(default="", description="Free-text description of the scenario.")
    seed: int = Field(
        default=0, ge=0, description="Seed of every random stream (simulations, sampled inputs, replications)."
    )
    horizon: Horizon = Field(description="Period projected: start date (YYYY-MM-DD) and length in months.")
    fiscal_year_start_month: int = Field(
        default=1, ge=1, le=12, description="Month the fiscal year starts, 1-12 (1: calendar years), for yearly totals."
    )
    discount_rate_per_year: float = Field(
        default=COST_OF_CAPITAL_PER_YEAR, ge=0, le=1,
        description="Yearly rate (0.08 = 8%) the cash flows are discounted at for each plan's net present "
        "value. Default 8%: about the US cost of capital (Damodaran, cost of capital by sector, January 2025), "
        "the same as owned pricing's cost_of_capital_per_year.",
    )  # fmt: skip
    currency: Currency = Field(
        default_factory=lambda: Currency(),
        description="Currency the workbook and the FOCUS export show money in (prices here are US dollars).",
    )
    calibration: str | CalibrationProfile | None = Field(
        default=None, description="Profile name or path for every pool without its own."
    )
    catalog: CustomCatalog = Field(
        default=CustomCatalog(), description="Scenario-local GPUs and models, added to (or replacing) the bundled ones."
    )
    pools: list[Pool] = Field(
        min_length=1, description="GPU pools: capacity of one GPU kind each and how it is bought."
    )
    regions: list[Region] = Field(
        default_factory=list, description="Places pools live in and users come from (default: none, one site)."
    )
    region_outages: list[RegionOutage] = Field(
        default_factory=list, description="Regions down for some hours (a failover drill), by date."
    )
    deployments: list[Deployment] = Field(default_factory=list, description="Models served on pools by replicas.")
    workloads: list[Workload] = Field(default_factory=list, description="Inference traffic, routed to deployments.")
    training_jobs: list[TrainingJob] = Field(
        default_factory=list, description="One-off or periodic training runs on pools."
    )
    api_baseline: ApiBaseline | None = Field(
        default=None, description="Buy-instead API price for workloads without their own (default: none)."
    )
    plans: list[Plan] = Field(
        default_factory=list, description="Named variants of the scenario, as overrides by dotted path."
    )
    uncertainty: dict[str, Distribution] = Field(
        default_factory=dict,
        description="Uncertain inputs by dotted path (e.g. workloads.chat.traffic."
        "growth_per_month); the field itself holds the distribution's mean. A number written "
        "inline as {distribution: ...} lands here. Replications draw from these.",
    )

    # lookups by name -----------------------------------------------------------------
    def pool(self, name: str) -> Pool:
        return _by_name(self.pools, name, "pool")

    def deployment(self, name: str) -> Deployment:
        return _by_name(self.deployments, name, "deployment")

    def workload(self, name: str) -> Workload:
        return _by_name(self.workloads, name, "workload")

    def plan(self, name: str) -> Plan:
        return _by_name(self.plans, name, "plan")

    def region(self, name: str) -> Region:
        return _by_name(self.regions, name, "region")

    def round_trip_ms(self, a: str, b: str) -> float | None:
        """Network round trip between two regions, ms (0 within one; None where not given)."""
        if a == b:
            return 0.0
        for here, there in ((a, b), (b, a)):
            ms = next((r.rtt_ms.get(there) for r in self.regions if r.name == here), None)
            if ms is not None:
                return ms
        return None


def _by_name(items: list[Any], name: str, kind: str) -> Any:
    for item in items:
        if item.name == name:
            return item
    known = ", ".join(i.name for i in items) or "none"
    raise KeyError(f"no {kind} named {name!r} (known: {known})")
