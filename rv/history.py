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

from django.db import connection
from django.db.models import Case, CharField, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Concat
from django.db.models.lookups import StartsWith

from rv.models import BeamDelivery, Override, Patient, Session

# Column name -> ORM path. The order is the CSV's and the API row's.
_OVERRIDES = (Override.objects.filter(
    Q(beam_delivery=OuterRef("pk")) | Q(session=OuterRef("session_id"), beam_delivery=None,
                                                      channel_delivery=None))
    .order_by(F("beam_delivery_id").asc(nulls_last=True), "id"))
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
    "override": Subquery(_OVERRIDES.values("reason")[:1]),
    "override_by": Subquery(_OVERRIDES.values("authorised_by__username")[:1]),
    "therapist": F("session__recorded_by__username"),
}
ORDER = ("-session__treated_at", "-session_id", "-id")
# Columns that hold text someone typed or a DICOM file named: CSV formula injection (OWASP)
# is defused in them by a leading apostrophe when they start with one of FORMULA_START.
TEXT_COLUMNS = ("patient_id", "patient_name", "course_code", "plan_label", "machine",
                "beam_name", "unit", "termination_status", "verification_status", "override",
                "override_by", "therapist")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_safe(expr: Any) -> Case:
    """csv_cell in SQL, for the PostgreSQL COPY path."""
    return Case(*[When(StartsWith(expr, c), then=Concat(Value("'"), expr))
                  for c in FORMULA_START], default=expr, output_field=CharField())


def _path(column: Any) -> str:
    """The ORM path of a plain column of COLUMNS ("" for a subquery)."""
    return str(getattr(column, "name", "")) if isinstance(column, F) else ""

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def history_deliveries() -> QuerySet[BeamDelivery]:
    """Every delivered beam, newest first; filter it with rv.filters.HistoryFilter."""
    return BeamDelivery.objects.order_by(*ORDER)


def history_rows(qs: QuerySet[BeamDelivery]) -> QuerySet[BeamDelivery, dict[str, Any]]:
    own = [k for k, v in COLUMNS.items() if _path(v) in (k, f"{k}_id")]
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
    keys = list(qs.values_list("id", flat=True)[:size + 1])
    more = len(keys) > size
    rows = page_rows(keys[:size])
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


# page_rows reads the same COLUMNS from three small queries: the session's side ...
_FROM_SESSION = {k: _path(v).removeprefix("session__") for k, v in COLUMNS.items()
                 if _path(v).startswith("session__")} | {"session": "id"}
# ... and the delivery's own (with its beam); the override's two come from a third.
_FROM_DELIVERY = {k: _path(v) for k, v in COLUMNS.items()
                  if _path(v) and k not in _FROM_SESSION}


def page_rows(ids: list[int]) -> list[dict[str, Any]]:
    """The history rows of these deliveries, in this order. Three small queries instead of
    one nine-table join: PostgreSQL then spends about a millisecond planning instead of
    10-20 ms (docs/bench-history.md); the keyset query before it joins only what filters."""
    if not ids:
        return []
    deliveries = {d["id"]: d for d in BeamDelivery.objects.filter(id__in=ids)
                  .values("session_id", *_FROM_DELIVERY.values())}
    sessions = {s["id"]: s for s in Session.objects.filter(
        id__in={d["session_id"] for d in deliveries.values()})
        .values(*_FROM_SESSION.values())}
    # A beam's own override first, else its session's session-wide one (interval, dose...);
    # the lowest id of each wins, as in the CSV.
    overrides: dict[int, tuple[str, str]] = {}
    session_wide: dict[int, tuple[str, str]] = {}
    for pk, session_id, reason, by in (
            Override.objects.filter(Q(beam_delivery_id__in=ids)
                                    | Q(session_id__in=sessions, beam_delivery=None,
                                      channel_delivery=None))
            .order_by("-id").values_list("beam_delivery_id", "session_id", "reason",
                                         "authorised_by__username")):
        if pk is None:
            session_wide[session_id] = (reason, by)
        else:
            overrides[pk] = (reason, by)
    rows = []
    for pk in ids:
        d = deliveries[pk]
        s = sessions[d["session_id"]]
        row = {k: s[path] for k, path in _FROM_SESSION.items()}
        row.update({k: d[path] for k, path in _FROM_DELIVERY.items()})
        row["override"], row["override_by"] = overrides.get(
            pk, session_wide.get(d["session_id"], (None, None)))
        rows.append({k: row[k] for k in COLUMNS})
    return rows


def history_csv(*, qs: QuerySet[BeamDelivery], batch: int = 500) -> Iterator[str | bytes]:
    """The CSV text of every row of `qs`, streamed, never the whole file in memory. On
    PostgreSQL the server writes the CSV itself (COPY ... TO STDOUT, rows as they come);
    elsewhere Python does, from a chunked cursor, `batch` rows a block."""
    yield ",".join(COLUMNS) + "\r\n"
    if connection.vendor == "postgresql":
        exprs = {f"csv_{k}": csv_safe(v) if k in TEXT_COLUMNS else v for k, v in COLUMNS.items()}
        sql, params = qs.values(**exprs).values_list(*exprs).query.sql_with_params()
        copy_sql = f"COPY ({sql}) TO STDOUT (FORMAT CSV)"
        with connection.cursor() as cursor, cursor.cursor.copy(copy_sql, params) as copy:
            for data in copy:
                yield bytes(data)
        return
    rows = history_rows(qs).values_list(*COLUMNS)
    buf = io.StringIO()
    writer = csv.writer(buf)
    at = list(COLUMNS).index("treated_at")
    for n, row in enumerate(rows.iterator(chunk_size=2000), start=1):
        writer.writerow([csv_cell(v) for v in (*row[:at], row[at].isoformat(), *row[at + 1:])])
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
