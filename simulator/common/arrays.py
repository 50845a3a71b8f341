"""Small array helpers shared by the projection, pricing and results."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def divide(numerator: ArrayLike, denominator: ArrayLike, where_zero: ArrayLike = 0.0) -> np.ndarray:
    """numerator / denominator elementwise, ``where_zero`` where the denominator is not > 0."""
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    positive = den > 0
    return np.where(positive, num / np.where(positive, den, 1.0), where_zero)


def shifted(values: np.ndarray, hours: int) -> np.ndarray:
    """values[h - hours] for each h, the first value held before the start."""
    if hours == 0 or len(values) == 0:
        return values.copy()
    out = np.empty_like(values)
    out[:hours] = values[0]
    out[hours:] = values[: max(len(values) - hours, 0)]
    return out


def trailing_max(values: np.ndarray, hours: int) -> np.ndarray:
    """max(values[h - hours .. h]) for each h (the first value held before the start)."""
    values = np.asarray(values, dtype=float)
    out = values.copy()
    for lag in range(1, min(hours, len(out)) + 1):
        out = np.maximum(out, shifted(values, lag))
    return out


def window_max(values: np.ndarray, hours: float) -> np.ndarray:
    """Hour-averaged max of a step function over the trailing ``hours`` (fractional allowed):
    with hours = k + f, (1 - f) x trailing_max(k) + f x trailing_max(k + 1)."""
    k = int(np.floor(hours))
    f = hours - k
    base = trailing_max(values, k)
    return base if f == 0 else base + f * (trailing_max(values, k + 1) - base)  # exact where flat
