"""manage.py worklist_sync: make every TDW-II machine's worklist say what the schedule says
(normally done by each schedule and plan change; this repairs after manual database work)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from rv.services.workitems import worklist_sync


class Command(BaseCommand):
    help = "Bring the TDW-II worklist steps in line with the schedule and the plans."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            result = worklist_sync()
        self.stdout.write(f"{len(result.created)} step(s) issued, "
                          f"{len(result.cancelled)} cancelled")
