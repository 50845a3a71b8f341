"""Profiles on disk: build one from a calibration run, write it atomically, read it back.

A measured profile holds the device, torch version, date, fitted parameters, the fit's MAPE,
and under ``measurements:`` the raw points, the run's settings, the per-group fit errors and,
when the reference check ran, its per-point accuracy. Written files are validated with
:func:`simulator.scenario.loading.load_profile` (the scenario-file rules) before they replace the target.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from calibration.accuracy import AccuracyReport
from calibration.fit import FitResult
from calibration.records import Measurements
from simulator.common.errors import Problem, ScenarioError
from simulator.common.files import OutputError, write_atomic
from simulator.perf.profile import CalibrationProfile, bundled_profile, bundled_profile_names


def build_profile(
    name: str,
    gpu: str,
    measurements: Measurements,
    fit: FitResult,
    accuracy: AccuracyReport | None = None,
    today: date | None = None,
) -> CalibrationProfile:
    """The measured profile of one calibration run (parameters to 4 significant digits)."""
    settings = measurements.settings
    data: dict[str, Any] = {"fit": fit.summary(), **measurements.to_data()}
    if accuracy is not None:
        data["accuracy"] = accuracy.summary()
    parameters = fit.parameters.model_copy(
        update={
            k: float(f"{v:.4g}")
            for k, v in fit.parameters.model_dump().items()
            if isinstance(v, float)
        }
    )
    return CalibrationProfile(
        name=name,
        gpu=gpu,
        device=str(settings.get("device", "unknown")),
        source="measured",
        torch_version=settings.get("torch_version"),
        date=(today or date.today()).isoformat(),
        parameters=parameters,
        fit_mape=round(fit.mape, 3),
        measurements=data,
    )


def with_accuracy(profile: CalibrationProfile, accuracy: AccuracyReport) -> CalibrationProfile:
    """``profile`` with the reference check's results stored in its measurements."""
    measurements = {**profile.measurements, "accuracy": accuracy.summary()}
    return profile.model_copy(update={"measurements": measurements})


class _Dumper(yaml.SafeDumper):
    """Block style, except one line per measured point and per list of numbers."""


class _FlowDict(dict):  # type: ignore[type-arg]
    """A mapping written on one line."""


class _FlowList(list):  # type: ignore[type-arg]
    """A list written on one line."""


def _scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list, tuple))


def _flowed(data: Any) -> Any:
    """``data`` with lists of numbers and the points in lists marked for one-line output."""
    if isinstance(data, dict):
        return {k: _flowed(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        if data and all(_scalar(v) for v in data):
            return _FlowList(data)
        if data and all(isinstance(v, dict) for v in data):
            return [_FlowDict(_flowed(v)) for v in data]
        return [_flowed(v) for v in data]
    return data


_Dumper.add_representer(
    _FlowDict, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True)
)
_Dumper.add_representer(
    _FlowList, lambda d, data: d.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def profile_yaml(profile: CalibrationProfile, comment: str = "") -> str:
    """YAML text of ``profile``, led by ``comment`` as ``#`` lines."""
    header = "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines())
    body = yaml.dump(_flowed(profile.model_dump(mode="json")), Dumper=_Dumper, sort_keys=False,
                     width=4096, allow_unicode=True)  # fmt: skip
    return header + body


def write_profile(profile: CalibrationProfile, path: str | Path, comment: str = "") -> Path:
    """Write ``profile`` to ``path`` atomically (:func:`simulator.common.files.write_atomic`).

    The temp file is validated as a profile first; on any error the target is left untouched.
    """
    from simulator.scenario.loading import load_profile

    def write(temp: Path) -> None:
        temp.write_text(profile_yaml(profile, comment), encoding="utf-8")
        load_profile(temp)

    try:
        return write_atomic(path, write)
    except OutputError as error:
        raise ScenarioError([Problem((), str(error))], str(path)) from None


def read_profile(ref: str | Path) -> CalibrationProfile:
    """A profile by file path, or by the name of a bundled profile; ScenarioError if neither."""
    from simulator.scenario.loading import load_profile

    text = str(ref)
    if Path(text).is_file() or text.endswith((".yaml", ".yml")) or os.sep in text:
        return load_profile(text)
    try:
        return bundled_profile(text)
    except KeyError:
        raise ScenarioError([Problem((), f"no profile file or bundled profile {text!r} "
                                         f"(bundled: {', '.join(bundled_profile_names())})")],
                            text) from None  # fmt: skip
