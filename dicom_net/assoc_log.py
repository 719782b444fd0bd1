"""The association log's two writes, each one statement (issue 16).

Every association writes its AssociationLog row when it is accepted and updates it when it
ends. Through Django's ORM (`objects.create`, `filter().update()`) these cost about 0.9 ms
of the SCP's Python per association in issue 16's profile of one association per object
(a fifth of what was left after dicom_net.assoc_setup), most of it building the query.
Here each is one INSERT ... RETURNING or UPDATE whose text is made once, with the values
the model's fields prepare (defaults and `auto_now_add` included, as `save()` would), run
as a server-side prepared statement on PostgreSQL and through Django's cursor elsewhere
(archive.services.execute_one). Errors come out as Django's database errors, as before.
"""

from __future__ import annotations

import functools
import os
from typing import Any, cast

from django.db import DatabaseError, connections, router
from django.db.models import Field
from django.utils import timezone

from archive.services import execute_one
from dicom_net.models import AssociationLog

_ENDING = ("ended_at", "outcome", "stored", "duplicates", "failed", "echoes", "failures")


def _connection() -> Any:
    return connections[router.db_for_write(AssociationLog)]


@functools.cache
def _fields() -> tuple[Field, ...]:
    return tuple(cast(Field, f) for f in AssociationLog._meta.concrete_fields
                 if not f.primary_key)


def _column(field: Any) -> str:
    return str(field.column)


@functools.cache
def _insert_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    meta = AssociationLog._meta
    columns = ", ".join(quote(_column(f)) for f in _fields())
    marks = ", ".join("%s" for _ in _fields())
    # Table and column names from the model, quoted; values bound as parameters.
    return (f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({marks})"  # noqa: S608
            f" RETURNING {quote(_column(meta.pk))}")


@functools.cache
def _update_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    meta = AssociationLog._meta
    sets = ", ".join(f"{quote(_column(meta.get_field(n)))} = %s" for n in _ENDING)
    return (f"UPDATE {quote(meta.db_table)} SET {sets}"  # noqa: S608
            f" WHERE {quote(_column(meta.pk))} = %s")


def log_open(*, calling_ae: str, called_ae: str, peer_host: str,
             peer_port: int | None) -> int:
    """The row of an accepted association (outcome open); returns its id."""
    conn = _connection()
    row = AssociationLog(calling_ae=calling_ae, called_ae=called_ae, peer_host=peer_host,
                         peer_port=peer_port, pid=os.getpid())
    params = [f.get_db_prep_save(f.pre_save(row, add=True), connection=conn)
              for f in _fields()]
    got = execute_one(conn, _insert_sql(conn.alias), params)
    if got is None:
        raise DatabaseError("the association log's INSERT returned no row")
    return int(got[0])


def _printable(value: Any) -> Any:
    """A peer's text as JSON PostgreSQL keeps: jsonb refuses U+0000, which a sender's SOP
    Instance UID or a comment quoting its data may hold (the row would stay "open")."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def log_end(log_id: int, *, outcome: str, stored: int, duplicates: int, failed: int,
            echoes: int, failures: list[dict[str, Any]]) -> None:
    """How the association ended, and what it carried."""
    conn = _connection()
    values = {"ended_at": timezone.now(), "outcome": outcome, "stored": stored,
              "duplicates": duplicates, "failed": failed, "echoes": echoes,
              "failures": [{key: _printable(value) for key, value in failure.items()}
                           for failure in failures]}
    meta = AssociationLog._meta
    params = [cast(Field, meta.get_field(n)).get_db_prep_save(values[n], connection=conn)
              for n in _ENDING]
    execute_one(conn, _update_sql(conn.alias), [*params, log_id])
