"""manage.py archive_check: do the index and the stored files agree?"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from archive import integrity


class Command(BaseCommand):
    help = "Check that every indexed object has its file, whole, and list orphan files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quick", action="store_true",
                            help="compare sizes only, do not re-hash every file")
        parser.add_argument("--remove-orphans", action="store_true",
                            help="delete files that no index row refers to, and partials")

    def handle(self, *args: Any, **options: Any) -> None:
        report = integrity.check(hashes=not options["quick"])
        self.stdout.write(f"checked {report.checked} indexed object(s): "
                          f"{len(report.missing)} missing, {len(report.corrupt)} damaged, "
                          f"{len(report.orphans)} orphan file(s), "
                          f"{len(report.partials)} partial write(s)")
        for uid in report.missing:
            self.stdout.write(f"  MISSING  {uid}")
        for uid in report.corrupt:
            self.stdout.write(f"  DAMAGED  {uid}")
        for path in report.orphans + report.partials:
            self.stdout.write(f"  ORPHAN   {path}")
        if options["remove_orphans"]:
            for path in report.orphans + report.partials:
                path.unlink(missing_ok=True)
            self.stdout.write(f"removed {len(report.orphans) + len(report.partials)} file(s)")
        if not report.ok:
            raise CommandError("the archive index and its files disagree")
