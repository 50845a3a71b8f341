"""Regenerate tests/data/unscheduled_summaries.json: python tests/data/make_unscheduled_summaries.py . > tests/data/unscheduled_summaries.json

Summaries of every bundled scenario without schedules (6 months, closed-form M/M/1 curves), taken
before scheduled changes existed, with serving failures off (as before they were modelled);
test_fleet_schedules checks that they still come out the same.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from simulator.results.runner import plan_names, run
from simulator.scenario.loading import load_scenario
from tests.synthetic import mm1_provider, without_failures

out = {}
for path in sorted(Path(sys.argv[1], "scenarios").glob("*.yaml")):
    s = load_scenario(path)
    s = without_failures(s.model_copy(update={"horizon": s.horizon.model_copy(update={"months": 6})}))
    for plan in plan_names(s):
        out[f"{path.stem}:{plan}"] = run(s, plan=plan, curve_provider=mm1_provider(2.0, 3000)).summary
print(json.dumps(out, indent=1, sort_keys=True, default=str))
