"""Write a run's tables into a directory: summary.json, monthly.csv, hourly.parquet, ..."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from simulator.common.files import write_atomic
from simulator.results.result import Result


def finite(data: Any) -> Any:
    """``data`` with every non-finite float as None, so the JSON written is valid JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data


def write_result_files(result: Result, out_dir: str | Path, within: str | Path | None = None) -> list[Path]:
    """Write summary.json, monthly.csv, hourly.parquet, latency.csv, jobs.csv, deployments_hourly.csv,
    billing.csv into ``out_dir``, never outside ``within`` (default: ``out_dir``)."""
    out = Path(out_dir)
    root = out if within is None else Path(within)
    written = []

    def write(path: Path, content) -> None:
        write_atomic(path, content, within=root)

    def target(name: str) -> Path:
        path = out / name
        written.append(path)
        return path

    write(target("summary.json"), json.dumps(finite(result.summary), indent=2, default=str, allow_nan=False) + "\n")
    write(target("monthly.csv"), result.monthly.to_csv(index=False))
    write(target("hourly.parquet"), lambda p: result.hourly.to_parquet(p, index=False))
    write(target("latency.csv"), result.latency.to_csv(index=False))
    write(target("jobs.csv"), result.jobs.to_csv(index=False))
    write(target("deployments_hourly.csv"), result.deployments_hourly.to_csv(index=False))
    write(target("billing.csv"), result.billing.to_csv(index=False))
    return written
