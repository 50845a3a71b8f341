"""Request traces: arrival time, prompt tokens and output tokens of each request, from a CSV.

Accepted layouts (column names are matched case-insensitively, ignoring spaces, ``_`` and ``-``):

=================  ==========================================================================
quantity           accepted column names
=================  ==========================================================================
arrival time       ``arrival_time_s``, ``arrival_s``, ``timestamp``, ``time``, ``time_s`` ...
                   (seconds as numbers, or datetime strings such as Azure's
                   ``2023-11-16 18:15:46.6805900``); ``*_ms`` names (``timestamp_ms``,
                   ``arrival_time_ms``) are milliseconds
prompt tokens      ``prompt_tokens``, ``ContextTokens``, ``input_tokens``, ``Request tokens``,
                   ``input_length``, ``prompt_length``
output tokens      ``output_tokens``, ``GeneratedTokens``, ``Response tokens``,
                   ``completion_tokens``, ``output_length``
=================  ==========================================================================

So the Azure LLM inference traces (``TIMESTAMP,ContextTokens,GeneratedTokens``), BurstGPT
(``Timestamp,...,Request tokens,Response tokens``) and plain
``arrival_time_s,prompt_tokens,output_tokens`` files all read as they are. Datetime arrivals are
made relative to the first request (it arrives at 0 s); numeric seconds are kept as written.
Rows are sorted by arrival time. Token counts below 1 are raised to 1 (a request has at least one
prompt and one output token), as :func:`simulator.scenario.distributions.sample_token_counts` does.

:func:`parse_trace` is pure (a DataFrame in, arrays out); :func:`read_trace` is the thin I/O layer
the CLI calls. Engines take the arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.common.errors import Problem, ScenarioError

_ARRIVAL_S = ("arrivaltimes", "arrivals", "arrivaltime", "arrival", "timestamps", "timestamp",
              "times", "time", "arrivaltimesec", "timestampsec")  # fmt: skip
_ARRIVAL_MS = ("arrivaltimems", "arrivalms", "timestampms", "timems")
_PROMPT = ("prompttokens", "contexttokens", "inputtokens", "requesttokens", "inputlength",
           "promptlength", "promptlen", "inputlen", "numprompttokens")  # fmt: skip
_OUTPUT = ("outputtokens", "generatedtokens", "responsetokens", "completiontokens",
           "outputlength", "outputlen", "numoutputtokens", "decodetokens")  # fmt: skip


@dataclass(frozen=True)
class Trace:
    """Requests of a trace, sorted by arrival: parallel arrays of one entry per request."""

    arrival_s: np.ndarray  #: arrival instants, seconds, non-decreasing
    prompt_tokens: np.ndarray  #: int64, >= 1
    output_tokens: np.ndarray  #: int64, >= 1

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def span_s(self) -> float:
        """Seconds from 0 to the last arrival."""
        return float(self.arrival_s[-1]) if len(self) else 0.0

    @property
    def mean_rate_per_s(self) -> float:
        """Requests per second over the span between the first and last arrival."""
        span = float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) > 1 else 0.0
        return (len(self) - 1) / span if span > 0 else float("nan")


def _key(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _find(columns: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in columns:
            return columns[name]
    return None


def parse_trace(frame: pd.DataFrame, source: str = "<trace>") -> Trace:
    """Validate a trace table and turn it into arrays (see the module docstring for columns).

    Raises :class:`ScenarioError` naming the column or the first bad rows (line numbers count
    the header as line 1).
    """
    columns = {_key(c): str(c) for c in frame.columns}
    arrival_col = _find(columns, _ARRIVAL_S)
    arrival_ms_col = _find(columns, _ARRIVAL_MS)
    prompt_col = _find(columns, _PROMPT)
    output_col = _find(columns, _OUTPUT)
    problems = []
    found = ", ".join(map(str, frame.columns)) or "none"
    if arrival_col is None and arrival_ms_col is None:
        problems.append(Problem(("columns",), "no arrival-time column (expected e.g. "
                                f"'arrival_time_s' or 'TIMESTAMP'; found: {found})"))
    if prompt_col is None:
        problems.append(Problem(("columns",), "no prompt-token column (expected e.g. "
                                f"'prompt_tokens' or 'ContextTokens'; found: {found})"))
    if output_col is None:
        problems.append(Problem(("columns",), "no output-token column (expected e.g. "
                                f"'output_tokens' or 'GeneratedTokens'; found: {found})"))
    if problems:
        raise ScenarioError(problems, source)
    if len(frame) == 0:
        raise ScenarioError([Problem((), "the trace has no rows")], source)

    if arrival_col is not None:
        arrival = _arrival_seconds(frame[arrival_col], arrival_col, source)
    else:
        arrival = _numbers(frame[arrival_ms_col], str(arrival_ms_col), source) / 1000.0
    prompt = _numbers(frame[prompt_col], str(prompt_col), source)
    output = _numbers(frame[output_col], str(output_col), source)
    for name, values in ((prompt_col, prompt), (output_col, output)):
        bad = np.flatnonzero(values < 0)
        if len(bad):
            raise ScenarioError([Problem((str(name),), f"negative token count in {_rows(bad)}")],
                                source)
    bad = np.flatnonzero(arrival < 0)
    if len(bad):
        raise ScenarioError([Problem((str(arrival_col or arrival_ms_col),),
                                     f"negative arrival time in {_rows(bad)}")], source)
    order = np.argsort(arrival, kind="stable")
    return Trace(
        arrival_s=arrival[order].astype(float),
        prompt_tokens=np.maximum(1, np.rint(prompt[order])).astype(np.int64),
        output_tokens=np.maximum(1, np.rint(output[order])).astype(np.int64),
    )


def _rows(index: np.ndarray) -> str:
    lines = ", ".join(str(int(i) + 2) for i in index[:5])
    more = f" and {len(index) - 5} more" if len(index) > 5 else ""
    return f"line{'s' if len(index) > 1 else ''} {lines}{more}"


def _numbers(column: pd.Series, name: str, source: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise ScenarioError([Problem((name,), f"expected a number in {_rows(bad)}")], source)
    return values


def _arrival_seconds(column: pd.Series, name: str, source: str) -> np.ndarray:
    """Numbers are seconds; otherwise datetimes, made relative to the earliest."""
    numeric = pd.to_numeric(column, errors="coerce")
    if numeric.notna().all():
        return _numbers(column, name, source)
    stamps = pd.to_datetime(column.astype(str), errors="coerce", format="ISO8601")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        raise ScenarioError(
            [Problem((name,), f"expected seconds or a datetime like '2023-11-16 18:15:46.68' "
                              f"in {_rows(bad)}")], source)  # fmt: skip
    return (stamps - stamps.min()).dt.total_seconds().to_numpy(dtype=float)


def read_trace(path: str | Path) -> Trace:
    """Read a trace CSV (I/O only; :func:`parse_trace` does the checking)."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ScenarioError([Problem(("trace",), "file not found")], str(path)) from None
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ScenarioError([Problem(("trace",), f"cannot read the CSV: {err}")], str(path)) from None
    return parse_trace(frame, str(path))
