"""Sweep grid files: their schema, their checks against a scenario, and their expansion into plans.

A grid file is YAML. Every top-level key that is not one of the reserved keys below is a dotted
scenario path (list items by name, as in a plan's ``set:``) mapped to the list of values to try;
the sweep runs the cartesian product of these axes::

    # grid.yaml
    deployments.chat-70b.tensor_parallel: [4, 8]
    pools.serving.gpu: [h100-sxm, h200]
    fixed:                               # applied to every plan
      horizon.months: 12
    pricing:                             # named alternatives: one more axis, column alt.pricing
      - name: on-demand
        set: {pools.serving.pricing: {kind: on_demand, usd_per_gpu_hour: 3.0}}
      - name: reserved-64
        set: {pools.serving.pricing.committed_gpus: 64}
    alternatives:                        # more groups of named alternatives, same shape
      routing:
        - {name: mostly-8b, set: {workloads.chat.routes: [...]}}
    replications: 4                      # default for --replications

Reserved keys: ``description``, ``fixed``, ``pricing``, ``alternatives``, ``replications``.
Overrides are applied in this order: ``fixed``, the chosen alternative of each group (file
order), the axes (file order). A path must exist in the scenario (after ``fixed``, or after one
of the alternatives for an axis that only exists under some of them); a combination that then
fails validation (a model that does not fit at that TP) is not an error of the grid: the sweep
records it as a failed plan.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.common.errors import Problem, ScenarioError
from simulator.scenario.checks import display_path, validate_scenario_data
from simulator.scenario.loading import read_text
from simulator.scenario.paths import scenario_data, set_by_path
from simulator.scenario.schema import Scenario
from simulator.scenario.yamlio import Path, line_of, parse_yaml

RESERVED_KEYS = ("description", "fixed", "pricing", "alternatives", "replications")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Alternative(_Strict):
    """One named set of overrides (e.g. a way of buying capacity)."""

    name: str = Field(min_length=1)
    description: str = ""
    set: dict[str, Any] = Field(min_length=1, description="Dotted path -> value.")


class GridFile(_Strict):
    """The reserved part of a grid file (the axes are checked by :func:`parse_grid`)."""

    description: str = ""
    fixed: dict[str, Any] = Field(default_factory=dict)
    pricing: list[Alternative] = Field(default_factory=list)
    alternatives: dict[str, list[Alternative]] = Field(default_factory=dict)
    replications: int | None = Field(default=None, ge=1)


@dataclass(frozen=True)
class Grid:
    """A parsed grid: axes (path -> values), fixed overrides, groups of named alternatives."""

    axes: dict[str, list[Any]]
    fixed: dict[str, Any]
    alternatives: dict[str, list[Alternative]]
    replications: int | None = None
    description: str = ""
    #: where each group of alternatives sits in the file (for line numbers)
    group_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of plans (before replications)."""
        n = 1
        for values in list(self.axes.values()) + list(self.alternatives.values()):
            n *= len(values)
        return n


@dataclass(frozen=True)
class PlanSpec:
    """One plan of a sweep: its overrides (in application order) and its output columns."""

    plan_id: int
    label: str
    overrides: dict[str, Any]
    columns: dict[str, Any]


# ---------------------------------------------------------------------- parsing


def load_grid(path: str | FsPath, scenario: Scenario | None = None) -> Grid:
    """Read, validate and (given the scenario) check a grid file; ScenarioError with lines."""
    source = str(path)
    data, lines = parse_yaml(read_text(path), source)
    return parse_grid(data, lines, source, scenario)


#: Most plans one grid may expand to (checked before expanding).
MAX_PLANS = 100_000


def parse_grid(
    data: Any, lines: dict[Path, int] | None = None, source: str = "<grid>", scenario: Scenario | None = None
) -> Grid:
    """Validate grid data (from :func:`parse_yaml`); check its paths against ``scenario``."""
    lines = lines or {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError([Problem((), "expected a mapping of dotted paths to lists of values", 1)], source)
    problems: list[Problem] = []
    axes: dict[str, list[Any]] = {}
    for key, values in data.items():
        if key in RESERVED_KEYS:
            continue
        where = (key,)
        close = difflib.get_close_matches(str(key), RESERVED_KEYS, n=1, cutoff=0.75)
        if not isinstance(key, str) or not key:
            problems.append(Problem(where, "expected a dotted scenario path as key", line_of(lines, where)))
        elif "." not in key and close:
            problems.append(Problem(where, f"unknown key {key!r} (did you mean {close[0]!r}?)", line_of(lines, where)))
        elif not isinstance(values, list):
            problems.append(Problem(where, f"expected a list of values to sweep (got {values!r})", line_of(lines, where)))
        elif not values:
            problems.append(Problem(where, "the list of values is empty", line_of(lines, where)))
        else:
            axes[key] = values
    reserved = {k: v for k, v in data.items() if k in RESERVED_KEYS}
    try:
        head = GridFile.model_validate(reserved)
    except ValidationError as err:
        problems += [_pydantic_problem(e, lines) for e in err.errors()]
        head = GridFile.model_validate({k: v for k, v in reserved.items() if _valid_part(k, v)})
    groups = {"pricing": head.pricing} if head.pricing else {}
    group_paths: dict[str, Path] = {"pricing": ("pricing",)} if head.pricing else {}
    for name, options in head.alternatives.items():
        if name in groups:
            problems.append(Problem(("alternatives", name), "group 'pricing' is already given at the top",
                                    line_of(lines, ("alternatives", name))))  # fmt: skip
        else:
            groups[name] = options
            group_paths[name] = ("alternatives", name)
    problems += _structure_problems(head, groups, group_paths, axes, lines)
    grid = Grid(axes, dict(head.fixed), groups, head.replications, head.description, group_paths)
    combinations = math.prod(len(v) for v in axes.values()) * math.prod(len(o) for o in groups.values())
    if combinations > MAX_PLANS:
        problems.append(Problem((), f"the grid has {combinations:,} combinations; at most {MAX_PLANS:,} "
                                    "(split it, or use fleetsim optimize)", 1))  # fmt: skip
    if scenario is not None:
        problems += path_problems(grid, scenario, lines)
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise ScenarioError([Problem(display_path(p.path, data), p.message, p.line) for p in problems], source)
    return grid


def _valid_part(key: str, value: Any) -> bool:
    """Whether one reserved key is valid on its own (to go on checking the rest of a bad file)."""
    try:
        GridFile.model_validate({key: value})
    except ValidationError:
        return False
    return True


def _pydantic_problem(error: dict[str, Any], lines: dict[Path, int]) -> Problem:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        known = sorted(Alternative.model_fields)  # the only nested model of a grid
        message = f"unknown key {loc[-1]!r} (expected one of: {', '.join(known)})"
    elif error["type"] == "missing":
        message = "required field is missing"
    else:
        message = error["msg"].removeprefix("Value error, ")
        if "input" in error and not isinstance(error["input"], dict | list):
            message += f" (got {error['input']!r})"
    return Problem(loc, message, line_of(lines, loc))


def _structure_problems(
    head: GridFile,
    groups: dict[str, list[Alternative]],
    group_paths: dict[str, Path],
    axes: dict[str, list[Any]],
    lines: dict[Path, int],
) -> list[Problem]:
    """Duplicate names, and paths set in two places (ambiguous order)."""
    problems = []
    for path in axes:
        if path in head.fixed:
            problems.append(Problem((path,), "also set under fixed: (give it in one place)", line_of(lines, (path,))))
    for group, options in groups.items():
        where = group_paths[group]
        seen: set[str] = set()
        for index, option in enumerate(options):
            if option.name in seen:
                problems.append(Problem(where + (index, "name"), f"duplicate name {option.name!r}",
                                        line_of(lines, where + (index, "name"))))  # fmt: skip
            seen.add(option.name)
            for path in option.set:
                if path in axes or path in head.fixed:
                    other = "an axis" if path in axes else "fixed:"
                    at = where + (index, "set", path)
                    problems.append(Problem(at, f"also set by {other} (give it in one place)", line_of(lines, at)))
    return problems


# ---------------------------------------------------------------------- paths against the scenario


def path_problems(grid: Grid, scenario: Scenario, lines: dict[Path, int] | None = None) -> list[Problem]:
    """Every path of the grid must exist in the scenario (see the module docstring)."""
    lines = lines or {}
    problems: list[Problem] = []
    base = scenario_data(scenario)
    fixed_data = copy.deepcopy(base)
    for path, value in grid.fixed.items():
        try:
            set_by_path(fixed_data, path, copy.deepcopy(value))
        except KeyError as err:
            problems.append(Problem(("fixed", path), str(err.args[0]), line_of(lines, ("fixed", path))))
    variants = [fixed_data]
    for group, options in grid.alternatives.items():
        where = grid.group_paths.get(group, ("alternatives", group))
        for index, option in enumerate(options):
            data = copy.deepcopy(fixed_data)
            for path, value in option.set.items():
                try:
                    set_by_path(data, path, copy.deepcopy(value))
                except KeyError as err:
                    at = where + (index, "set", path)
                    problems.append(Problem(at, str(err.args[0]), line_of(lines, at)))
            variants.append(data)
    for path in grid.axes:
        errors = []
        for data in variants:
            try:
                set_by_path(copy.deepcopy(data), path, None)
                break
            except KeyError as err:
                errors.append(str(err.args[0]))
        else:
            problems.append(Problem((path,), errors[0], line_of(lines, (path,))))
    return problems


# ---------------------------------------------------------------------- expansion


def expand(grid: Grid) -> list[PlanSpec]:
    """The cartesian product of the alternatives and the axes, in file order (last fastest)."""
    groups = list(grid.alternatives.items())
    axes = list(grid.axes.items())
    short = short_names(list(grid.axes))
    encoded = {path: column_values(values) for path, values in axes}
    choices = [range(len(options)) for _, options in groups] + [range(len(values)) for _, values in axes]
    plans = []
    for plan_id, combo in enumerate(itertools.product(*choices)):
        overrides = dict(grid.fixed)
        columns: dict[str, Any] = {}
        label = []
        for (group, options), index in zip(groups, combo[: len(groups)], strict=True):
            option = options[index]
            overrides.update(option.set)
            columns[f"alt.{group}"] = option.name
            label.append(f"{group}={option.name}")
        for (path, values), index in zip(axes, combo[len(groups) :], strict=True):
            overrides[path] = values[index]
            columns[f"set.{path}"] = encoded[path][index]
            label.append(f"{short[path]}={_text(values[index])}")
        plans.append(PlanSpec(plan_id, ", ".join(label) or "base", overrides, columns))
    return plans


def short_names(paths: list[str]) -> dict[str, str]:
    """The fewest trailing path components that tell the paths apart."""
    out = {}
    for path in paths:
        parts = path.split(".")
        for depth in range(1, len(parts) + 1):
            tail = ".".join(parts[-depth:])
            if sum(1 for p in paths if p == tail or p.endswith("." + tail)) == 1:
                break
        out[path] = tail
    return out


def column_values(values: list[Any]) -> list[Any]:
    """Values as one Parquet-friendly column: kept when all are numbers, all strings or all
    booleans; otherwise each is written as JSON text."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if numbers or all(isinstance(v, str) for v in values) or all(isinstance(v, bool) for v in values):
        return list(values)
    return [_text(v) for v in values]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(", ", ": "))


# ---------------------------------------------------------------------- applying overrides


def apply_overrides(scenario: Scenario, overrides: dict[str, Any], source: str = "overrides") -> Scenario:
    """The scenario with ``overrides`` (dotted path -> value) applied, re-validated.

    Uncertain inputs at (or under) an overridden path are dropped: a value set by the plan is
    a decision, not a draw. Raises ScenarioError for a missing path or an invalid result.
    """
    data = scenario_data(scenario)
    problems = []
    for path, value in overrides.items():
        try:
            set_by_path(data, path, copy.deepcopy(value))
        except KeyError as err:
            problems.append(Problem((path,), str(err.args[0])))
    if problems:
        raise ScenarioError(problems, source)
    data["uncertainty"] = without_overridden(data.get("uncertainty") or {}, list(overrides))
    return validate_scenario_data(data, None, source)


def without_overridden(uncertainty: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """Uncertain inputs not at or under any of ``paths``."""
    def overridden(key: str) -> bool:
        return any(key == p or key.startswith(p + ".") for p in paths)

    return {k: v for k, v in uncertainty.items() if not overridden(k)}


def problems_text(error: ScenarioError) -> str:
    """One line: ``path: message; path: message`` (the plan's row says which plan)."""
    return "; ".join(f"{p.dotted()}: {p.message}" for p in error.problems)
