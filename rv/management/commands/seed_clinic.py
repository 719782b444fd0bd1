"""manage.py seed_clinic: a synthetic clinic for the history and clinic-page benchmarks
(rv.seed, rv.seed_day).

    manage.py seed_clinic                      # 20,000 patients, ~800k sessions, ~3M beams
    manage.py seed_clinic --scale 0.1          # a tenth of it
    manage.py seed_clinic --patients 20 --seed 7   # a handful (also on SQLite)
    manage.py seed_clinic --today 2026-12-01   # the clinic's day: appointments from then on
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from rv.seed import Size, seed_clinic


class Command(BaseCommand):
    help = "Seed a realistic synthetic clinic (PostgreSQL for the full size)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=None,
                            help="number of patients (default: 20,000 x scale)")
        parser.add_argument("--scale", type=float, default=1.0,
                            help="fraction of the full clinic (default 1.0)")
        parser.add_argument("--years", type=int, default=10)
        parser.add_argument("--machines", type=int, default=20)
        parser.add_argument("--seed", type=int, default=1, help="same seed, same clinic")
        parser.add_argument("--today", type=date.fromisoformat, default=None,
                            help="the clinic's day, YYYY-MM-DD (default 2026-11-01): sessions "
                                 "before it, appointments from it on (same seed and day, "
                                 "same clinic)")

    def handle(self, *args: Any, **opts: Any) -> None:
        size = Size.of(patients=opts["patients"], scale=opts["scale"],
                       machines=opts["machines"], years=opts["years"])
        expected = round(size.sessions * 3.75)
        bar = tqdm(total=size.patients * 2 + size.sessions * 2 + expected,
                   unit="row", unit_scale=True, disable=opts["verbosity"] == 0)
        big = {"rv.Patient", "archive.Patient", "rv.Session", "rv.SessionDose",
               "rv.BeamDelivery"}

        def progress(table: str, n: int) -> None:
            bar.set_description(table)
            if table in big:
                bar.update(n)

        began = time.monotonic()
        try:
            counts = seed_clinic(size=size, seed=opts["seed"], progress=progress,
                                 today=opts["today"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        took = time.monotonic() - began
        if opts["verbosity"] == 0:
            return
        for table, n in counts.items():
            self.stdout.write(f"{table:24} {n:>10,}")
        self.stdout.write(f"seeded in {took:.0f} s")
