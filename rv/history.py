"""Treatment history (issue 7): one row per delivered beam, "what did this patient receive,
where, when, and who signed it". Selectors only: the API, the web page and the CSV share
them, and the benchmark's hand-written SQL mirrors them (docs/bench-history.md).

Pages are keyset (cursor) pages, newest first, on (session.treated_at, session.id,
delivery.id): a deep page costs what the first one does. The indexes rv_session_treated_id
and rv_session_machine_treated serve that order.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import F, OuterRef, Q, QuerySet, Subquery

from rv.models import BeamDelivery, Override, Patient, Session

# Column name -> ORM path. The order is the CSV's and the API row's.
COLUMNS: dict[str, Any] = {
    "id": F("id"),
    "treated_at": F("session__treated_at"),
    "session": F("session_id"),
    "patient": F("session__plan__patient_id"),
    "patient_id": F("session__plan__patient__patient_id"),
    "patient_name": F("session__plan__patient__patient_name"),
    "course": F("session__plan__course_id"),
    "course_code": F("session__plan__course__code"),
    "plan": F("session__plan_id"),
    "plan_label": F("session__plan__label"),
    "fraction_number": F("session__fraction_number"),
    "machine": F("session__machine__name"),
    "beam_number": F("beam__number"),
    "beam_name": F("beam__name"),
    "specified_meterset": F("specified_meterset"),
    "delivered_meterset": F("delivered_meterset"),
    "unit": F("unit"),
    "termination_status": F("termination_status"),
    "verification_status": F("verification_status"),
    "override": Subquery(Override.objects.filter(beam_delivery=OuterRef("pk"))
                         .order_by("id").values("reason")[:1]),
    "override_by": Subquery(Override.objects.filter(beam_delivery=OuterRef("pk"))
                            .order_by("id").values("authorised_by__username")[:1]),
    "therapist": F("session__recorded_by__username"),
}
ORDER = ("-session__treated_at", "-session_id", "-id")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def history_deliveries() -> QuerySet[BeamDelivery]:
    """Every delivered beam, newest first; filter it with rv.filters.HistoryFilter."""
    return BeamDelivery.objects.order_by(*ORDER)


def history_rows(qs: QuerySet[BeamDelivery]) -> QuerySet[BeamDelivery, dict[str, Any]]:
    own = [k for k, v in COLUMNS.items() if isinstance(v, F) and v.name in (k, f"{k}_id")]
    return qs.values(*own).annotate(**{k: v for k, v in COLUMNS.items() if k not in own})


@dataclass(frozen=True)
class Cursor:
    treated_at: datetime
    session: int
    id: int
    backwards: bool = False

    def encode(self) -> str:
        raw = f"{'p' if self.backwards else 'n'}|{self.treated_at.isoformat()}|" \
              f"{self.session}|{self.id}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises ValueError for a cursor we did not make."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            way, at, session, pk = raw.split("|")
            when = datetime.fromisoformat(at)
            if way not in ("n", "p") or when.tzinfo is None:
                raise ValueError(text)
            return cls(when, int(session), int(pk), backwards=way == "p")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"not a cursor: {text!r}") from exc


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next: Cursor | None
    previous: Cursor | None


def history_page(*, qs: QuerySet[BeamDelivery], cursor: Cursor | None = None,
                 size: int = PAGE_SIZE) -> Page:
    """One keyset page of `qs` (newest first) after (or, backwards, before) the cursor."""
    size = max(1, min(size, MAX_PAGE_SIZE))
    if cursor is not None:
        t, s, i = cursor.treated_at, cursor.session, cursor.id
        if cursor.backwards:  # newer than the cursor: walk up, then turn round
            qs = qs.filter(Q(session__treated_at__gt=t)
                           | Q(session__treated_at=t, session_id__gt=s)
                           | Q(session__treated_at=t, session_id=s, id__gt=i),
                           session__treated_at__gte=t)
            qs = qs.order_by("session__treated_at", "session_id", "id")
        else:
            qs = qs.filter(Q(session__treated_at__lt=t)
                           | Q(session__treated_at=t, session_id__lt=s)
                           | Q(session__treated_at=t, session_id=s, id__lt=i),
                           session__treated_at__lte=t)
    rows = [{k: r[k] for k in COLUMNS} for r in history_rows(qs)[:size + 1]]
    more = len(rows) > size
    rows = rows[:size]
    backwards = cursor is not None and cursor.backwards
    if backwards:
        rows.reverse()

    def at(row: dict[str, Any], back: bool) -> Cursor:
        return Cursor(row["treated_at"], row["session"], row["id"], backwards=back)

    has_next = more if not backwards else True
    has_prev = cursor is not None and (more if backwards else True)
    return Page(rows=rows,
                next=at(rows[-1], False) if rows and has_next else None,
                previous=at(rows[0], True) if rows and has_prev else None)


def history_csv(*, qs: QuerySet[BeamDelivery], batch: int = 500) -> Iterator[str]:
    """The CSV text of every row of `qs`, streamed from a server-side cursor; yielded in
    blocks of `batch` rows, so the server sends few large writes, never the whole file."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(list(COLUMNS))
    for n, row in enumerate(history_rows(qs).iterator(chunk_size=2000), start=1):
        writer.writerow([row[k].isoformat() if isinstance(row[k], datetime) else row[k]
                         for k in COLUMNS])
        if n % batch == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def patient_timeline(*, patient: Patient) -> list[Session]:
    """A patient's sessions by date, each with its beams, channels, doses and overrides."""
    return list(Session.objects.filter(plan__patient=patient)
                .select_related("plan__course", "machine", "recorded_by")
                .prefetch_related("beams__beam", "channels__channel", "channels__setup",
                                  "doses__dose_reference", "overrides__authorised_by")
                .order_by("treated_at", "id"))
