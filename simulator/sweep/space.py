"""The default search space of ``fleetsim optimize``, derived from the scenario.

- GPU of each *serving* pool (a pool with deployments): its own GPU and a few catalog GPUs
  (:data:`DEFAULT_GPUS`) that have both catalog prices.
- Per deployment on that GPU: tensor-parallel degree in {1, 2, 4, 8} and weight dtype in
  {bf16, fp8 (where the GPU has FP8 units), int4} where the weights fit (the same rule as
  scenario validation), plus the deployment's own setting where it fits; a disaggregated
  deployment also tries the prefill:decode replicas of a unit in :data:`PREFILL_DECODE` (its
  own first), so the plan chosen shows its P:D ratio.
- Prices: where the pool keeps the GPU the scenario names, its own prices for that GPU (on-demand:
  its on-demand or overflow price; reserved: its committed price), else the catalog's
  ``usd_per_gpu_hour_on_demand`` / ``usd_per_gpu_hour_reserved``.
- Buying: on demand, or reserved for the whole horizon with ``committed_gpus`` at
  :data:`COMMIT_FRACTIONS` of the plan's peak (in whole nodes) and on-demand overflow; and the
  pool's pricing as written when it keeps its GPU (spot, owned...). The term is not searched:
  the catalog has one reserved price per GPU, not one per term length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from simulator.catalog import Catalog, GpuSpec
from simulator.perf.memory import usable_bytes, weight_bytes
from simulator.scenario.resolve import catalog_for
from simulator.scenario.schema import (
    Deployment,
    OnDemandPricing,
    Pool,
    Pricing,
    ReservedPricing,
    Scenario,
)

DEFAULT_GPUS = ("h100-sxm", "h200", "b200")
TP_DEGREES = (1, 2, 4, 8)
DTYPES = ("bf16", "fp8", "int4")
COMMIT_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
#: Prefill:decode replicas per unit tried for disaggregated deployments (DistServe's search
#: found 1:1 to 1:3 and 2:1 best across its workloads; longer prompts want more prefill).
PREFILL_DECODE = ((1, 1), (1, 2), (2, 1), (1, 3), (2, 3))


@dataclass(frozen=True)
class Option:
    """One way to run a deployment on a GPU."""

    deployment: str
    tensor_parallel: int
    dtype: str
    #: disaggregated deployments: (prefill, decode) replicas per unit
    prefill_decode: tuple[int, int] | None = None

    def overrides(self) -> dict[str, Any]:
        out = {f"deployments.{self.deployment}.tensor_parallel": self.tensor_parallel,
               f"deployments.{self.deployment}.dtype": self.dtype}  # fmt: skip
        if self.prefill_decode is not None:
            at = f"deployments.{self.deployment}.disaggregation"
            out[f"{at}.prefill_replicas"], out[f"{at}.decode_replicas"] = self.prefill_decode
        return out

    @property
    def label(self) -> str:
        pd = "" if self.prefill_decode is None else f" P:D {self.prefill_decode[0]}:{self.prefill_decode[1]}"
        return f"{self.deployment}: TP{self.tensor_parallel} {self.dtype}{pd}"

    def gpus_per_replica(self, dep: Deployment) -> int:
        """GPUs of one replica (unit) of ``dep`` run this way."""
        update: dict[str, Any] = {"tensor_parallel": self.tensor_parallel}
        if self.prefill_decode is not None and dep.disaggregation is not None:
            p, d = self.prefill_decode
            update["disaggregation"] = dep.disaggregation.model_copy(update={"prefill_replicas": p, "decode_replicas": d})
        return dep.model_copy(update=update).gpus_per_replica


def serving_pools(scenario: Scenario) -> list[Pool]:
    """Pools that hold at least one deployment."""
    used = {d.pool for d in scenario.deployments}
    return [p for p in scenario.pools if p.name in used]


def candidate_gpus(scenario: Scenario, pool: Pool, gpus: list[str] | None = None) -> list[str]:
    """The pool's GPU first, then the given (default: :data:`DEFAULT_GPUS`) catalog GPUs with prices."""
    catalog = catalog_for(scenario)
    names = [pool.gpu]
    for name in gpus if gpus is not None else DEFAULT_GPUS:
        gpu = catalog.gpus.get(name)
        if gpu is None or name in names:
            continue
        if gpu.usd_per_gpu_hour_on_demand is not None and gpu.usd_per_gpu_hour_reserved is not None:
            names.append(name)
    return names


def fits(catalog: Catalog, pool: Pool, gpu: GpuSpec, dep: Deployment, tp: int, dtype: str,
         unit_gpus: int | None = None) -> bool:  # fmt: skip
    """Whether the weights fit a replica and the pool holds the minimum replicas (of
    ``unit_gpus`` GPUs each; default ``tp``)."""
    model = catalog.models[dep.model]
    unit = tp if unit_gpus is None else unit_gpus
    if unit > pool.max_gpus or dep.autoscaling.min_replicas * unit > pool.max_gpus:
        return False
    return weight_bytes(model, dtype) < usable_bytes(gpu, tp, dep.gpu_memory_utilization)


def deployment_options(scenario: Scenario, pool: Pool, gpu_name: str, dep: Deployment) -> list[Option]:
    """Every (TP, dtype) of ``dep`` that fits on ``gpu_name`` (its own setting first)."""
    catalog = catalog_for(scenario)
    gpu = catalog.gpus[gpu_name]
    dtypes = [d for d in DTYPES if d != "fp8" or gpu.fp8_tflops]
    pairs = [(dep.tensor_parallel, dep.dtype)] + [(tp, d) for tp in TP_DEGREES for d in dtypes]
    splits: list[tuple[int, int] | None] = [None]
    if dep.disaggregation is not None:
        own = (dep.disaggregation.prefill_replicas, dep.disaggregation.decode_replicas)
        splits = list(dict.fromkeys([own, *PREFILL_DECODE]))
    out: list[Option] = []
    for tp, dtype in dict.fromkeys(pairs):
        for split in splits:
            option = Option(dep.name, tp, dtype, split)
            if fits(catalog, pool, gpu, dep, tp, dtype, option.gpus_per_replica(dep)):
                out.append(option)
    return out


def prices(scenario: Scenario, pool: Pool, gpu_name: str) -> tuple[float, float]:
    """(on-demand, reserved) $/GPU-hour of ``gpu_name`` in ``pool`` (see the module docstring)."""
    gpu = catalog_for(scenario).gpus[gpu_name]
    on_demand = gpu.usd_per_gpu_hour_on_demand
    reserved = gpu.usd_per_gpu_hour_reserved
    if gpu_name == pool.gpu:
        pricing = pool.pricing
        if isinstance(pricing, OnDemandPricing):
            on_demand = pricing.usd_per_gpu_hour
        if isinstance(pricing, ReservedPricing):
            reserved = pricing.usd_per_gpu_hour
            on_demand = pricing.overflow_usd_per_gpu_hour or on_demand
    if on_demand is None:
        raise ValueError(f"no on-demand price for GPU {gpu_name!r} (give one in the scenario's catalog)")
    return float(on_demand), float(reserved if reserved is not None else on_demand)


def on_demand(price: float) -> dict[str, Any]:
    return {"kind": "on_demand", "usd_per_gpu_hour": price}


def reserved(committed: int, months: int, price: float, overflow_price: float) -> dict[str, Any]:
    return {"kind": "reserved", "committed_gpus": committed, "term_months": months,
            "usd_per_gpu_hour": price, "overflow": "on_demand",
            "overflow_usd_per_gpu_hour": overflow_price}  # fmt: skip


def pricing_options(scenario: Scenario, pool: Pool, gpu_name: str, peak_gpus: float) -> list[dict[str, Any]]:
    """Ways to buy ``pool``'s GPUs: on demand, reserved at fractions of the peak, as written."""
    od, res = prices(scenario, pool, gpu_name)
    options = [on_demand(od)]
    node = pool.gpus_per_node or catalog_for(scenario).gpus[gpu_name].gpus_per_node
    # commitments in whole nodes (a reservation is of nodes), at least one
    commits = sorted({node * max(1, round(f * peak_gpus / node)) for f in COMMIT_FRACTIONS if peak_gpus > 0})
    options += [reserved(c, scenario.horizon.months, res, od) for c in commits if c <= pool.max_gpus]
    if gpu_name == pool.gpu and not any(_same_pricing(o, pool.pricing) for o in options):
        options.append(pool.pricing.model_dump(mode="json", exclude_defaults=True))
    return options


def _same_pricing(option: dict[str, Any], pricing: Any) -> bool:
    return bool(TypeAdapter(Pricing).validate_python(option) == pricing)
