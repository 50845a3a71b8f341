"""Write a run's tables into a directory: summary.json, monthly.csv, hourly.parquet, ..."""

from __future__ import annotations

import json
from pathlib import Path

from simulator.common.files import write_atomic
from simulator.results.result import Result


def write_result_files(result: Result, out_dir: str | Path) -> list[Path]:
    """Write summary.json, monthly.csv, hourly.parquet, latency.csv, jobs.csv, deployments_hourly.csv, billing.csv."""
    out = Path(out_dir)
    written = []

    def target(name: str) -> Path:
        path = out / name
        written.append(path)
        return path

    write_atomic(target("summary.json"), json.dumps(result.summary, indent=2, default=str) + "\n")
    write_atomic(target("monthly.csv"), result.monthly.to_csv(index=False))
    write_atomic(target("hourly.parquet"), lambda p: result.hourly.to_parquet(p, index=False))
    write_atomic(target("latency.csv"), result.latency.to_csv(index=False))
    write_atomic(target("jobs.csv"), result.jobs.to_csv(index=False))
    write_atomic(target("deployments_hourly.csv"), result.deployments_hourly.to_csv(index=False))
    write_atomic(target("billing.csv"), result.billing.to_csv(index=False))
    return written
