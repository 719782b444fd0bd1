"""Durable, content-addressed file store under RV_DATA_DIR (DESIGN.md: durable before success).

A file is written to a temporary name in the same file system, fsynced, renamed into place and
its folder fsynced, so that after a crash a file either is complete under its final name or is
not there. Names are the SHA-256 of the bytes, never a UID taken from the data: a hostile UID
such as "../../x" cannot steer a path, and identical bytes are stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Placement:
    rel: str           # path under root()
    created: bool      # True if this call wrote the file (False: the bytes were already there)
    mtime_ns: int      # the file's mtime as this call left it (see remove_unless_reused)


class Part:
    """A file in `.tmp` written ahead of a store (dicom_net.streaming: a C-STORE data set as
    it arrives), hashed as it is written; `place` renames it into the store or it is
    discarded. Its name matches remove_stale_partials' pattern, like `place`'s own."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd: int | None = fd
        self._path: str | None = path
        self._hash = hashlib.sha256()
        self.size = 0
        self._synced = False
        self._lock = threading.Lock()  # sync_ahead in the receiving thread; commit, discard
        self._folder: Path | None = None  # made ready by make_folder
        self._folder_lock = threading.Lock()  # taken inside _lock, never the other way

    @classmethod
    def begin(cls) -> Part:
        tmp_dir = root() / ".tmp"
        _ensure_dir(tmp_dir)
        fd, path = tempfile.mkstemp(dir=tmp_dir, prefix="in-", suffix=".part")
        return cls(fd, path)

    def append(self, data: bytes | memoryview) -> None:
        if self._fd is None:
            raise OSError("the part is closed")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._hash.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def sync_ahead(self) -> None:
        """Once the last byte is in: fsync the part and then make the folder its name goes
        in, in the receiving thread while the handler still parses the object (the work
        `place` would otherwise start with). The handler, if it gets to `place` first,
        makes the folder while this fsync runs: whichever thread starts the folder makes
        it, and the other does not make it again. A failure is left for `commit`."""
        with self._lock:
            if self._fd is None:
                return
            try:
                os.fsync(self._fd)
                self._synced = True
            except OSError as exc:
                log.debug("sync ahead failed: %s", exc)
                return
        with contextlib.suppress(OSError):
            self.make_folder(absolute_path(relative_path(self.sha256)).parent)

    def make_folder(self, folder: Path) -> None:
        """Make `folder` (and fsync the parents of what is new) unless this part's other
        thread has made it or is making it now (then wait for it)."""
        with self._folder_lock:
            if self._folder != folder:
                _ensure_dir(folder)
                self._folder = folder

    def commit(self, final: Path) -> int:
        """fsync the part (unless sync_ahead did), make `final`'s folder (unless done) and
        rename the part to `final`; returns its mtime (ns)."""
        with self._lock:
            return self._commit(final)

    def _commit(self, final: Path) -> int:
        if self._fd is None or self._path is None:
            raise OSError("the part is closed")
        fd, path = self._fd, self._path
        try:
            if not self._synced:
                os.fsync(fd)
            self.make_folder(final.parent)
            mtime_ns = os.fstat(fd).st_mtime_ns  # before the rename, as in place()
        except BaseException:
            self._discard()
            raise
        self._fd = None
        os.close(fd)
        try:
            os.replace(path, final)
        except BaseException:
            self.discard_path(path)
            raise
        self._path = None
        return mtime_ns

    def discard(self) -> None:
        """Close and remove the part, unless it went into the store (then nothing)."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        path, self._path = self._path, None
        if path is not None:
            self.discard_path(path)

    @staticmethod
    def discard_path(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def place(data: bytes, sha256: str, part: Part | None = None) -> Placement:
    """Store data under its hash, durably. A file already there with these bytes is reused,
    and its mtime moved forward (`_mark_reused`) so that a writer about to remove it after a
    failed commit (remove_unless_reused) sees it is wanted again and keeps it. With `part`
    (these bytes, already written to `.tmp`) the part is renamed into place instead of
    writing again; the caller discards it if it was not used."""
    rel = relative_path(sha256)
    final = absolute_path(rel)
    try:
        st = final.stat()
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode) and st.st_size == len(data):
        mtime_ns = _mark_reused(final, st)
        if mtime_ns is not None:
            return Placement(rel, False, mtime_ns)
    if part is not None and part.size == len(data) and part.sha256 == sha256:
        part.make_folder(final.parent)  # while the receiving thread may still fsync it
        mtime_ns = part.commit(final)
        _fsync_dir(final.parent)
        return Placement(rel, True, mtime_ns)
    _ensure_dir(final.parent)
    tmp_dir = root() / ".tmp"
    _ensure_dir(tmp_dir)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="in-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            # Taken before the rename: no other writer can touch this inode before then.
            mtime_ns = os.fstat(fh.fileno()).st_mtime_ns
        os.replace(tmp_name, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(final.parent)
    return Placement(rel, True, mtime_ns)


def _mark_reused(path: Path, st: os.stat_result) -> int | None:
    """Move the file's mtime forward (to now, or at least 1 us past what it was); return the
    new mtime, or None if the file vanished meanwhile (a remover took it: write it anew)."""
    new = max(time.time_ns(), st.st_mtime_ns + 1000)
    try:
        os.utime(path, ns=(st.st_atime_ns, new))
    except FileNotFoundError:
        return None
    except PermissionError:  # a read-only archive: nothing will remove it either
        return st.st_mtime_ns
    return new


def write_durably(data: bytes, sha256: str) -> tuple[str, bool]:
    """Store data under its hash. Return (relative path, True if this call created the file)."""
    placed = place(data, sha256)
    return placed.rel, placed.created


def remove_unless_reused(rel: str, keep: Callable[[os.stat_result], bool]) -> bool:
    """Remove a stored file unless keep(its stat) says otherwise; True if removed.

    The file is first renamed out of place (into .tmp/, as rm-<name>), then `keep` is asked,
    and the file put back if it answers True. A writer reusing the file (`place`) moves its
    mtime forward before its commit; if that happens after the rename, the reuse finds no
    file and writes it anew. Either way no committed row is left without its file: `keep`
    sees the moved mtime, or the reuse never happened. `keep` should also look for a
    committed row holding the path where it can."""
    path = absolute_path(rel)
    tmp_dir = root() / ".tmp"
    _ensure_dir(tmp_dir)
    aside = tmp_dir / f"rm-{uuid.uuid4().hex}-{path.name}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    try:
        wanted = keep(os.stat(aside))
    except BaseException:
        _put_back(aside, path)
        raise
    if wanted:
        _put_back(aside, path)
        return False
    os.unlink(aside)
    _fsync_dir(path.parent)
    return True


def _put_back(aside: Path, path: Path) -> None:
    with contextlib.suppress(FileExistsError):  # a writer stored the bytes anew meanwhile
        os.link(aside, path)
    os.unlink(aside)
    _fsync_dir(path.parent)


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
