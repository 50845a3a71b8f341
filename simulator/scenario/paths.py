"""Dotted paths into scenario data: ``pools.serving.pricing`` (list items by name or index).

Plans, grids, the optimizer and uncertain inputs all address a field this way; these helpers read
and replace values in the plain data of a scenario (``scenario_data``), never in the model.
"""

from __future__ import annotations

from typing import Any

from simulator.scenario.derived import is_derived
from simulator.scenario.schema import Scenario


def get_by_path(data: Any, dotted: str) -> Any:
    """The value at a dotted path (list items by name or index); KeyError if absent."""
    node = data
    for depth, part in enumerate(dotted.split(".")):
        where = ".".join(dotted.split(".")[: depth + 1])
        if isinstance(node, dict):
            if part not in node:
                raise KeyError(f"no field {where!r}")
            node = node[part]
        elif isinstance(node, list):
            node = node[_list_index(node, part, where)]
        else:
            raise KeyError(f"no field {where!r}")
    return node


def scenario_data(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain data that validates back to an equal scenario (without its
    derived workloads: validation derives them again, :mod:`simulator.scenario.derived`)."""
    data = scenario.model_dump(mode="python", by_alias=True)
    data["workloads"] = [w for w in data["workloads"] if not is_derived(w["name"])]
    return data


def set_by_path(data: Any, dotted: str, value: Any) -> None:
    """Replace the value at ``a.b.name.c`` (list items by name or index); KeyError if absent."""
    parts = dotted.split(".")
    node = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, dict):
            if part not in node:
                known = ", ".join(sorted(map(str, node))) or "none"
                raise KeyError(f"no field {where!r} to set (fields here: {known})")
            if last:
                node[part] = value
            else:
                node = node[part]
        elif isinstance(node, list):
            index = _list_index(node, part, where)
            if last:
                node[index] = value
            else:
                node = node[index]
        else:
            raise KeyError(f"{'.'.join(parts[:depth])!r} is a value, not a section: cannot set {where!r}")


def _list_index(items: list[Any], part: str, where: str) -> int:
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    if part.isdigit() and int(part) < len(items):
        return int(part)
    names = ", ".join(str(i.get("name")) for i in items if isinstance(i, dict)) or "none"
    raise KeyError(f"no item named {part!r} at {where!r} (names: {names})")
