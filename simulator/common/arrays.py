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
