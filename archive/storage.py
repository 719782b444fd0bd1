"""Durable, content-addressed file store under RV_DATA_DIR (DESIGN.md: durable before success).

A file is written to a temporary name in the same file system, fsynced, renamed into place and
its folder fsynced, so that after a crash a file either is complete under its final name or is
not there. Names are the SHA-256 of the bytes, never a UID taken from the data: a hostile UID
such as "../../x" cannot steer a path, and identical bytes are stored once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from django.conf import settings

SUBDIR = "dicom"


def root() -> Path:
    return Path(settings.RV_DATA_DIR) / SUBDIR


def relative_path(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.dcm"


def absolute_path(rel: str) -> Path:
    return root() / rel


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(path: Path) -> None:
    """Create path and each missing parent, fsyncing the parent of every new folder."""
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            if not folder.is_dir():
                raise
        _fsync_dir(folder.parent)


def write_durably(data: bytes, sha256: str) -> tuple[str, bool]:
    """Store data under its hash. Return (relative path, True if this call created the file)."""
    rel = relative_path(sha256)
    final = absolute_path(rel)
    if final.is_file() and final.stat().st_size == len(data):
        return rel, False
    tmp_dir = root() / ".tmp"
    _ensure_dir(tmp_dir)
    _ensure_dir(final.parent)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="in-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(final.parent)
    return rel, True


def remove(rel: str) -> None:
    """Remove a file this process created when its index row could not be committed."""
    path = absolute_path(rel)
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(path.parent)


def check_writable() -> str | None:
    """A reason the store cannot take files, or None when it can (for system checks)."""
    try:
        _ensure_dir(root() / ".tmp")
        fd, name = tempfile.mkstemp(dir=root() / ".tmp", prefix="check-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return f"{root()} is not writable: {exc}"
    return None


def remove_stale_partials(max_age_seconds: float = 3600) -> int:
    """Remove temporary files a crashed writer left (never reported as stored)."""
    import time

    tmp_dir = root() / ".tmp"
    if not tmp_dir.is_dir():
        return 0
    removed = 0
    cutoff = time.time() - max_age_seconds
    for path in tmp_dir.glob("in-*.part"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
