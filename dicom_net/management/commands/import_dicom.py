"""manage.py import_dicom PATH...: import files or folders into the archive.

Each file goes through the same door as a C-STORE (rv.ingest.object_receive), so it is
stored, already present, or rejected with the same reasons a DICOM peer would get.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from archive.dicomio import ensure_part10
from archive.errors import StoreError
from dicom_net.ae import STORAGE_SOP_CLASSES
from rv.ingest import object_receive

ACCEPTED = frozenset(str(uid) for uid in STORAGE_SOP_CLASSES)


def _files(paths: list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def import_file(path: Path) -> str:
    """Import one file; return "stored" or "duplicate", raise StoreError if refused."""
    data = ensure_part10(path.read_bytes())
    return object_receive(data=data, source="import", allowed_sop_classes=ACCEPTED).outcome


class Command(BaseCommand):
    help = "Import DICOM files or folders (recursively) into the archive."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", help="files or folders")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        missing = [p for p in options["paths"] if not Path(p).exists()]
        if missing:
            raise CommandError(f"no such file or folder: {', '.join(missing)}")
        files = list(_files(options["paths"]))
        counts: Counter[str] = Counter()
        rejected: list[tuple[Path, str]] = []
        bar = tqdm(files, unit="file", disable=options["no_progress"] or None,
                   file=self.stderr._out)
        for path in bar:
            try:
                counts[import_file(path)] += 1
            except StoreError as exc:
                rejected.append((path, exc.comment))
            except OSError as exc:
                rejected.append((path, f"cannot read the file: {exc.strerror or exc}"))
        bar.close()
        self.stdout.write(f"stored: {counts['stored']}, already present: "
                          f"{counts['duplicate']}, rejected: {len(rejected)}")
        for path, reason in rejected:
            self.stdout.write(f"  rejected {path}: {reason}")
        if rejected:
            raise CommandError(f"{len(rejected)} file(s) rejected")
