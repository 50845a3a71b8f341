"""Layer 5, report writers: run files (CSV/Parquet/JSON), the finance workbook and plots.

Every file goes through :func:`simulator.common.files.write_atomic`. May import every layer
below it (``common`` up to ``results``); nothing imports it but ``sweep`` and the CLI.

The public functions (:mod:`simulator.report.api`, documented in ``docs/api.md``) are loaded
on first use: ``from simulator.report import write_workbook, write_html, write_plots, write_files,
write_focus, plot_monthly_spend, plot_cumulative_spend, plot_utilisation_heatmap, plot_training_gantt``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["plot_cumulative_spend", "plot_monthly_spend", "plot_training_gantt", "plot_utilisation_heatmap",
           "write_files", "write_focus", "write_html", "write_plots", "write_workbook"]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("simulator.report.api"), name)
    raise AttributeError(f"module 'simulator.report' has no attribute {name!r}")
