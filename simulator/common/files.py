"""The one writer of every file fleetsim produces: atomic, durable, with the user's permissions.

``write_atomic(path, content)`` writes into a temp file in the target's own directory, fsyncs it,
renames it over the target and fsyncs the directory. A crash or an error mid-write never leaves a
partial file and never clobbers the previous file with half of a new one. The file gets the mode
a plain ``open()`` would give it (0666 less the umask: 0644 under umask 022), not the 0600 of a
temp file, so a colleague on a shared drive can open the workbook.

Problems with the target (a directory where a file is wanted, a file where a directory is
wanted, no permission, a full disk) raise :class:`OutputError` with one line naming the path.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

Content = bytes | str | Callable[[Path], None]

_umask_lock = threading.Lock()


class OutputError(Exception):
    """An output file could not be written; the message is one line that names the path."""


def current_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_atomic(
    path: str | Path, content: Content, *, create_folders: bool = True, within: str | Path | None = None
) -> Path:
    """Write ``content`` to ``path`` atomically and return the path.

    ``content`` is the bytes, or text (UTF-8), or a callback ``write(temp_path)`` that writes the
    file itself (a workbook, a Parquet table, a plot). Missing parent directories are created
    unless ``create_folders`` is false (then a missing directory is an OutputError). With
    ``within``, a path that resolves outside that folder (``..``, a symlink) is refused.
    An exception from the callback propagates unchanged, with the temp file removed and the
    target untouched; problems with the target raise :class:`OutputError`.
    """
    target = Path(path)
    if within is not None and not target.resolve().is_relative_to(Path(within).resolve()):
        raise OutputError(f"{target}: outside the output folder {within}; not written")
    folder = _prepare_folder(target, create_folders)
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise OutputError(_reason(folder, error)) from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(content, str):
                handle.write(content.encode("utf-8"))
            elif isinstance(content, bytes):
                handle.write(content)
        if callable(content):
            content(temp)
        _fsync_file(temp)
        os.chmod(temp, 0o666 & ~current_umask())
        os.replace(temp, target)
    except OSError as error:
        raise OutputError(_reason(target, error)) from None
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(folder)
    return target


def _prepare_folder(target: Path, create: bool) -> Path:
    """The target's directory, created if missing; OutputError for a target that cannot be a file."""
    if target.is_dir():
        raise OutputError(f"{target}: is a directory; give a file name")
    return _parent_folder(target, create)


def _parent_folder(target: Path, create: bool) -> Path:
    """The directory that holds ``target``, created (with its parents) when ``create``."""
    folder = target.parent if str(target.parent) else Path(".")
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f"{parent}: is a file, but a directory is needed for {target}")
    if not create and not folder.is_dir():
        raise OutputError(f"{folder}: no such directory (for {target})")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(_reason(folder, error)) from None
    return folder


def _reason(path: Path, error: OSError) -> str:
    if error.errno == errno.EISDIR:
        return f"{path}: is a directory; give a file name"
    return f"{path}: cannot write: {error.strerror or error}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; best effort (not every platform or file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- a folder as a whole

_RENAME_EXCHANGE = 2  # linux/fs.h


def write_folder_atomic(
    folder: str | Path, fill: Callable[[Path], None], others: Literal["keep", "refuse", "drop"] = "keep"
) -> Path:
    """Replace the contents of ``folder`` as a whole: ``fill(staging)`` writes the new files into
    a staging folder beside it, which then takes ``folder``'s place in one rename (an atomic
    exchange on Linux; elsewhere two renames). A crash leaves the previous complete folder or
    the new complete one, never a mix; runs writing the same folder at once are serialised by a
    lock beside it. Entries of the old folder that the new one does not have (a user's own
    files, another plan's outputs) are moved across (``others="keep"``), make it an OutputError
    that names them (``"refuse"``: nothing is written), or are discarded (``"drop"``: the
    caller's explicit --force).
    """
    import fcntl
    import shutil

    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target}: is a file, but a directory is needed for the outputs")
    parent = _parent_folder(target, create=True)
    lock_path = parent / f".{target.name}.lock"
    try:
        lock = open(lock_path, "a")  # noqa: SIM115 (held for the whole write)
    except OSError as error:
        raise OutputError(_reason(lock_path, error)) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in parent.glob(f".{target.name}.tmp-*"):  # left by a killed run (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        except OSError as error:
            raise OutputError(_reason(parent, error)) from None
        try:
            os.chmod(staging, 0o777 & ~current_umask())
            fill(staging)
            if target.is_dir():
                stale = sorted(e.name for e in target.iterdir() if not (staging / e.name).exists())
                if stale and others == "refuse":
                    shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
                    raise OutputError(f"{target}: holds {shown}, which this run would not write; "
                                      "use another folder, or --force to replace the folder's contents")  # fmt: skip
                if others == "keep":
                    for name in stale:
                        os.replace(target / name, staging / name)
                _exchange(staging, target)
            else:
                os.replace(staging, target)
            _fsync_dir(parent)
        except OSError as error:
            raise OutputError(_reason(target, error)) from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


def _exchange(new: Path, old: Path) -> None:
    """Swap two directories atomically (renameat2 RENAME_EXCHANGE), else by two renames."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old), _RENAME_EXCHANGE) == 0:
            return  # ``new`` now holds the old contents; the caller removes it
    aside = new.with_name(new.name + "-old")
    os.replace(old, aside)
    os.replace(new, old)
    os.replace(aside, new)


def finite(data: Any) -> Any:
    """``data`` with every non-finite float as None, so the JSON written is valid JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [finite(v) for v in data]
    return data
