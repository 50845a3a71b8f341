"""Distributions of token counts and other scenario inputs.

Each is a pydantic model chosen by ``distribution:`` (a discriminated union), with its analytic
``mean`` and ``variance`` so tests can check samples against theory, and ``sample(rng, n)``.
No distribution is ever bent (no clipping that changes its mean) except where its docstring says.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @property
    def mean(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def variance(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class Fixed(_Dist):
    """Always ``value``."""

    distribution: Literal["fixed"] = Field(default="fixed", description="Distribution kind 'fixed': always value.")
    value: float = Field(description="The constant, in the unit of the field it stands for (e.g. tokens, ms).")

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value, dtype=float)


class Uniform(_Dist):
    """Uniform on [low, high]."""

    distribution: Literal["uniform"] = Field(description="Distribution kind 'uniform': uniform on [low, high].")
    low: float = Field(description="Lower bound, in the unit of the field it stands for.")
    high: float = Field(description="Upper bound (>= low), in the unit of the field it stands for.")

    @model_validator(mode="after")
    def _order(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high (={self.high}) must be >= low (={self.low})")
        return self

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def variance(self) -> float:
        return (self.high - self.low) ** 2 / 12

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


class Normal(_Dist):
    """Normal with ``mean`` and standard deviation ``sd``."""

    distribution: Literal["normal"] = Field(description="Distribution kind 'normal': Gaussian with mean and sd.")
    mean_value: float = Field(alias="mean", description="Mean, in the unit of the field it stands for.")
    sd: float = Field(ge=0, description="Standard deviation (>= 0), in the unit of the field it stands for.")

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def variance(self) -> float:
        return self.sd**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(self.mean_value, self.sd, n)


class Lognormal(_Dist):
    """Lognormal given by its arithmetic ``mean`` and the sd ``sigma`` of its logarithm.

    mu = ln(mean) - sigma^2 / 2, so the samples' mean is ``mean``.
    """

    distribution: Literal["lognormal"] = Field(
        description="Distribution kind 'lognormal': given by its mean and sigma."
    )
    mean_value: float = Field(
        alias="mean", gt=0, description="Arithmetic mean of the samples (> 0), in the unit of the field it stands for."
    )
    sigma: float = Field(ge=0, description="Standard deviation of the samples' natural logarithm (unitless, >= 0).")

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    @property
    def mu(self) -> float:
        return math.log(self.mean_value) - self.sigma**2 / 2

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def variance(self) -> float:
        return (math.exp(self.sigma**2) - 1) * self.mean_value**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, n)


class Exponential(_Dist):
    """Exponential with the given ``mean``."""

    distribution: Literal["exponential"] = Field(description="Distribution kind 'exponential': given by its mean.")
    mean_value: float = Field(alias="mean", gt=0, description="Mean (> 0), in the unit of the field it stands for.")

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    @property
    def mean(self) -> float:
        return self.mean_value

    @property
    def variance(self) -> float:
        return self.mean_value**2

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean_value, n)


class Empirical(_Dist):
    """Resampled (with replacement) from a column of a CSV file.

    ``path`` is relative to the scenario file. The loader reads the column into ``values``; a
    distribution built in Python may give ``values`` directly.
    """

    distribution: Literal["empirical"] = Field(
        description="Distribution kind 'empirical': resampled from a CSV column or a list of values."
    )
    path: str | None = Field(default=None, description="CSV file, relative to the scenario file (with column).")
    column: str | None = Field(default=None, description="Name of the CSV column holding the values (with path).")
    values: tuple[float, ...] | None = Field(
        default=None, description="The values themselves, in the field's unit (instead of path and column)."
    )

    @model_validator(mode="after")
    def _source(self) -> Empirical:
        if self.values is None and (self.path is None or self.column is None):
            raise ValueError("empirical needs 'path' and 'column' (or 'values')")
        if self.values is not None and len(self.values) == 0:
            raise ValueError("empirical 'values' is empty")
        return self

    def _array(self) -> np.ndarray:
        if self.values is None:
            raise ValueError(f"empirical distribution from {self.path!r} was not loaded")
        return np.asarray(self.values, dtype=float)

    @property
    def mean(self) -> float:
        return float(self._array().mean())

    @property
    def variance(self) -> float:
        return float(self._array().var())

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(self._array(), size=n, replace=True)


Distribution = Annotated[
    Fixed | Uniform | Normal | Lognormal | Exponential | Empirical,
    Field(discriminator="distribution"),
]


def sample_token_counts(dist: _Dist, rng: np.random.Generator, n: int) -> np.ndarray:
    """Token counts: samples rounded to integers, at least 1 (a request has >= 1 token)."""
    return np.maximum(1, np.rint(dist.sample(rng, n))).astype(np.int64)
