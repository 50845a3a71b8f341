"""YAML parsing that remembers where each value came from.

``parse_yaml(text)`` returns the plain data and a map from path (a tuple of keys and list
indices) to the 1-based line of that key or item, so validation errors can name ``FILE:LINE``.
Floats follow YAML 1.2 (``2.0e12`` and ``1e-5`` are numbers, as users expect), duplicate keys
are errors. Parsing only: reading the file is the caller's business.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from simulator.common.errors import Problem, ScenarioError

Path = tuple[str | int, ...]

_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


#: Limits that keep a hostile file from exhausting time or memory; a scenario needs far less.
MAX_TEXT_CHARS = 5_000_000
MAX_DEPTH = 50
MAX_VALUES = 200_000
#: The only tags a scenario may carry (the YAML core schema); anything else is an error.
_KNOWN_TAGS = {f"tag:yaml.org,2002:{name}" for name in
               ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}  # fmt: skip


def parse_yaml(text: str, source: str = "<string>") -> tuple[Any, dict[Path, int]]:
    """Parse YAML text into plain data plus a path -> line map.

    Refuses (ScenarioError) text over :data:`MAX_TEXT_CHARS`, nesting deeper than
    :data:`MAX_DEPTH`, more than :data:`MAX_VALUES` values once aliases are expanded (the
    "billion laughs"), and any tag outside the core schema (``!!python/object``...).
    """
    if len(text) > MAX_TEXT_CHARS:
        raise ScenarioError([Problem((), f"file too large for a scenario ({len(text):,} characters; "
                                         f"at most {MAX_TEXT_CHARS:,})")], source)  # fmt: skip
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[Path, int] = {(): node.start_mark.line + 1}
        data = _build(loader, node, (), lines, source, [0])
        return data, lines
    except yaml.reader.ReaderError as err:  # a control character or other unreadable text
        line = text.count("\n", 0, err.position) + 1
        raise ScenarioError([Problem((), f"not valid YAML text: {err.reason} "
                                         f"(character {err.character!r})", line)], source) from None
    except RecursionError:
        raise ScenarioError([Problem((), f"nested too deeply (at most {MAX_DEPTH} levels)")], source) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        message = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise ScenarioError([Problem((), f"not valid YAML: {message}", line)], source) from None
    finally:
        if loader is not None:
            loader.dispose()


def _build(
    loader: _Loader, node: yaml.Node, path: Path, lines: dict[Path, int], source: str, count: list[int]
) -> Any:
    count[0] += 1
    line = node.start_mark.line + 1
    if count[0] > MAX_VALUES:
        raise ScenarioError([Problem(path, f"more than {MAX_VALUES:,} values once aliases are "
                                           "expanded: not a scenario", line)], source)  # fmt: skip
    if len(path) > MAX_DEPTH:
        raise ScenarioError([Problem(path[:MAX_DEPTH], f"nested too deeply (at most {MAX_DEPTH} levels)", line)], source)
    if node.tag not in _KNOWN_TAGS:
        raise ScenarioError([Problem(path, f"unknown YAML tag {node.tag!r}: only plain values, "
                                           "lists and mappings are allowed", line)], source)  # fmt: skip
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ScenarioError([Problem(path, "a mapping key must be a plain name, not a list "
                                                   "or mapping", key_node.start_mark.line + 1)], source)  # fmt: skip
            key = _build(loader, key_node, path, {}, source, count)
            if key in out:
                raise ScenarioError(
                    [Problem(path + (key,), "duplicate key", key_node.start_mark.line + 1)], source
                )
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, path + (key,), lines, source, count)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item_node in enumerate(node.value):
            lines[path + (index,)] = item_node.start_mark.line + 1
            items.append(_build(loader, item_node, path + (index,), lines, source, count))
        return items
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as err:  # e.g. a date 2027-02-30: YAML reads it, no calendar has it
        raise ScenarioError([Problem(path, f"{node.value!r} is not a valid value: {err}", line)], source) from None


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """Line of ``path`` or of its nearest ancestor that has one."""
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None
