"""``fleetsim calibrate --fit RESULTS``: fit a GPU profile to measured serving figures.

Reads the results (CSV rows in the layout of ``serving_calibration.csv``, or one
``vllm bench serve`` JSON), replays each figure in the serving engine
(:mod:`calibration.serving`), fits the profile and writes it (atomic), printing every row's
error before and after. No PyTorch.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

from simulator.cli.options import err, out, print_json, table, user_errors
from simulator.common.errors import Problem, ScenarioError


def _fail(message: str, where: str) -> ScenarioError:
    return ScenarioError([Problem((), message)], where)


def _read_cases(path: Path, gpu: str, model: str | None, dtype: str | None, tp: int) -> list[Any]:
    from calibration.serving import CaseError, cases_from_rows, cases_from_vllm_bench

    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(f"cannot read results: {error}", str(path)) from None
    try:
        if path.suffix.lower() == ".json":
            if model is None:
                raise CaseError("a vllm bench JSON needs --model (and --dtype, --tp)")
            try:
                result = json.loads(text)
            except json.JSONDecodeError as error:
                raise CaseError(f"not JSON: {error}") from None
            if not isinstance(result, dict):
                raise CaseError("expected one JSON object (a vllm bench serve result)")
            return cases_from_vllm_bench(result, gpu, model, dtype or "bf16", tp, path.name)
        rows = list(csv.DictReader(text.splitlines()))
        cases = cases_from_rows(rows, path.name)
    except CaseError as error:
        raise _fail(str(error), str(path)) from None
    mine = [c for c in cases if c.gpu == gpu]
    if not mine:
        found = ", ".join(sorted({c.gpu for c in cases})) or "none"
        raise _fail(f"no row is for GPU {gpu!r} (rows are for: {found})", str(path))
    return mine


def fit_command(results: Path, gpu: str | None, base_ref: str | None, model: str | None,
                dtype: str | None, tp: int, parameters: str | None, output: Path | None,
                name: str | None, as_json: bool) -> None:  # fmt: skip
    """Fit, print and write; bad input is one message and exit 2 (user_errors)."""
    from calibration.profile_io import read_profile, write_profile
    from calibration.serving import (
        DEFAULT_FIT_PARAMETERS,
        GPU_ALIASES,
        CaseError,
        fit_profiles,
        replayable,
    )
    from simulator.catalog import bundled_catalog
    from simulator.perf.profile import CalibrationProfile

    with user_errors():
        if gpu is None:
            raise _fail("--fit needs --gpu (the catalog GPU whose profile is fitted)", "fleetsim calibrate")
        gpu = GPU_ALIASES.get(gpu, gpu)
        if gpu not in bundled_catalog().gpus:
            raise _fail(f"unknown GPU {gpu!r} (catalog: {', '.join(sorted(bundled_catalog().gpus))})",
                        "fleetsim calibrate")  # fmt: skip
        cases = _read_cases(results, gpu, model, dtype, tp)
        start = read_profile(base_ref or gpu)
        cases, skipped = replayable(cases, lambda _: start.parameters)
        for why in skipped:
            err.print(f"skipped {why}", markup=False)
        if not cases:
            raise _fail("no row can be replayed (see the lines above)", str(results))
        names = tuple(n.strip() for n in parameters.split(",")) if parameters else DEFAULT_FIT_PARAMETERS
        try:
            fit = fit_profiles(cases, {gpu: start.parameters}, per_gpu=names)
        except (CaseError, ValueError) as error:
            raise _fail(str(error), str(results)) from None
        fitted = fit.parameters[gpu]
        rows = [{"case": b.case.case, "metric": b.case.metric, "measured": b.case.value,
                 "before": round(b.predicted, 4), "after": round(a.predicted, 4),
                 "error_before_pct": round(b.error_pct, 2), "error_after_pct": round(a.error_pct, 2)}
                for b, a in zip(fit.before.results, fit.after.results)]  # fmt: skip
        areas = {area: {"before_mape_pct": round(fit.before.mape(area), 2),
                        "after_mape_pct": round(fit.after.mape(area), 2)}
                 for area in fit.after.areas()}  # fmt: skip
        profile = CalibrationProfile(
            name=name or (output.stem if output else f"{gpu}-fitted"), gpu=gpu, device=start.device,
            source="published", date=date.today().isoformat(), parameters=fitted,
            fit_mape=round(fit.after.mape(), 2),
            measurements={"fitted_to": results.name, "fitted_parameters": list(fit.fitted),
                          "rows": rows, "areas": areas},
        )  # fmt: skip
        target = output or Path(f"{profile.name}.yaml")
        comment = (f"Fitted by `fleetsim calibrate --fit {results.name} --gpu {gpu}` from profile "
                   f"{start.name}: MAPE {fit.before.mape():.1f}% -> {fit.after.mape():.1f}% over "
                   f"{len(cases)} published/measured serving figures.")  # fmt: skip
        write_profile(profile, target, comment)
    if as_json:
        print_json({"profile": str(target), "parameters": fitted.model_dump(), "rows": rows,
                    "areas": areas, "mape_before_pct": round(fit.before.mape(), 2),
                    "mape_after_pct": round(fit.after.mape(), 2)})  # fmt: skip
        return
    out.print(table(f"Fit of {gpu} to {results.name} ({len(cases)} figures)",
                    ["case", "metric", "measured", "before", "after", "error before", "error after"],
                    [[r["case"], r["metric"], f"{r['measured']:.4g}", f"{r['before']:.4g}",
                      f"{r['after']:.4g}", f"{r['error_before_pct']:+.1f}%",
                      f"{r['error_after_pct']:+.1f}%"] for r in rows]))  # fmt: skip
    for area, v in areas.items():
        out.print(f"{area}: MAPE {v['before_mape_pct']:.1f}% -> {v['after_mape_pct']:.1f}%")
    moved = ", ".join(f"{n} {getattr(start.parameters, n)} -> {getattr(fitted, n):.4g}"
                      for n in (f.rpartition('.')[2] for f in fit.fitted))  # fmt: skip
    out.print(f"fitted: {moved or 'nothing (no parameter is exercised by these rows)'}")
    err.print(f"wrote {target}", markup=False)
