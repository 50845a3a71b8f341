"""Validation of a whole scenario: schema errors made readable, and cross-references.

``validate_scenario_data(data, lines, source)`` is the single entry point: it returns a
:class:`Scenario` or raises :class:`ScenarioError` listing every problem with its line.
"""

from __future__ import annotations

import difflib
import functools
import typing
from collections import Counter
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from simulator.catalog import BYTES_PER_ELEMENT, Catalog
from simulator.common.errors import Problem, ScenarioError
from simulator.perf.memory import usable_bytes, weight_bytes
from simulator.perf.profile import CalibrationProfile, bundled_profile_names
from simulator.scenario.derived import with_derived_workloads
from simulator.scenario.distributions import Distribution
from simulator.scenario.resolve import catalog_for
from simulator.scenario.schema import Pricing, Scenario
from simulator.scenario.stages import RETRIEVAL_STAGE, pipeline
from simulator.scenario.yamlio import Path, line_of

GIB = 2**30


def validate_scenario_data(
    data: Any, lines: dict[Path, int] | None = None, source: str = "<scenario>"
) -> Scenario:
    """Validate plain data as a scenario; raise ScenarioError with every problem."""
    lines = lines or {}
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        problems = [_problem_from_pydantic(e, data, lines) for e in err.errors()]
        raise ScenarioError(problems, source) from None
    problems = [
        Problem(display_path(p.path, data), p.message, line_of(lines, p.path))
        for p in cross_reference_problems(scenario)
    ]
    if problems:
        raise ScenarioError(problems, source)
    return with_derived_workloads(scenario)  # deployment-backed pipeline stages' calls


# ---------------------------------------------------------------------- pydantic errors


def _problem_from_pydantic(error: dict[str, Any], data: Any, lines: dict[Path, int]) -> Problem:
    raw_path = _data_path(error["loc"], data)
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(raw_path[-1]) if raw_path else ""
        message = f"unknown key {key!r}"
        allowed = _allowed_keys(error["loc"][:-1])
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        elif allowed:
            message += f" (expected one of: {', '.join(sorted(allowed))})"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "union_tag_invalid":
        expected = error.get("ctx", {}).get("expected_tags", "")
        tag = error.get("ctx", {}).get("discriminator", "kind")
        found = error.get("ctx", {}).get("tag", "")
        message = f"unknown {tag} {found!r} (expected one of: {expected})"
    elif kind == "string_pattern_mismatch" and raw_path and raw_path[-1] == "name":
        message = (f"{error.get('input')!r} is not a usable name: use letters, digits, '.', '_' "
                   "and '-', starting with a letter or digit, at most 64 characters")
    elif kind == "union_tag_not_found":
        tag = error.get("ctx", {}).get("discriminator", "kind")
        message = f"missing {tag}: field (which variant this is)"
    else:
        message = error["msg"].removeprefix("Value error, ")
        if "input" in error and not isinstance(error["input"], dict | list):
            message += f" (got {error['input']!r})"
    return Problem(display_path(raw_path, data), message, line_of(lines, raw_path))


def _data_path(loc: tuple[Any, ...], data: Any) -> Path:
    """Pydantic's loc reduced to keys/indices that exist in the data (drops union tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part] if part < len(node) else None
        elif isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and not isinstance(part, int):
            # a union tag ('reserved'), or a key that is missing/extra: keep only the latter
            if _is_union_tag(part):
                continue
            path.append(part)
            node = None
        else:
            continue
    return tuple(path)


def _is_union_tag(part: Any) -> bool:
    """Whether a loc element names a union member (``reserved``, ``lognormal``, ``str``...)."""
    return isinstance(part, str) and part in _union_tags()


@functools.cache
def _union_tags() -> frozenset[str]:
    tags: set[str] = {"str", "int", "float", "none"}
    for annotation in (Pricing, Distribution, CalibrationProfile | str):
        for member in _models_in(annotation):
            tags.update(str(t) for t in _tags_of(member))
    return frozenset(tags)


def display_path(path: Path, data: Any) -> Path:
    """Replace list indices by the item's name where it has one (``pools.serving``)."""
    shown: list[str | int] = []
    node = data
    for part in path:
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            item = node[part]
            name = item.get("name") if isinstance(item, dict) else None
            shown.append(name if isinstance(name, str) and name else part)
            node = item
        else:
            shown.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return tuple(shown)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names (and aliases) of the model at ``loc``, walking Scenario's annotations."""
    model = _model_at(Scenario, list(loc))
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: list[Any]) -> type[BaseModel] | None:
    """The model class a pydantic loc points into (field names and union tags followed)."""
    candidates = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        field_hits = [c.model_fields[part].annotation for c in candidates if part in c.model_fields]
        if field_hits:
            candidates = _models_in(field_hits[0])
        else:
            candidates = [c for c in candidates if part in _tags_of(c)]
        if not candidates:
            return None
    return candidates[0] if len(candidates) == 1 else None


def _tags_of(model: type[BaseModel]) -> tuple[Any, ...]:
    """Discriminator values (``kind:``/``distribution:``) a model answers to, and its name."""
    for tag in ("kind", "distribution"):
        if tag in model.model_fields:
            return typing.get_args(model.model_fields[tag].annotation) + (model.__name__,)
    return (model.__name__,)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out


# ---------------------------------------------------------------------- cross references


def cross_reference_problems(scenario: Scenario) -> list[Problem]:
    """Problems that need the whole file or the catalog (paths use list indices)."""
    catalog = catalog_for(scenario)
    problems: list[Problem] = []
    problems += _duplicate_names(scenario)
    problems += _pool_problems(scenario, catalog)
    problems += _refresh_problems(scenario, catalog)
    problems += _deployment_problems(scenario, catalog)
    problems += _workload_problems(scenario)
    problems += _stage_problems(scenario)
    problems += _region_problems(scenario)
    problems += _training_problems(scenario, catalog)
    problems += _adapter_problems(scenario, catalog)
    problems += _uncertainty_problems(scenario)
    problems += _api_baseline_problems(scenario)
    return problems


def _api_baseline_problems(scenario: Scenario) -> list[Problem]:
    """API baselines by provider name must name a bundled API price."""
    from simulator.catalog import bundled_api_prices

    known = list(bundled_api_prices())
    places = [(("api_baseline", "provider"), scenario.api_baseline)]
    places += [(("workloads", i, "api_baseline", "provider"), w.api_baseline) for i, w in enumerate(scenario.workloads)]
    return [Problem(path, _unknown("API price", b.provider, known))
            for path, b in places if b is not None and b.provider is not None and b.provider not in known]


def _adapter_problems(scenario: Scenario, catalog: Catalog) -> list[Problem]:
    """LoRA: adapters fit beside the weights; workloads address adapters their deployments
    serve; a LoRA fine-tune's weights and optimizer state fit in its GPUs."""
    from simulator.perf.lora import adapter_bytes, lora_training_fits
    from simulator.perf.roofline import activation_bytes

    problems = []
    pools = {p.name: p for p in scenario.pools}
    deployments = {d.name: d for d in scenario.deployments}
    for i, dep in enumerate(scenario.deployments):
        pool, model = pools.get(dep.pool), catalog.models.get(dep.model)
        if not dep.adapters or pool is None or model is None or pool.gpu not in catalog.gpus:
            continue
        gpu = catalog.gpus[pool.gpu]
        resident = dep.adapters if dep.max_adapters_per_batch is None else min(dep.adapters, dep.max_adapters_per_batch)
        each = adapter_bytes(model, dep.adapter_rank, dep.adapter_modules, activation_bytes(dep.dtype))
        weights = weight_bytes(model, dep.dtype)
        have = usable_bytes(gpu, dep.tensor_parallel, dep.gpu_memory_utilization)
        if weights < have <= weights + resident * each:
            problems.append(Problem(
                ("deployments", i, "adapters"),
                f"{resident} adapters of rank {dep.adapter_rank} take {resident * each / GIB:.1f} GiB "
                f"({each / 2**20:.0f} MiB each) but only {(have - weights) / GIB:.1f} GiB are left "
                f"after the weights, none for the KV cache (set max_adapters_per_batch, lower "
                f"adapter_rank, or raise tensor_parallel)",
            ))  # fmt: skip
    for i, workload in enumerate(scenario.workloads):
        if not workload.adapters:
            continue
        for j, route in enumerate(workload.routes):
            dep = deployments.get(route.deployment)
            if dep is not None and dep.adapters < workload.adapters:
                problems.append(Problem(
                    ("workloads", i, "routes", j, "deployment"),
                    f"workload addresses {workload.adapters} adapters but deployment {dep.name!r} "
                    f"serves {dep.adapters} (set its adapters: to at least {workload.adapters})",
                ))  # fmt: skip
    for i, job in enumerate(scenario.training_jobs):
        pool, model = pools.get(job.pool), catalog.models.get(job.model)
        if job.method != "lora" or pool is None or model is None or pool.gpu not in catalog.gpus:
            continue
        fits, need, have = lora_training_fits(model, job.lora_rank, BYTES_PER_ELEMENT[job.dtype],
                                              catalog.gpus[pool.gpu], job.gpus)  # fmt: skip
        if not fits:
            problems.append(Problem(
                ("training_jobs", i, "gpus"),
                f"LoRA fine-tune of {model.name}: frozen weights + adapter optimizer state take "
                f"{need / GIB:.1f} GiB but {job.gpus} x {pool.gpu} leave {have / GIB:.1f} GiB "
                f"(before activations); raise gpus",
            ))  # fmt: skip
    return problems


def _uncertainty_problems(scenario: Scenario) -> list[Problem]:
    """Every uncertain input must name an existing numeric field."""
    from simulator.scenario.paths import get_by_path, scenario_data

    data = scenario_data(scenario)
    problems = []
    for dotted in scenario.uncertainty:
        try:
            value = get_by_path(data, dotted)
        except KeyError as err:
            problems.append(Problem(("uncertainty", dotted), str(err.args[0])))
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(Problem(("uncertainty", dotted), f"is not a number (found {value!r})"))
    return problems


def _unknown(kind: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"
    return f"unknown {kind} {name!r} ({hint})"


def _duplicate_names(scenario: Scenario) -> list[Problem]:
    problems = []
    for field in ("pools", "deployments", "workloads", "training_jobs", "plans"):
        items = getattr(scenario, field)
        counts = Counter(i.name for i in items)
        for index, item in enumerate(items):
            if counts[item.name] > 1:
                problems.append(Problem((field, index, "name"), f"duplicate name {item.name!r}"))
    return problems


def _pool_problems(scenario: Scenario, catalog: Catalog) -> list[Problem]:
    problems = []
    known_profiles = bundled_profile_names()
    if isinstance(scenario.calibration, str) and scenario.calibration not in known_profiles:
        problems.append(
            Problem(("calibration",), _unknown("calibration profile", scenario.calibration, known_profiles))
        )
    for i, pool in enumerate(scenario.pools):
        if pool.gpu not in catalog.gpus:
            problems.append(Problem(("pools", i, "gpu"), _unknown("GPU", pool.gpu, list(catalog.gpus))))
        if isinstance(pool.calibration, str) and pool.calibration not in known_profiles:
            problems.append(
                Problem(
                    ("pools", i, "calibration"),
                    _unknown("calibration profile", pool.calibration, known_profiles),
                )
            )
        problems += _pricing_size_problems(pool.pricing, pool.max_gpus, ("pools", i, "pricing"))
        if pool.calibration is None and scenario.calibration is None and pool.gpu in catalog.gpus \
                and pool.gpu not in known_profiles:  # fmt: skip
            problems.append(Problem(
                ("pools", i, "gpu"),
                f"GPU {pool.gpu!r} has no bundled calibration profile: set the pool's calibration "
                f"to a bundled profile of a similar GPU ({', '.join(known_profiles)}) or to a "
                "profile file measured with `fleetsim calibrate`",
            ))  # fmt: skip
    return problems


def _pricing_size_problems(pricing: Any, max_gpus: int, at: tuple[Any, ...]) -> list[Problem]:
    """A reserved commitment or owned GPU count larger than the pool can hold."""
    problems = []
    if getattr(pricing, "kind", "") == "reserved" and pricing.committed_gpus > max_gpus:
        problems.append(Problem((*at, "committed_gpus"),
                                f"{pricing.committed_gpus} committed GPUs exceed max_gpus={max_gpus}"))  # fmt: skip
    if getattr(pricing, "kind", "") == "owned" and pricing.gpus and pricing.gpus > max_gpus:
        problems.append(Problem((*at, "gpus"), f"{pricing.gpus} owned GPUs exceed max_gpus={max_gpus}"))
    return problems


def _deployment_problems(scenario: Scenario, catalog: Catalog) -> list[Problem]:
    problems = []
    pools = {p.name: p for p in scenario.pools}
    for i, dep in enumerate(scenario.deployments):
        pool = pools.get(dep.pool)
        if pool is None:
            problems.append(Problem(("deployments", i, "pool"), _unknown("pool", dep.pool, list(pools))))
        model = catalog.models.get(dep.model)
        if model is None:
            problems.append(
                Problem(("deployments", i, "model"), _unknown("model", dep.model, list(catalog.models)))
            )
        if pool is None or model is None or pool.gpu not in catalog.gpus:
            continue
        gpu = catalog.gpus[pool.gpu]
        unit = dep.gpus_per_replica
        if unit > pool.max_gpus:
            field = "tensor_parallel" if dep.disaggregation is None else "disaggregation"
            what = f"tensor_parallel={dep.tensor_parallel}" if dep.disaggregation is None else \
                f"a prefill + decode unit of {unit} GPUs"
            problems.append(Problem(("deployments", i, field),
                                    f"{what} exceeds pool {pool.name!r} max_gpus={pool.max_gpus}"))  # fmt: skip
        elif dep.autoscaling.min_replicas * unit > pool.max_gpus:
            problems.append(
                Problem(
                    ("deployments", i, "autoscaling", "min_replicas"),
                    f"{dep.autoscaling.min_replicas} replicas x {unit} GPUs = "
                    f"{dep.autoscaling.min_replicas * unit} GPUs exceed pool "
                    f"{pool.name!r} max_gpus={pool.max_gpus}",
                )
            )
        if dep.expert_parallel > 1:
            why = _expert_parallel_problem(dep.expert_parallel, dep.tensor_parallel, model)
            if why:
                problems.append(Problem(("deployments", i, "expert_parallel"), why))
        short = _weights_do_not_fit(dep, model, gpu)
        if short:
            problems.append(Problem(("deployments", i, "tensor_parallel"), short))
        if dep.speculative is not None:
            problems += _speculative_problems(dep, model, catalog, ("deployments", i, "speculative"))
        if dep.disaggregation is not None and dep.adapters:
            problems.append(Problem(("deployments", i, "disaggregation"),
                                    "disaggregated serving does not model LoRA adapters yet: serve them co-located"))  # fmt: skip
        prefill_tp = dep.disaggregation.prefill_tensor_parallel if dep.disaggregation else None
        if prefill_tp and prefill_tp != dep.tensor_parallel:
            short = _weights_do_not_fit(dep.model_copy(update={"tensor_parallel": prefill_tp}), model, gpu)
            if short:
                problems.append(Problem(("deployments", i, "disaggregation", "prefill_tensor_parallel"),
                                        short.replace("raise tensor_parallel", "raise prefill_tensor_parallel")))  # fmt: skip
    return problems


def _speculative_problems(dep, model, catalog: Catalog, at: tuple[Any, ...]) -> list[Problem]:
    """A draft model must be in the catalog and share the target's tokenizer."""
    spec = dep.speculative
    if spec.method != "draft_model":
        return []
    draft = catalog.models.get(spec.draft_model)
    if draft is None:
        return [Problem((*at, "draft_model"), _unknown("model", spec.draft_model, list(catalog.models)))]
    if draft.vocab_size != model.vocab_size:
        return [Problem((*at, "draft_model"), f"{draft.name}'s vocabulary ({draft.vocab_size:,} tokens) is not "
                        f"{model.name}'s ({model.vocab_size:,}): a draft must share the target's tokenizer")]  # fmt: skip
    if draft.parameters >= model.parameters:
        return [Problem((*at, "draft_model"), f"{draft.name} is not smaller than {model.name}: "
                                              "a draft only pays when it is much cheaper")]  # fmt: skip
    return []


def _expert_parallel_problem(ep: int, tp: int, model) -> str | None:
    """Why expert parallelism ``ep`` cannot serve ``model`` on TP ``tp`` GPUs, or None."""
    if not model.is_moe:
        return f"expert_parallel={ep} needs a mixture-of-experts model; {model.name} is dense"
    if tp % ep:
        return f"expert_parallel={ep} must divide tensor_parallel={tp} (the replica's GPUs)"
    if model.experts % ep:
        return f"expert_parallel={ep} must divide the {model.experts} experts of {model.name}"
    return None


def _weights_do_not_fit(dep, model, gpu) -> str | None:
    """Why ``dep``'s weights do not fit on ``tensor_parallel`` x ``gpu``, or None if they do."""
    need = weight_bytes(model, dep.dtype)
    have = usable_bytes(gpu, dep.tensor_parallel, dep.gpu_memory_utilization)
    if need < have:
        return None
    return (
        f"{model.name} weights at {dep.dtype} take {need / GIB:.1f} GiB but "
        f"{dep.tensor_parallel} x {gpu.name} leave {have / GIB:.1f} GiB usable: "
        f"short by {(need - have) / GIB:.1f} GiB (raise tensor_parallel, quantize "
        f"below {BYTES_PER_ELEMENT[dep.dtype]:g} bytes/weight, or use a larger GPU)"
    )


def _refresh_problems(scenario: Scenario, catalog: Catalog) -> list[Problem]:
    """Hardware refresh steps: known GPU and profile, inside the horizon, sizes within the pool,
    and every deployment of the pool still fits on the new GPU."""
    problems = []
    known_profiles = bundled_profile_names()
    for i, pool in enumerate(scenario.pools):
        for j, step in enumerate(pool.refresh):
            at = ("pools", i, "refresh", j)
            if step.from_date <= scenario.horizon.start:
                problems.append(Problem((*at, "from"), f"refresh date {step.from_date} must be after "
                                        f"the horizon start {scenario.horizon.start}"))  # fmt: skip
            if isinstance(step.calibration, str) and step.calibration not in known_profiles:
                problems.append(Problem((*at, "calibration"),
                                        _unknown("calibration profile", step.calibration, known_profiles)))  # fmt: skip
            problems += _pricing_size_problems(step.pricing, pool.max_gpus, (*at, "pricing"))
            gpu = catalog.gpus.get(step.gpu)
            if gpu is None:
                problems.append(Problem((*at, "gpu"), _unknown("GPU", step.gpu, list(catalog.gpus))))
                continue
            for k, dep in enumerate(scenario.deployments):
                model = catalog.models.get(dep.model)
                short = _weights_do_not_fit(dep, model, gpu) if dep.pool == pool.name and model else None
                if short:
                    problems.append(Problem(("deployments", k, "tensor_parallel"),
                                            f"after pool {pool.name!r} moves to {gpu.name} on "
                                            f"{step.from_date}: {short}"))  # fmt: skip
    return problems


def _workload_problems(scenario: Scenario) -> list[Problem]:
    problems = []
    deployments = [d.name for d in scenario.deployments]
    for i, workload in enumerate(scenario.workloads):
        total = 0.0
        for j, route in enumerate(workload.routes):
            total += route.share
            if route.deployment not in deployments:
                problems.append(
                    Problem(
                        ("workloads", i, "routes", j, "deployment"),
                        _unknown("deployment", route.deployment, deployments),
                    )
                )
        if abs(total - 1.0) > 1e-6:
            problems.append(
                Problem(("workloads", i, "routes"), f"route shares sum to {total:g} (expected 1)")
            )
        elif any(r.schedule for r in workload.routes):
            problems += _scheduled_share_problems(scenario, i)
    return problems


def _stage_problems(scenario: Scenario) -> list[Problem]:
    """Pipeline stages: names unique within their workload (``retrieval:`` takes 'retrieval'),
    and a stage's deployment names a deployment of the scenario."""
    problems = []
    deployments = [d.name for d in scenario.deployments]
    for i, workload in enumerate(scenario.workloads):
        taken = Counter(s.name for s in pipeline(workload))
        for j, stage in enumerate(workload.stages):
            at = ("workloads", i, "stages", j)
            if taken[stage.name] > 1:
                clash = " (retrieval: is the stage 'retrieval')" if stage.name == RETRIEVAL_STAGE and workload.retrieval else ""
                problems.append(Problem(at + ("name",), f"duplicate stage name {stage.name!r}{clash}"))
            for name in stage.deployments:
                if name not in deployments:
                    problems.append(Problem(at + ("deployment",), _unknown("deployment", name, deployments)))
    return problems


def _region_problems(scenario: Scenario) -> list[Problem]:
    """Regions, pools' regions, workloads' origins and outages name known regions; origin shares
    sum to 1; every region an origin may be served from has a round trip within its TTFT target."""
    problems: list[Problem] = []
    names = [r.name for r in scenario.regions]
    counts = Counter(names)
    for i, region in enumerate(scenario.regions):
        if counts[region.name] > 1:
            problems.append(Problem(("regions", i, "name"), f"duplicate name {region.name!r}"))
        for other, ms in region.rtt_ms.items():
            if other not in names:
                problems.append(Problem(("regions", i, "rtt_ms", other), _unknown("region", other, names)))
            elif other == region.name:
                problems.append(Problem(("regions", i, "rtt_ms", other), "a region's round trip to itself is 0"))
            elif region.name in scenario.region(other).rtt_ms and scenario.region(other).rtt_ms[region.name] != ms:
                problems.append(Problem(("regions", i, "rtt_ms", other),
                                        f"{region.name} -> {other} is {ms:g} ms here but "
                                        f"{scenario.region(other).rtt_ms[region.name]:g} ms the other way"))  # fmt: skip
    for i, pool in enumerate(scenario.pools):
        if pool.region is not None and pool.region not in names:
            problems.append(Problem(("pools", i, "region"), _unknown("region", pool.region, names)))
    outage_names = Counter(o.name for o in scenario.region_outages)
    for i, outage in enumerate(scenario.region_outages):
        if outage_names[outage.name] > 1:
            problems.append(Problem(("region_outages", i, "name"), f"duplicate outage name {outage.name!r}"))
        if outage.region not in names:
            problems.append(Problem(("region_outages", i, "region"), _unknown("region", outage.region, names)))
    if problems:
        return problems
    deployments = {d.name: d for d in scenario.deployments}
    pools = {p.name: p for p in scenario.pools}
    for i, workload in enumerate(scenario.workloads):
        if not workload.origins:
            continue
        at = ("workloads", i, "origins")
        total = sum(o.share for o in workload.origins)
        if abs(total - 1.0) > 1e-6:
            problems.append(Problem(at, f"origin shares sum to {total:g} (expected 1)"))
        if workload.traffic.concurrent_users is not None:
            problems.append(Problem(at, "origins need traffic.requests_per_second (concurrent users "
                                        "are not split by region)"))  # fmt: skip
        served_from = set()
        for j, route in enumerate(workload.routes):
            dep = deployments.get(route.deployment)
            pool = pools.get(dep.pool) if dep is not None else None
            if pool is None:
                continue
            if pool.region is None:
                problems.append(Problem(("workloads", i, "routes", j, "deployment"),
                                        f"deployment {dep.name!r} is on pool {pool.name!r}, which has no "
                                        "region: a workload with origins needs a region on every route's pool"))  # fmt: skip
            else:
                served_from.add(pool.region)
        problems += _stage_region_problems(scenario, i)
        names_seen = Counter(o.region for o in workload.origins)
        for k, origin in enumerate(workload.origins):
            if names_seen[origin.region] > 1:
                problems.append(Problem(at + (k, "region"), f"origin {origin.region!r} is given twice"))
        target = min((t for t in (workload.slo.ttft_p95_ms, workload.slo.e2e_p95_ms) if t is not None), default=None)
        for k, origin in enumerate(workload.origins):
            if origin.region not in names:
                problems.append(Problem(at + (k, "region"), _unknown("region", origin.region, names)))
                continue
            reachable = [r for r in served_from if scenario.round_trip_ms(origin.region, r) is not None]
            if served_from and not reachable:
                problems.append(Problem(at + (k, "region"),
                                        f"no deployment of {workload.name!r} in {origin.region!r} and no rtt_ms "
                                        f"from it to a region that has one ({', '.join(sorted(served_from))})"))  # fmt: skip
            for region in sorted(reachable):
                ms = scenario.round_trip_ms(origin.region, region)
                if target is not None and ms is not None and ms >= target:
                    problems.append(Problem(at + (k, "region"),
                                            f"the {ms:g} ms round trip from {origin.region!r} to {region!r} "
                                            f"leaves no time within the {target:g} ms latency target"))  # fmt: skip
    return problems


def _stage_region_problems(scenario: Scenario, index: int) -> list[Problem]:
    """A stage with deployments under a workload with origins is routed by region too: each of
    its deployments' pools needs a region, and its latency budget must exceed the round trip
    from every origin to every region it may be served from."""
    workload = scenario.workloads[index]
    pools = {p.name: p for p in scenario.pools}
    deployments = {d.name: d for d in scenario.deployments}
    problems = []
    for j, stage in enumerate(workload.stages):
        at = ("workloads", index, "stages", j)
        regions = set()
        for name in stage.deployments:
            dep = deployments.get(name)
            if dep is None or dep.pool not in pools:
                continue
            if pools[dep.pool].region is None:
                problems.append(Problem(at + ("deployment",), f"deployment {name!r} is on pool {dep.pool!r}, which "
                                        "has no region: a stage of a workload with origins needs one"))  # fmt: skip
            else:
                regions.add(pools[dep.pool].region)
        budget = stage.latency_budget_ms
        for origin in workload.origins if budget is not None else []:
            for region in sorted(regions):
                ms = scenario.round_trip_ms(origin.region, region)
                if ms is not None and ms >= budget:
                    problems.append(Problem(at + ("latency_budget_ms",),
                                            f"the {ms:g} ms round trip from {origin.region!r} to {region!r} "
                                            f"leaves no time within the {budget:g} ms latency budget"))  # fmt: skip
    return problems


def _scheduled_share_problems(scenario: Scenario, index: int) -> list[Problem]:
    """Scheduled shares must still sum to 1 at every change (linear between changes)."""
    from simulator.scenario.schedule import breakpoints, share_at_hours

    routes = scenario.workloads[index].routes
    start = scenario.horizon.start
    points = breakpoints(routes, start)
    totals = sum(share_at_hours(r, start, points) for r in routes)
    bad = np.flatnonzero(np.abs(totals - 1.0) > 1e-6)
    if not len(bad):
        return []
    when = (np.datetime64(start) + np.timedelta64(int(points[bad[0]] * 3600), "s")).astype("datetime64[D]")
    return [Problem(("workloads", index, "routes"),
                    f"scheduled route shares sum to {totals[bad[0]]:g} on {when} (expected 1 at every change)")]  # fmt: skip


def _training_problems(scenario: Scenario, catalog: Catalog) -> list[Problem]:
    problems = []
    jobs = [j.name for j in scenario.training_jobs]
    for i, dep in enumerate(scenario.deployments):
        if dep.after_job is not None and dep.after_job not in jobs:
            problems.append(Problem(("deployments", i, "after_job"), _unknown("training job", dep.after_job, jobs)))
    pools = {p.name: p for p in scenario.pools}
    for i, job in enumerate(scenario.training_jobs):
        pool = pools.get(job.pool)
        if pool is None:
            problems.append(Problem(("training_jobs", i, "pool"), _unknown("pool", job.pool, list(pools))))
        elif job.gpus > pool.max_gpus:
            problems.append(
                Problem(
                    ("training_jobs", i, "gpus"),
                    f"{job.gpus} GPUs exceed pool {pool.name!r} max_gpus={pool.max_gpus}",
                )
            )
        if job.model not in catalog.models:
            problems.append(
                Problem(("training_jobs", i, "model"), _unknown("model", job.model, list(catalog.models)))
            )
        elif pool is not None and pool.gpu in catalog.gpus and job.gpus <= pool.max_gpus:
            from simulator.perf.lora import lora_training_fits
            from simulator.scenario.training_layout import layout_problem

            if job.method == "lora" and not lora_training_fits(
                catalog.models[job.model], job.lora_rank, BYTES_PER_ELEMENT[job.dtype],
                catalog.gpus[pool.gpu], job.gpus,
            )[0]:  # fmt: skip
                continue  # the LoRA state check below says why, in its own words

            short = layout_problem(scenario, job)
            if short:
                problems.append(Problem(("training_jobs", i, "gpus"), short))
    return problems


def commitment_warnings(scenario: Scenario) -> list[str]:
    """Reserved commitments no plan run could ever use: above the most GPUs the pool's
    deployments (max_replicas x tensor parallel) and training jobs can hold at once. (What a
    run needed is in its summary's ``commitment``; ``run`` warns on that.)"""
    from simulator.scenario.schema import ReservedPricing

    out = []
    for pool in scenario.pools:
        if not isinstance(pool.pricing, ReservedPricing):
            continue
        most = sum(d.autoscaling.max_replicas * d.gpus_per_replica for d in scenario.deployments if d.pool == pool.name)
        most += sum(j.gpus for j in scenario.training_jobs if j.pool == pool.name)
        most = min(most, pool.max_gpus)
        if pool.pricing.committed_gpus > most:
            out.append(f"pools.{pool.name}.pricing.committed_gpus: {pool.pricing.committed_gpus} committed, "
                       f"but its deployments and jobs can hold at most {most} GPUs at once")
    return out
