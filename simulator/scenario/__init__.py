"""Layer 1, the scenario: the file format and the only way data enters.

Modules: ``schema`` (the pydantic models of a scenario file), ``yamlio`` (YAML with line numbers),
``loading`` (read, resolve referenced files, validate; plans; uncertain inputs), ``checks``
(cross-references, catalog names, memory fit, with file/line/field-path problems), ``paths``
(dotted paths into scenario data), ``distributions`` (token lengths and uncertain numbers),
``schedule`` (dated steps and ramps), ``resolve`` (catalog entries, profiles and cost models of a
scenario's pools and deployments).

May import ``common``, ``catalog`` and ``perf`` (memory fit and cost models need the cost model).
"""
