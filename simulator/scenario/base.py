"""The base of every scenario model and the pattern of names, shared by the schema's modules
(:mod:`simulator.scenario.schema`, :mod:`simulator.scenario.stages`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: Names of pools, deployments, workloads, training jobs and plans become parts of file names
#: (``run --all-plans`` folders, plot files) and workbook names: letters, digits, '.', '_' and
#: '-', starting with a letter or digit, at most 64 characters.
Name = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
          description="Letters, digits, '.', '_', '-' (starting with a letter or digit), at most 64 characters."),
]  # fmt: skip


class Strict(BaseModel):
    """Base of every scenario model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
