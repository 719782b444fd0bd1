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
        parser.add_argument("--repair", action="store_true",
                            help="delete orphan files and partials older than --grace seconds, "
                                 "re-checking the index for each")
        parser.add_argument("--grace", type=float, default=3600.0,
                            help="with --repair: keep files younger than this, in seconds; a "
                                 "store may not have committed yet (default 3600)")

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
        if options["repair"] and not options["remove_orphans"]:
            done = integrity.repair(report, grace=options["grace"])
            for path in done.removed:
                self.stdout.write(f"  REMOVED  {path}")
            for path in done.restored:
                self.stdout.write(f"  RESTORED {path}")
            for path in done.kept:
                self.stdout.write(f"  KEPT     {path} (younger than {options['grace']:g} s)")
            self.stdout.write(f"repair: removed {len(done.removed)} orphan or partial file(s), "
                              f"kept {len(done.kept)} younger than {options['grace']:g} s, "
                              f"restored {len(done.restored)}")
        if not report.ok:
            raise CommandError("the archive index and its files disagree")
