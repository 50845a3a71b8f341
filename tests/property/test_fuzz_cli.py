"""Fuzz: mutated bundled scenarios through the real CLI never give a traceback.

Each case takes a bundled scenario, applies a few hypothesis-drawn mutations (wrong types,
extreme or non-finite numbers, hostile strings, deleted keys, broken bytes) and runs
``fleetsim validate``. Every outcome must be exit 0, or exit 2 with each line
``FILE[:LINE]: path: message``; never a traceback or another exit code.
"""

from __future__ import annotations

import copy
import math
import os
import random

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.scenario.loading import _walk as walk
from tests.conftest import SCENARIOS

runner = CliRunner()
ODD_VALUES = [None, True, -1, 0, 1e308, -1e308, math.inf, math.nan, "", "../../etc/passwd", "x" * 300,
              [], {}, {"distribution": "normal", "mean": -5, "sd": 1}, "2027-13-45", 10**30, 0.5, "on_demand"]  # fmt: skip


def paths(data):
    """Every path into the data (the loader's own walk)."""
    return (path for path, _ in walk(data))


def mutate(data, rng: random.Random, count: int):
    for _ in range(count):
        where = rng.choice([p for p in paths(data) if p])
        parent = data
        for part in where[:-1]:
            parent = parent[part]
        if rng.random() < 0.2 and isinstance(parent, dict):
            del parent[where[-1]]
        else:
            parent[where[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
    return data


@settings(max_examples=int(os.environ.get("FLEETSIM_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=st.sampled_from(SCENARIOS), seed=st.integers(0, 2**32 - 1), count=st.integers(1, 4),
       corrupt=st.sampled_from([None, "bytes", "truncate"]))  # fmt: skip
def test_mutated_scenarios_give_a_clean_result(tmp_path_factory, scenario, seed, count, corrupt):
    rng = random.Random(seed)
    data = mutate(yaml.safe_load(scenario.read_text()), rng, count)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    if corrupt == "bytes":
        at = rng.randrange(len(text))
        text = text[:at] + bytes([rng.randrange(256)]) + text[at + 1 :]
    elif corrupt == "truncate":
        text = text[: rng.randrange(len(text))]
    path = tmp_path_factory.mktemp("fuzz") / "case.yaml"
    path.write_bytes(text)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        for line in result.output.strip().splitlines():
            if "warning:" not in line:
                assert line.startswith(str(path)), line
