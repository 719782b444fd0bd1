"""Checks that the index and the file store agree: every row has its file, whole, and every
file has its row. A crash between a file's rename and its index commit leaves an orphan file
(never reported as stored); nothing else should ever show up here."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from archive import storage
from archive.models import Instance


@dataclass
class Report:
    checked: int = 0
    missing: list[str] = field(default_factory=list)      # SOP Instance UIDs without a file
    corrupt: list[str] = field(default_factory=list)      # file differs from its SHA-256
    orphans: list[Path] = field(default_factory=list)     # files without an index row
    partials: list[Path] = field(default_factory=list)    # temporary files of a crashed write

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_problem(*, rel: str, size: int, sha256: str) -> str:
    """Why the stored file at rel is not the one indexed ("" when it is, byte for byte):
    "missing", "size differs" or "content differs" (SHA-256). Reads the whole file."""
    path = storage.absolute_path(rel)
    try:
        if path.stat().st_size != size:
            return "size differs"
        return "" if _sha256(path) == sha256 else "content differs"
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or type(exc).__name__})"


def _stored_files() -> Iterator[Path]:
    root = storage.root()
    if root.is_dir():
        yield from (p for p in root.glob("??/??/*.dcm") if p.is_file())


def check(*, hashes: bool = True) -> Report:
    report = Report()
    known: set[str] = set()
    for uid, rel, sha, size in Instance.objects.values_list(
            "sop_instance_uid", "path", "sha256", "size").iterator(chunk_size=2000):
        report.checked += 1
        known.add(rel)
        path = storage.absolute_path(rel)
        if not path.is_file():
            report.missing.append(uid)
        elif path.stat().st_size != size or (hashes and _sha256(path) != sha):
            report.corrupt.append(uid)
    root = storage.root()
    for path in _stored_files():
        if str(path.relative_to(root)) not in known:
            report.orphans.append(path)
    tmp = root / ".tmp"
    if tmp.is_dir():
        report.partials = sorted(tmp.glob("in-*.part"))
    return report


@dataclass
class Repair:
    removed: list[Path] = field(default_factory=list)   # orphans and partials removed
    kept: list[Path] = field(default_factory=list)      # too young: a store may be in flight
    restored: list[Path] = field(default_factory=list)  # put back: an index row holds them


def _is_indexed(rel: str) -> bool:
    return Instance.objects.filter(path=rel).exists()


def repair(report: Report, *, grace: float) -> Repair:
    """Remove the orphan files and partial writes in `report` last modified more than `grace`
    seconds ago; a younger one may belong to a store that has not committed yet. Each orphan
    is moved aside and the index asked again before it goes (storage.remove_unless_reused),
    so a store committing meanwhile keeps its file. Files a removal interrupted by a crash
    left aside (.tmp/rm-*) are put back if indexed, else removed like orphans."""
    done = Repair()
    cutoff_ns = time.time_ns() - int(grace * 1e9)
    root = storage.root()
    for path in report.orphans:
        rel = str(path.relative_to(root))

        def keep(st: os.stat_result, rel: str = rel) -> bool:
            return st.st_mtime_ns > cutoff_ns or _is_indexed(rel)

        if storage.remove_unless_reused(rel, keep):
            done.removed.append(path)
        elif path.exists():
            (done.restored if _is_indexed(rel) else done.kept).append(path)
    tmp = root / ".tmp"
    leftovers = sorted(tmp.glob("rm-*.dcm")) if tmp.is_dir() else []
    for path in [*report.partials, *leftovers]:
        try:
            young = path.stat().st_mtime_ns > cutoff_ns
        except FileNotFoundError:
            continue
        if path.name.startswith("rm-"):
            rel = storage.relative_path(path.name.rsplit("-", 1)[-1].removesuffix(".dcm"))
            if _is_indexed(rel):
                with contextlib.suppress(FileExistsError):
                    os.link(path, storage.absolute_path(rel))
                path.unlink(missing_ok=True)
                done.restored.append(storage.absolute_path(rel))
                continue
        if young:
            done.kept.append(path)
        else:
            path.unlink(missing_ok=True)
            done.removed.append(path)
    return done
