"""audit_record: the one helper every service function calls inside its transaction.

Tamper evidence (issue 12): each event carries its position `seq`, the previous event's hash
and its own, sha256(prev_hash + "\\n" + canonical JSON of its content). Writers are
serialised while they read the chain's head and append: on PostgreSQL by a transaction-level
advisory lock, on SQLite by the database's single write lock (transactions BEGIN IMMEDIATE,
config/settings.py). So two transactions cannot both extend the same head, and a rolled-back
one leaves no gap (its seq is taken again by the next writer). `audit_chain_verify` recomputes
the chain; `manage.py audit_verify` prints what it finds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from rv.models import AuditEvent

GENESIS = "0" * 64
# pg_advisory_xact_lock key: "rvaudit" as an integer, unlikely to meet another user's key.
AUDIT_LOCK_KEY = 0x7276617564697400


def _canonical_details(details: dict[str, Any]) -> dict[str, Any]:
    """The details as they will read back from the database (JSON round trip)."""
    return cast(dict[str, Any], json.loads(json.dumps(details, cls=DjangoJSONEncoder)))


def event_hash(*, prev_hash: str, seq: int, at: datetime, user_id: int | None, username: str,
               action: str, object_type: str, object_id: str, details: dict[str, Any]) -> str:
    body = json.dumps({"seq": seq, "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
                       "user": user_id, "username": username, "action": action,
                       "object_type": object_type, "object_id": object_id,
                       "details": details},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def hash_of(event: AuditEvent) -> str:
    return event_hash(prev_hash=event.prev_hash, seq=int(event.seq or 0), at=event.at,
                      user_id=event.user_id, username=event.username, action=event.action,
                      object_type=event.object_type, object_id=event.object_id,
                      details=event.details)


def _lock_chain() -> None:
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])
    # SQLite: every transaction holds the one write lock from BEGIN IMMEDIATE on.


def audit_record(*, action: str, obj: models.Model | None, user: AbstractBaseUser |
                 AnonymousUser | None = None, username: str = "",
                 details: dict[str, Any] | None = None, object_type: str = "",
                 object_id: str = "") -> AuditEvent:
    """Append one audit event; must run inside the caller's transaction. Without an object
    (a failed login for an unknown name) give object_type / object_id as text."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the service's transaction")
    real_user = user if user is not None and user.is_authenticated else None
    _lock_chain()
    head = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq") \
        .values_list("seq", "hash").first()
    seq, prev_hash = (int(head[0] or 0) + 1, head[1]) if head else (1, GENESIS)
    event = AuditEvent(
        at=timezone.now(), user=cast(Any, real_user),
        username=username or (real_user.get_username() if real_user else ""),
        action=action, object_type=obj._meta.label_lower if obj is not None else object_type,
        object_id=str(obj.pk) if obj is not None else object_id,
        details=_canonical_details(details or {}), seq=seq, prev_hash=prev_hash)
    event.hash = hash_of(event)
    event.save(force_insert=True)
    return event


@dataclass(frozen=True)
class ChainProblem:
    seq: int | None
    id: int
    what: str

    def __str__(self) -> str:
        return f"seq {self.seq} (id {self.id}): {self.what}"


def audit_chain_verify(*, batch: int = 2000) -> Iterator[ChainProblem]:
    """Every break in the chain: an edited row (its hash no longer matches its content), a
    missing row (a gap in seq, or a prev_hash that is not the hash before it), an unchained
    row. Deleting the newest rows leaves a shorter valid chain: compare the head
    (`audit_chain_head`) with one noted elsewhere to see that."""
    expected_seq, expected_prev = 1, GENESIS
    for event in AuditEvent.objects.filter(seq__isnull=True).order_by("id"):
        yield ChainProblem(None, event.id, "not chained (written around audit_record)")
    for event in AuditEvent.objects.filter(seq__isnull=False).order_by("seq") \
            .iterator(chunk_size=batch):
        seq = int(event.seq or 0)
        if seq != expected_seq:
            yield ChainProblem(seq, event.id, f"events {expected_seq}..{seq - 1} are missing")
        elif event.prev_hash != expected_prev:
            yield ChainProblem(seq, event.id, "previous hash does not match the event before")
        if event.hash != hash_of(event):
            yield ChainProblem(seq, event.id, "content does not match its hash (edited)")
        expected_seq, expected_prev = seq + 1, event.hash


def audit_chain_head() -> tuple[int, str]:
    head = AuditEvent.objects.filter(seq__isnull=False).order_by("-seq") \
        .values_list("seq", "hash").first()
    return (int(head[0] or 0), str(head[1])) if head else (0, GENESIS)
