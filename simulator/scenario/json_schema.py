"""The scenario file's JSON Schema, for editors and ``check-jsonschema``.

Pydantic's schema of :class:`~simulator.scenario.schema.Scenario`, with the draft it follows
(``$schema``), an ``$id``, the bundled catalog's GPU and model names as ``examples`` on every
field that names one (suggestions for completion, not a closed list: a scenario may add its own
GPUs and models), and, as the loader does (:func:`~simulator.scenario.loading.extract_inline_uncertainty`),
every number may be written as a distribution (``{distribution: normal, mean: 0.05, sd: 0.02}``:
an uncertain input, run at its mean and drawn by replications).
"""

from __future__ import annotations

from typing import Any

from simulator.catalog import bundled_catalog
from simulator.scenario.schema import Scenario

#: The draft pydantic's schemas follow.
SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
#: The schema's identifier (a name, not a download address: ``fleetsim schema`` prints it, and
#: ``fleetsim init`` writes it beside a new scenario).
SCHEMA_ID = "urn:fleetsim:scenario:1"
#: The file name ``fleetsim init`` gives the schema, and its editors' modeline.
SCHEMA_FILE = "fleetsim.schema.json"
MODELINE = f"# yaml-language-server: $schema={SCHEMA_FILE}"

_GPU_FIELDS = {"gpu"}
_MODEL_FIELDS = {"model", "draft_model"}


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file."""
    schema = Scenario.model_json_schema(by_alias=True)
    catalog = bundled_catalog()
    names = {**{f: sorted(catalog.gpus) for f in _GPU_FIELDS}, **{f: sorted(catalog.models) for f in _MODEL_FIELDS}}
    definitions = schema.setdefault("$defs", {})
    uncertain = _distribution_schema(definitions)
    for definition in [schema, *definitions.values()]:
        for field, prop in definition.get("properties", {}).items():
            if field in names and _is_string(prop):
                prop["examples"] = names[field]
            if field != "uncertainty" and _is_number(prop):
                definition["properties"][field] = _or_uncertain(prop)
    definitions["UncertainNumber"] = uncertain
    return {"$schema": SCHEMA_DRAFT, "$id": SCHEMA_ID, **schema}


def _distribution_schema(definitions: dict[str, Any]) -> dict[str, Any]:
    """A number written as a distribution: the union the token-count fields use."""
    prompt = definitions["Workload"]["properties"]["prompt_tokens"]
    return {
        "description": "An uncertain number: a distribution, run at its mean and sampled by replications.",
        **{k: v for k, v in prompt.items() if k in ("discriminator", "oneOf")},
    }


def _or_uncertain(prop: dict[str, Any]) -> dict[str, Any]:
    """The property, or the same quantity as an uncertain number (its description kept)."""
    keep = {k: prop[k] for k in ("description", "title", "default", "examples") if k in prop}
    plain = {k: v for k, v in prop.items() if k not in keep}
    return {**keep, "anyOf": [plain, {"$ref": "#/$defs/UncertainNumber"}]}


def _is_number(prop: dict[str, Any]) -> bool:
    return prop.get("type") in ("number", "integer") or any(
        p.get("type") in ("number", "integer") for p in prop.get("anyOf", [])
    )


def _is_string(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "string" or any(p.get("type") == "string" for p in prop.get("anyOf", []))
