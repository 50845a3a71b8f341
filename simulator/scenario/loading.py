"""Reading scenario and profile files: the one place scenario data enters from disk.

``load_scenario(path)`` parses the YAML (keeping line numbers), reads the files it references
(empirical CSV columns, calibration profiles given by path) and validates the whole.
``scenario_for_plan`` applies a plan's ``set:`` overrides by dotted path and re-validates.
"""

from __future__ import annotations

import copy
from pathlib import Path as FsPath
from typing import Any

import yaml
from pydantic import ValidationError

from simulator.common.errors import Problem, ScenarioError
from simulator.perf.profile import CalibrationProfile
from simulator.scenario.checks import display_path, validate_scenario_data
from simulator.scenario.paths import get_by_path, scenario_data, set_by_path
from simulator.scenario.schema import Scenario
from simulator.scenario.yamlio import Path, line_of, parse_yaml


def read_text(path: str | FsPath) -> str:
    """File contents, or a ScenarioError naming the file."""
    try:
        raw = FsPath(path).read_bytes()
    except OSError as err:
        raise ScenarioError([Problem((), f"cannot read file: {err.strerror or err}")], str(path)) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte-order mark
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError([Problem((), f"not UTF-8 text (byte {err.start}); save the file as UTF-8")],
                            str(path)) from None  # fmt: skip


def load_scenario(path: str | FsPath) -> Scenario:
    """Read, resolve and validate a scenario file."""
    source = str(path)
    data, lines = parse_yaml(read_text(path), source)
    if not isinstance(data, dict):
        raise ScenarioError([Problem((), "expected a mapping of scenario fields at the top")], source)
    base_dir = FsPath(path).parent
    problems: list[Problem] = []
    for where, dist in _empirical_distributions(data):
        _load_empirical(dist, where, base_dir, lines, problems)
    for where, holder in _calibration_refs(data):
        _load_profile_ref(holder, where, base_dir, lines, problems)
    problems += extract_inline_uncertainty(data, lines)
    if problems:
        shown = [Problem(display_path(p.path, data), p.message, p.line) for p in problems]
        raise ScenarioError(shown, source)
    scenario = validate_scenario_data(data, lines, source)
    scenario._source = (source, lines)
    return scenario


def _list_at(data: dict[str, Any], key: str) -> list[Any]:
    """``data[key]`` where it is a list (anything else is for validation to report)."""
    value = data.get(key)
    return value if isinstance(value, list) else []


def _empirical_distributions(data: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for i, workload in enumerate(_list_at(data, "workloads")):
        if not isinstance(workload, dict):
            continue
        for key in ("prompt_tokens", "output_tokens"):
            dist = workload.get(key)
            if isinstance(dist, dict) and dist.get("distribution") == "empirical":
                found.append((("workloads", i, key), dist))
        stages = [(("retrieval",), workload.get("retrieval"))]
        stages += [(("stages", j), s) for j, s in enumerate(_list_at(workload, "stages"))]
        for where, stage in stages:
            dist = stage.get("latency_ms") if isinstance(stage, dict) else None
            if isinstance(dist, dict) and dist.get("distribution") == "empirical":
                found.append((("workloads", i, *where, "latency_ms"), dist))
    return found


def _load_empirical(
    dist: dict[str, Any], where: Path, base_dir: FsPath, lines: dict[Path, int], problems: list[Problem]
) -> None:
    if "values" in dist or "path" not in dist or "column" not in dist:
        return  # validation reports what is missing
    csv_path = base_dir / str(dist["path"])
    try:
        import pandas as pd  # only for empirical distributions: keeps `fleetsim --help` light

        frame = pd.read_csv(csv_path, usecols=[dist["column"]])
    except (OSError, ValueError) as err:
        problems.append(
            Problem(where + ("path",), f"cannot read column {dist['column']!r} of {csv_path}: {err}",
                    line_of(lines, where + ("path",)))
        )
        return
    values = pd.to_numeric(frame[dist["column"]], errors="coerce").dropna()
    if values.empty:
        problems.append(
            Problem(where + ("column",), f"column {dist['column']!r} of {csv_path} has no numbers",
                    line_of(lines, where + ("column",)))
        )
        return
    dist["values"] = tuple(float(v) for v in values)


def _calibration_refs(data: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    refs = [((), data)]
    refs += [(("pools", i), p) for i, p in enumerate(_list_at(data, "pools")) if isinstance(p, dict)]
    return [(where, holder) for where, holder in refs if _is_profile_path(holder.get("calibration"))]


def _is_profile_path(value: Any) -> bool:
    return isinstance(value, str) and (value.endswith((".yaml", ".yml")) or "/" in value)


def _load_profile_ref(
    holder: dict[str, Any], where: Path, base_dir: FsPath, lines: dict[Path, int], problems: list[Problem]
) -> None:
    path = base_dir / holder["calibration"]
    try:
        holder["calibration"] = load_profile(path)
    except ScenarioError as err:
        for p in err.problems:
            problems.append(
                Problem(where + ("calibration",), f"in {path}: {p.dotted()}: {p.message}",
                        line_of(lines, where + ("calibration",)))
            )


def load_profile(path: str | FsPath) -> CalibrationProfile:
    """Read and validate a calibration profile YAML file."""
    source = str(path)
    data, lines = parse_yaml(read_text(path), source)
    try:
        return CalibrationProfile.model_validate(data)
    except ValidationError as err:
        problems = [
            Problem(tuple(e["loc"]), e["msg"], line_of(lines, tuple(e["loc"]))) for e in err.errors()
        ]
        raise ScenarioError(problems, source) from None


# ---------------------------------------------------------------------- uncertainty

#: Fields whose value is itself a distribution (not an uncertain number).
#: fields whose value is a distribution, not an uncertain number (latency_ms: retrieval, stages; turns:
#: sessions); a plan's dotted key ("workloads.chat.prompt_tokens") counts by its last part
_DISTRIBUTION_FIELDS = {"prompt_tokens", "output_tokens", "latency_ms", "turns"}


def extract_inline_uncertainty(data: dict[str, Any], lines: dict[Path, int]) -> list[Problem]:
    """Move numbers written as ``{distribution: ...}`` into ``uncertainty:`` by dotted path.

    The field keeps the distribution's mean so the scenario validates and runs as one
    deterministic case; replications draw from ``uncertainty``.
    """
    from pydantic import TypeAdapter

    from simulator.scenario.distributions import Distribution

    adapter = TypeAdapter(Distribution)
    problems: list[Problem] = []
    found: dict[str, Any] = {}
    for path, value in list(_walk(data)):
        if not (isinstance(value, dict) and "distribution" in value) or (
            path and str(path[-1]).rsplit(".", 1)[-1] in _DISTRIBUTION_FIELDS
        ):
            continue
        if path and path[0] == "uncertainty":
            continue
        try:
            dist = adapter.validate_python(value)
        except ValidationError as err:
            for e in err.errors():
                problems.append(Problem(path + tuple(e["loc"]), e["msg"], line_of(lines, path)))
            continue
        found[_named_path(data, path)] = value
        _set_raw(data, path, dist.mean)
    if found:
        data.setdefault("uncertainty", {})
        if isinstance(data["uncertainty"], dict):
            data["uncertainty"].update(found)
    return problems


def _walk(node: Any, path: Path = ()) -> Any:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, path + (index,))


def _named_path(data: Any, path: Path) -> str:
    from simulator.scenario.checks import display_path

    return ".".join(str(p) for p in display_path(path, data))


def _set_raw(data: Any, path: Path, value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def sample_scenario(scenario: Scenario, rng: Any) -> Scenario:
    """A copy of the scenario with every uncertain input drawn once from its distribution.

    Integer fields get the draw rounded; the result is validated like any scenario.
    """
    if not scenario.uncertainty:
        return scenario
    data = scenario_data(scenario)
    for dotted, dist in scenario.uncertainty.items():
        value = float(dist.sample(rng, 1)[0])
        current = get_by_path(data, dotted)
        set_by_path(data, dotted, round(value) if isinstance(current, int) else value)
    return validate_scenario_data(data, None, f"{scenario.name} (sampled inputs)")


# ---------------------------------------------------------------------- plans


def scenario_for_plan(scenario: Scenario, plan: str | None) -> Scenario:
    """The scenario with plan ``plan``'s overrides applied (``None``/'base': as written)."""
    if plan in (None, "base"):
        return scenario
    try:
        chosen = scenario.plan(plan)
    except KeyError as err:
        source, lines = scenario._source if scenario._source else (f"scenario {scenario.name!r}", {})
        raise ScenarioError([Problem(("plans",), str(err.args[0]), line_of(lines, ("plans",)))], source) from None
    data = scenario_data(scenario)
    problems = []
    for dotted, value in chosen.set.items():
        try:
            set_by_path(data, dotted, copy.deepcopy(value))
        except KeyError as err:
            problems.append(Problem(("plans", plan, "set", dotted), str(err.args[0])))
    if problems:
        located = [(str(p.path[-1]), p.message) for p in problems]
        raise _at_overrides(scenario, plan, located, problems, f"plan {plan!r}")
    try:
        planned = validate_scenario_data(data, None, f"plan {plan!r}")
    except ScenarioError as err:
        located = [(_override_of(chosen.set, p),
                    f"{p.dotted()}: {p.message}" if p.path[:1] == ("plans",)
                    else f"after the plan's overrides: {p.dotted()}: {p.message}")
                   for p in err.problems]  # fmt: skip
        raise _at_overrides(scenario, plan, located, err.problems, f"plan {plan!r} (after its overrides)") from None
    planned._source = scenario._source
    return planned


def _override_of(overrides: dict[str, Any], problem: Problem) -> str | None:
    """The plan override (dotted path) a problem after the overrides comes from, if one does."""
    where = problem.dotted()
    matches = [d for d in overrides if where == d or where.startswith(d + ".") or d.startswith(where + ".")]
    return max(matches, key=len) if matches else None


def _at_overrides(
    scenario: Scenario, plan: str, located: list[tuple[str | None, str]], problems: list[Problem], fallback: str
) -> ScenarioError:
    """A plan's problems at the file and line of the override behind each, ``located`` as
    (override dotted path or None, message); a scenario not read from a file keeps
    ``problems`` as they are, under ``fallback``."""
    if scenario._source is None:
        return ScenarioError(problems, fallback)
    source, lines = scenario._source
    index = next(i for i, p in enumerate(scenario.plans) if p.name == plan)
    return ScenarioError([
        Problem(("plans", plan, "set", dotted) if dotted else ("plans", plan), message,
                line_of(lines, ("plans", index, "set", dotted) if dotted else ("plans", index)))
        for dotted, message in located
    ], source)  # fmt: skip


def dump_yaml(data: Any) -> str:
    """YAML text of plain data (for plans the user can paste)."""
    return yaml.safe_dump(data, sort_keys=False)
