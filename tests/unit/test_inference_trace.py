"""Trace files: the common public layouts read as they are; bad files give clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.common.errors import ScenarioError
from simulator.inference.trace import parse_trace, read_trace
from tests.conftest import SHARED_TRACE


def test_azure_layout_with_datetimes(tmp_path):
    path = tmp_path / "azure.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:51.2224670,879,55\n"
    )
    trace = read_trace(path)
    np.testing.assert_allclose(trace.arrival_s, [0.0, 4.314579, 4.541877], atol=1e-6)
    assert trace.prompt_tokens.tolist() == [374, 396, 879]
    assert trace.output_tokens.tolist() == [44, 109, 55]
    assert trace.span_s == pytest.approx(4.541877)


def test_plain_seconds_layout_sorted_and_clamped():
    frame = pd.DataFrame({"arrival_time_s": [2.0, 0.5, 1.0], "prompt_tokens": [10, 0, 30],
                          "output_tokens": [5, 6, 0]})  # fmt: skip
    trace = parse_trace(frame)
    assert trace.arrival_s.tolist() == [0.5, 1.0, 2.0]
    assert trace.prompt_tokens.tolist() == [1, 30, 10]  # 0 raised to 1
    assert trace.output_tokens.tolist() == [6, 1, 5]
    assert trace.mean_rate_per_s == pytest.approx(2 / 1.5)


@pytest.mark.parametrize(
    "columns",
    [("Timestamp", "Request tokens", "Response tokens"),  # BurstGPT
     ("time", "input_tokens", "output_tokens"),
     ("arrival_s", "input_length", "output_length"),
     ("TIMESTAMP", "context_tokens", "generated_tokens")],
)  # fmt: skip
def test_column_aliases(columns):
    frame = pd.DataFrame({columns[0]: [0.0, 1.5], columns[1]: [100, 200], columns[2]: [7, 8]})
    trace = parse_trace(frame)
    assert trace.arrival_s.tolist() == [0.0, 1.5]
    assert trace.prompt_tokens.tolist() == [100, 200]
    assert trace.output_tokens.tolist() == [7, 8]


def test_milliseconds_column():
    frame = pd.DataFrame({"timestamp_ms": [0, 1500], "prompt_tokens": [1, 2], "output_tokens": [3, 4]})
    assert parse_trace(frame).arrival_s.tolist() == [0.0, 1.5]


def test_missing_columns_are_named():
    frame = pd.DataFrame({"when": [1.0], "prompt_tokens": [1]})
    with pytest.raises(ScenarioError) as err:
        parse_trace(frame, "t.csv")
    text = err.value.format()
    assert "no arrival-time column" in text and "no output-token column" in text
    assert "found: when, prompt_tokens" in text


@pytest.mark.parametrize(
    ("frame", "message"),
    [(pd.DataFrame({"arrival_time_s": [0.0, "x"], "prompt_tokens": [1, 2], "output_tokens": [1, 2]}),
      "expected seconds or a datetime"),
     (pd.DataFrame({"arrival_time_s": [0.0, 1.0], "prompt_tokens": [1, "lots"], "output_tokens": [1, 2]}),
      "prompt_tokens: expected a number in line 3"),
     (pd.DataFrame({"arrival_time_s": [0.0, -1.0], "prompt_tokens": [1, 2], "output_tokens": [1, 2]}),
      "negative arrival time in line 3"),
     (pd.DataFrame({"arrival_time_s": [0.0], "prompt_tokens": [1], "output_tokens": [-2]}),
      "negative token count"),
     (pd.DataFrame({"arrival_time_s": [], "prompt_tokens": [], "output_tokens": []}), "no rows")],
)  # fmt: skip
def test_bad_values(frame, message):
    with pytest.raises(ScenarioError, match=message):
        parse_trace(frame)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="file not found"):
        read_trace(tmp_path / "absent.csv")


@pytest.mark.skipif(not SHARED_TRACE.exists(), reason="shared Azure trace not present")
def test_real_azure_conversation_trace():
    trace = read_trace(SHARED_TRACE)
    assert len(trace) == 19_366
    assert 3500 < trace.span_s <= 3600
    assert np.all(np.diff(trace.arrival_s) >= 0)
    assert trace.prompt_tokens.min() >= 1 and trace.output_tokens.min() >= 1
    assert 1000 < trace.prompt_tokens.mean() < 1300
