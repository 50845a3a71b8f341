"""Hour-averaged occupancy arrays: GPUs held per hour of the horizon."""

from __future__ import annotations

import numpy as np

from simulator.training.jobs import SECONDS_PER_HOUR


def add_interval(hours: np.ndarray, start_s: float, end_s: float, gpus: float) -> None:
    """Add ``gpus`` held over ``[start_s, end_s)`` to ``hours`` in place, hour-averaged.

    ``hours[h]`` covers seconds ``[3600 h, 3600 (h+1))``; a partly covered hour gets the covered
    fraction of ``gpus``, so ``hours.sum()`` grows by ``gpus x (end_s - start_s) / 3600``
    (GPU-hours). The interval is clipped to the array's span.
    """
    span = len(hours) * SECONDS_PER_HOUR
    start, end = max(start_s, 0.0), min(end_s, span)
    if end <= start:
        return
    first, last = int(start // SECONDS_PER_HOUR), int(end // SECONDS_PER_HOUR)
    if first == last:
        hours[first] += gpus * (end - start) / SECONDS_PER_HOUR
        return
    hours[first] += gpus * ((first + 1) * SECONDS_PER_HOUR - start) / SECONDS_PER_HOUR
    hours[first + 1 : last] += gpus
    if last < len(hours):
        hours[last] += gpus * (end - last * SECONDS_PER_HOUR) / SECONDS_PER_HOUR
