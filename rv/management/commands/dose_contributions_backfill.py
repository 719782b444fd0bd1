"""manage.py dose_contributions_backfill: once after migration 0007, read each plan's dose
contributions (Cumulative Dose Reference Coefficients, per-reference beam doses) from its
stored RT Plan, so that plans imported before, treated ones included, track their dose
references from the next session on (docs/treatment-model.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from rv.models import Plan
from rv.services.dose import plan_dose_contributions_backfill


class Command(BaseCommand):
    help = "Fill dose contributions of plans imported before rv stored them."

    def handle(self, *args: Any, **opts: Any) -> None:
        filled = sum(plan_dose_contributions_backfill(plan=plan)
                     for plan in Plan.objects.order_by("pk"))
        self.stdout.write(f"{filled} plan(s) filled")
