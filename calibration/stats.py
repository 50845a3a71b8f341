"""How repeated timings of one point become one number (no torch here).

Timings on a shared VM only ever get slower than the machine's own speed (other tenants,
descheduled vCPUs, contended memory), and how much slower drifts over minutes: medians of the
same GEMM moved by +-15-25% between runs a minute apart on the test VM, while its minimum over
interleaved repeats stayed within ~2% (see ``calibration/benchmark_runtime.py``). The default
statistic is therefore the *lower quartile* of the interleaved repeats: a median-type order
statistic of the fastest half, robust to the contended upper half and to a single outlier.
``median`` and ``min`` are available for dedicated machines and for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Statistic = Literal["lower_quartile", "median", "min"]

#: The statistic every benchmark point and reference point uses unless told otherwise.
DEFAULT_STATISTIC: Statistic = "lower_quartile"


def summarize(samples: Sequence[float], statistic: Statistic = DEFAULT_STATISTIC) -> float:
    """One number (seconds) from repeated timings of the same work."""
    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        raise ValueError("no samples")
    if statistic == "min":
        return float(values.min())
    if statistic == "median":
        return float(np.median(values))
    return float(np.quantile(values, 0.25))
