"""The one file writer (simulator.common.files.write_atomic): atomic, durable, the user's mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from simulator.common.files import OutputError, write_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_text_bytes_and_callback_land_with_the_umask_mode(tmp_path, umask_022):
    text = write_atomic(tmp_path / "a" / "summary.json", '{"ok": "ü"}\n')
    raw = write_atomic(tmp_path / "raw.bin", b"\x00\x01")
    made = write_atomic(tmp_path / "plot.png", lambda temp: temp.write_bytes(b"png"))
    assert text.read_text(encoding="utf-8") == '{"ok": "ü"}\n'
    assert raw.read_bytes() == b"\x00\x01" and made.read_bytes() == b"png"
    assert [mode(p) for p in (text, raw, made)] == [0o644, 0o644, 0o644]
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_stricter_umask_is_respected(tmp_path):
    old = os.umask(0o077)
    try:
        path = write_atomic(tmp_path / "private.csv", "a,b\n")
    finally:
        os.umask(old)
    assert mode(path) == 0o600


def test_a_failing_callback_leaves_the_previous_file_and_no_temp(tmp_path):
    target = tmp_path / "report.xlsx"
    target.write_text("previous")

    def broken(temp: Path) -> None:
        temp.write_text("half of a new")
        raise ValueError("writer failed")

    with pytest.raises(ValueError, match="writer failed"):
        write_atomic(target, broken)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["report.xlsx"]


def test_a_directory_target_is_one_clear_line(tmp_path):
    with pytest.raises(OutputError) as info:
        write_atomic(tmp_path, "x")
    assert str(info.value) == f"{tmp_path}: is a directory; give a file name"


def test_a_file_where_a_directory_is_wanted_is_one_clear_line(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError) as info:
        write_atomic(blocker / "sub" / "summary.json", "{}")
    assert str(info.value).startswith(f"{blocker}: is a file, but a directory is needed")
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_an_unwritable_directory_is_one_clear_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot write: Permission denied"):
            write_atomic(locked / "summary.json", "{}")
    finally:
        locked.chmod(0o700)


def test_missing_folders_are_an_error_when_not_to_be_created(tmp_path):
    with pytest.raises(OutputError, match="no such directory"):
        write_atomic(tmp_path / "absent" / "plot.png", b"png", create_folders=False)
    assert not (tmp_path / "absent").exists()


def test_a_permission_error_is_one_clear_line(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("simulator.common.files.tempfile.mkstemp", refuse)
    with pytest.raises(OutputError) as info:
        write_atomic(tmp_path / "summary.json", "{}")
    assert str(info.value) == f"{tmp_path}: cannot write: Permission denied"


def test_a_path_outside_the_output_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="outside the output folder"):
        write_atomic(out / ".." / "escaped.json", "{}", within=out)
    (tmp_path / "elsewhere").mkdir()
    (out).mkdir()
    (out / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="outside the output folder"):
        write_atomic(out / "link" / "x.json", "{}", within=out)
    assert not (tmp_path / "escaped.json").exists() and not list((tmp_path / "elsewhere").iterdir())
    assert write_atomic(out / "plan" / "ok.json", "{}", within=out).is_file()


# ---------------------------------------------------------------------- a folder as a whole


def _fill(tag: str, names=("summary.json", "monthly.csv", "billing.csv")):
    def fill(staging: Path) -> None:
        for name in names:
            write_atomic(staging / name, tag)

    return fill


def test_a_folder_is_replaced_as_a_whole_keeping_the_users_own_files(tmp_path, umask_022):
    from simulator.common.files import write_folder_atomic

    out = tmp_path / "out"
    write_folder_atomic(out, _fill("old"))
    (out / "notes.txt").write_text("mine")
    write_folder_atomic(out, _fill("new", names=("summary.json", "monthly.csv")))
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "summary.json": "new", "monthly.csv": "new", "billing.csv": "old", "notes.txt": "mine"}
    assert mode(out) == 0o755
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


def test_a_failing_fill_leaves_the_previous_folder(tmp_path):
    from simulator.common.files import write_folder_atomic

    out = tmp_path / "out"
    write_folder_atomic(out, _fill("old"))

    def broken(staging: Path) -> None:
        write_atomic(staging / "summary.json", "new")
        raise RuntimeError("simulation failed half-way")

    with pytest.raises(RuntimeError):
        write_folder_atomic(out, broken)
    assert {p.read_text() for p in out.iterdir()} == {"old"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]


WRITER = """
import sys, time
from pathlib import Path
from simulator.common.files import write_atomic, write_folder_atomic
tag, pause = sys.argv[2], float(sys.argv[3])
def fill(staging):
    for name in ("summary.json", "monthly.csv", "billing.csv", "latency.csv"):
        write_atomic(staging / name, tag)
        time.sleep(pause)
write_folder_atomic(Path(sys.argv[1]), fill)
"""


def _writer(out: Path, tag: str, pause: float):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", WRITER, str(out), tag, str(pause)])


def test_sigkill_mid_write_leaves_the_previous_complete_outputs(tmp_path):
    import signal
    import time

    out = tmp_path / "out"
    assert _writer(out, "old", 0).wait() == 0
    for delay in (0.05, 0.15, 0.3):
        proc = _writer(out, "new", 0.1)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        contents = {p.name: p.read_text() for p in out.iterdir()}
        assert len(contents) == 4 and len(set(contents.values())) == 1, contents  # never a mix
    assert _writer(out, "last", 0).wait() == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")]  # killed runs' staging removed


def test_two_runs_into_one_folder_do_not_interleave(tmp_path):
    out = tmp_path / "out"
    procs = [_writer(out, tag, 0.05) for tag in ("first", "second")]
    assert [p.wait() for p in procs] == [0, 0]
    contents = {p.name: p.read_text() for p in out.iterdir()}
    assert len(contents) == 4 and len(set(contents.values())) == 1, contents


def test_json_on_stdout_is_valid_json_with_nan_as_null(capsys):
    import json

    from simulator.cli.options import print_json

    print_json({"a": float("nan"), "b": [1.5, float("inf")], "c": "x"})
    assert json.loads(capsys.readouterr().out) == {"a": None, "b": [1.5, None], "c": "x"}
