"""Writes to the archive. One door: `instance_store` (DESIGN.md: one door per action)."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.models import Field, Model
from django.utils import timezone
from pydicom.dataset import Dataset

from archive import storage
from archive.dicomio import (
    IndexAttrs,
    check_complete,
    check_inflatable,
    read_index,
    same_content,
    transfer_syntax,
)
from archive.errors import DatasetMismatch, DuplicateConflict, OutOfResources
from archive.models import Instance, Patient, Series, Study

log = logging.getLogger(__name__)

# Called inside the store's transaction once the index rows exist; raising a StoreError
# there rolls the whole store back (how rv turns an RT Plan into clinical data, or refuses it).
OnIndexed = Callable[[Instance, Dataset], None]


# The files instance_store created inside the innermost `files_removed_on_rollback` block.
_written: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "archive_files_written", default=None)


@contextlib.contextmanager
def files_removed_on_rollback() -> Iterator[None]:
    """For a caller that stores inside a larger transaction (rv records a session and its
    records in one): if the block raises, e.g. because that transaction rolled back after
    instance_store returned, remove each file instance_store created in it that no committed
    index row holds. Wrap the whole transaction (outside its `atomic`), so the check runs
    after the rollback. A rollback of a transaction enclosing the block, after it ended
    normally, still leaves orphans: `manage.py archive_check --remove-orphans` lists them."""
    outer = _written.get()
    written: list[str] = []
    token = _written.set(written)
    try:
        yield
    except BaseException:
        _written.reset(token)
        for rel in written:
            if not _held(_sha256_of(rel)):
                storage.remove(rel)
        raise
    _written.reset(token)
    if outer is not None:  # a nested block: the enclosing one answers for these files too
        outer.extend(written)


def _sha256_of(rel: str) -> str:
    return rel.rsplit("/", 1)[-1].removesuffix(".dcm")


@dataclass(frozen=True)
class StoreResult:
    outcome: Literal["stored", "duplicate"]
    instance: Instance


def instance_store(
    *,
    data: bytes,
    calling_ae: str = "",
    source: str = "c-store",
    expected_sop_class: str | None = None,
    allowed_sop_classes: frozenset[str] | None = None,
    on_indexed: OnIndexed | None = None,
    on_indexed_sop_classes: frozenset[str] | None = None,
    part: storage.Part | None = None,
) -> StoreResult:
    """Store one DICOM Part 10 object, bytes as given, and index it.

    Returns only once the file is fsynced in place and its index row committed. Sending the
    identical object again is a "duplicate" success that writes nothing; a different object
    under a SOP Instance UID already held raises DuplicateConflict and keeps the original.
    Raises a StoreError subclass (with its DICOM status) for anything else refused.
    `on_indexed` runs inside the index transaction; with `on_indexed_sop_classes` only for
    objects of those SOP classes (the others take the one-statement path for a known series).
    `part`: these very bytes already written to the store's `.tmp` and hashed as they
    arrived (dicom_net.streaming); renamed into place instead of written again. The caller
    discards it afterwards (a no-op once it is in place).
    """
    # Whole before decoded: a truncated or garbled object is "cannot understand" (0xC210),
    # whichever attribute it lost; a deflate bomb is refused before anything inflates it.
    check_inflatable(data)
    check_complete(data, transfer_syntax(data))
    ds, attrs = read_index(data, inflatable=True)
    if expected_sop_class is not None and attrs.sop_class_uid != expected_sop_class:
        raise DatasetMismatch(
            f"SOP Class mismatch: data set {attrs.sop_class_uid}, presentation context "
            f"{expected_sop_class}")
    if allowed_sop_classes is not None and attrs.sop_class_uid not in allowed_sop_classes:
        raise DatasetMismatch(f"SOP Class {attrs.sop_class_uid} is not one this archive stores")
    if on_indexed_sop_classes is not None and attrs.sop_class_uid not in on_indexed_sop_classes:
        on_indexed = None
    if part is not None and part.size == len(data):
        sha256 = part.sha256  # hashed as it arrived: no second pass over the bytes
    else:
        sha256 = hashlib.sha256(data).hexdigest()
        part = None

    # No look-up first: identical bytes are already on disk under their hash (the write is
    # then skipped), and the index tells a duplicate or a conflict apart below. A refused
    # object's new file is removed again in `finally`.
    try:
        placed = storage.place(data, sha256, part)
    except OSError as exc:
        log.error("storing %s failed: %s", attrs.sop_instance_uid, exc)
        raise OutOfResources(f"the archive cannot write the file: {exc.strerror or exc}") from exc

    stored = False
    try:
        fields = _instance_fields(attrs, sha256=sha256, size=len(data), rel=placed.rel,
                                  calling_ae=calling_ae, source=source)
        try:
            result = _index_or_find(attrs, fields, ds=ds, data=data, on_indexed=on_indexed)
        except (OperationalError, InterfaceError) as exc:
            # The connection broke (a restarted or failed-over server, a terminated backend,
            # an idle timeout): nothing of this store is committed, or if the COMMIT itself
            # was lost after the server applied it, the second try finds the row and answers
            # "duplicate" (the SOP Instance UID is unique): one more try never makes two rows.
            if not _reconnect():
                log.error("indexing %s failed: %s", attrs.sop_instance_uid, exc)
                raise OutOfResources(f"the index database is unavailable: {exc}") from exc
            log.warning("indexing %s: database connection lost (%s); trying once more",
                        attrs.sop_instance_uid, str(exc).strip())
            try:
                result = _index_or_find(attrs, fields, ds=ds, data=data, on_indexed=on_indexed)
            except DatabaseError as again:
                log.error("indexing %s failed: %s", attrs.sop_instance_uid, again)
                raise OutOfResources(f"the index database is unavailable: {again}") from again
        except DatabaseError as exc:
            log.error("indexing %s failed: %s", attrs.sop_instance_uid, exc)
            raise OutOfResources(f"the index database is unavailable: {exc}") from exc
        # A duplicate in another encoding is held under its first bytes: this file goes.
        stored = result.outcome == "stored"
        pending = _written.get()
        if stored and placed.created and pending is not None:
            pending.append(placed.rel)
        return result
    finally:
        # Leave no stray file: remove what this call wrote unless a committed row holds it
        # or another store reused it meanwhile (which moves its mtime).
        if placed.created and not stored:
            storage.remove_unless_reused(
                placed.rel, lambda st: st.st_mtime_ns != placed.mtime_ns or _held(sha256))


def _index_or_find(attrs: IndexAttrs, fields: dict[str, Any], *, ds: Dataset, data: bytes,
                   on_indexed: OnIndexed | None) -> StoreResult:
    """Index the object, or find it already held (a duplicate); DatabaseErrors propagate."""
    try:
        instance = None if on_indexed is not None else _insert_into_held_series(attrs, fields)
        if instance is None:
            existing = _existing(attrs.sop_instance_uid, fields["sha256"], data)
            if existing is not None:
                return StoreResult("duplicate", existing)
            instance = _index(attrs, fields, ds=ds, on_indexed=on_indexed)
    except IntegrityError:
        # Another association stored this SOP Instance UID between our check and insert.
        existing = _existing(attrs.sop_instance_uid, fields["sha256"], data)
        if existing is None:
            raise OutOfResources("the index refused the object; send it again") from None
        return StoreResult("duplicate", existing)
    return StoreResult("stored", instance)


def _reconnect() -> bool:
    """Drop the index connection so the next query opens a new one; False when it cannot
    be dropped (inside a caller's transaction, which is lost anyway: it must fail whole)."""
    conn = connections[router.db_for_write(Instance)]
    if conn.in_atomic_block:
        return False
    conn.close()
    return True


def _held(sha256: str) -> bool:
    """Does a committed index row hold these bytes? On a broken connection, asks again on a
    new one; if the database cannot answer at all, says True (keep the file: an orphan is
    safer than a lost object; `archive_check --repair` clears orphans later)."""
    for attempt in range(2):
        try:
            return Instance.objects.filter(sha256=sha256).exists()
        except DatabaseError:
            if attempt or not _reconnect():
                return True
    return True


def _existing(sop_instance_uid: str, sha256: str, offered: bytes) -> Instance | None:
    """The held instance if the offered object is the same one, None if none is held.

    Byte-identical is the same; so is the same content in another encoding (another peer,
    e.g. DCMTK's storescu, re-encodes sequences or the transfer syntax on the way): then the
    first copy is kept and the offer answered as a duplicate. Different content raises.
    """
    held = Instance.objects.filter(sop_instance_uid=sop_instance_uid).first()
    if held is None:
        return None
    if held.sha256 == sha256 or _same_content(held, offered):
        return held
    log.warning("refused a different object under SOP Instance UID %s (held sha256 %s, "
                "offered %s)", sop_instance_uid, held.sha256, sha256)
    raise DuplicateConflict(
        f"Different object under a stored SOP Instance UID; original kept: {sop_instance_uid} "
        "(a changed object needs a new SOP Instance UID)")


def _same_content(held: Instance, offered: bytes) -> bool:
    try:
        data = storage.absolute_path(held.path).read_bytes()
    except OSError:
        return False
    return same_content(data, offered)


def _instance_fields(attrs: IndexAttrs, *, sha256: str, size: int, rel: str,
                     calling_ae: str, source: str) -> dict[str, Any]:
    return {"sop_instance_uid": attrs.sop_instance_uid, "sop_class_uid": attrs.sop_class_uid,
            "instance_number": attrs.instance_number, "content_date": attrs.content_date,
            "content_time": attrs.content_time,
            "transfer_syntax_uid": attrs.transfer_syntax_uid, "sha256": sha256, "size": size,
            "path": rel, "calling_ae": calling_ae[:16], "source": source}


@functools.cache
def _insert_into_held_series_sql(alias: str, names: tuple[str, ...]) -> str:
    q = connections[alias].ops.quote_name

    def col(model: type[Model], name: str) -> str:
        return q(str(cast(Field, model._meta.get_field(name)).column))

    def table(model: type[Model]) -> str:
        return q(model._meta.db_table)

    connection = connections[alias]

    def value(name: str) -> str:
        # PostgreSQL binds parameters on the server (a prepared statement, below): a value
        # in the SELECT list gets its column's type explicitly.
        if connection.vendor != "postgresql":
            return "%s"
        # Without a length (varchar, not varchar(64)): too long a value must fail on the
        # column, as before, not be cut short by the cast.
        db_type = str(cast(Field, Instance._meta.get_field(name)).db_type(connection))
        return f"CAST(%s AS {db_type.split('(')[0]})"

    # Only quoted table and column names and the models' column types go into the text;
    # every value is a parameter.
    return (
        f"INSERT INTO {table(Instance)} ({col(Instance, 'series')}, "  # noqa: S608
        + ", ".join(col(Instance, name) for name in names) + ") "
        f"SELECT se.{col(Series, 'id')}, " + ", ".join(value(name) for name in names)
        + f" FROM {table(Series)} se"
        f" JOIN {table(Study)} st ON st.{col(Study, 'id')} = se.{col(Series, 'study')}"
        f" JOIN {table(Patient)} pa ON pa.{col(Patient, 'id')} = st.{col(Study, 'patient')}"
        f" WHERE se.{col(Series, 'series_instance_uid')} = %s"
        f" AND st.{col(Study, 'study_instance_uid')} = %s"
        f" AND pa.{col(Patient, 'patient_id')} = %s"
        f" AND pa.{col(Patient, 'issuer_of_patient_id')} = %s"
        f" ON CONFLICT ({col(Instance, 'sop_instance_uid')}) DO NOTHING"
        f" RETURNING {col(Instance, 'id')}, {col(Instance, 'series')}")


def _insert_into_held_series(attrs: IndexAttrs, fields: dict[str, Any]) -> Instance | None:
    """The common case in one statement: a new object of a series already indexed under the
    same study and patient. Returns None, having written nothing, for anything else (a new
    series, a mismatch, a SOP Instance UID already held), which the caller sorts out.

    Objects come a series at a time; issue 3's profile showed the ORM path (look-up, BEGIN,
    three get-or-creates, INSERT, COMMIT: 7 round trips, most of the time in Django and
    psycopg code) at about half of each C-STORE. This is one INSERT ... SELECT that commits
    by itself (autocommit), written in SQL both PostgreSQL and SQLite (3.35+) run.
    """
    conn = connections[router.db_for_write(Instance)]
    values = dict(fields, received_at=timezone.now())
    meta = Instance._meta
    params: list[Any] = [
        cast(Field, meta.get_field(name)).get_db_prep_save(value, connection=conn)
        for name, value in values.items()]
    params += [attrs.series_instance_uid, attrs.study_instance_uid, attrs.patient_id,
               attrs.issuer_of_patient_id]
    sql = _insert_into_held_series_sql(conn.alias, tuple(values))
    row = execute_one(conn, sql, params)
    if row is None:
        return None
    instance = Instance(pk=row[0], series_id=row[1], **values)
    instance._state.adding = False
    instance._state.db = conn.alias
    return instance


def execute_one(conn: Any, sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """One statement; its first row, or None (no row, or a statement without rows). On
    PostgreSQL a server-side prepared statement on this connection (psycopg keeps it for
    the connection's life; the SCP's connections are pooled, dicom_net.dbpool): Django's
    cursors bind parameters on the client, so PostgreSQL parsed and planned the INSERT for
    every object, a quarter of a millisecond of the server's time, and the quoting of
    every value in Python. Elsewhere Django's cursor. Errors come out as Django's."""
    if conn.vendor != "postgresql":
        with conn.cursor() as django_cursor:
            django_cursor.execute(sql, params)
            if django_cursor.description is None:
                return None
            return cast(tuple[Any, ...] | None, django_cursor.fetchone())
    from psycopg import Cursor

    conn.ensure_connection()
    with conn.wrap_database_errors, Cursor(conn.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        if cursor.description is None:
            return None
        return cast(tuple[Any, ...] | None, cursor.fetchone())


def _series_for(attrs: IndexAttrs) -> Series:
    """The object's series (its study and patient attached: the clinical hooks read them),
    creating patient, study and series rows as needed; refuses an object whose series or
    study belongs elsewhere."""
    patient, _ = Patient.objects.get_or_create(
        patient_id=attrs.patient_id, issuer_of_patient_id=attrs.issuer_of_patient_id,
        defaults={"patient_name": attrs.patient_name, "birth_date": attrs.patient_birth_date,
                  "sex": attrs.patient_sex},
    )
    study, _ = Study.objects.get_or_create(
        study_instance_uid=attrs.study_instance_uid,
        defaults={"patient": patient, "study_date": attrs.study_date,
                  "study_time": attrs.study_time, "accession_number": attrs.accession_number,
                  "study_id": attrs.study_id, "study_description": attrs.study_description,
                  "referring_physician_name": attrs.referring_physician_name},
    )
    if study.patient_id != patient.pk:
        raise DatasetMismatch(
            f"Patient mismatch: patient ID '{attrs.patient_id}' but Study Instance UID "
            f"{attrs.study_instance_uid} belongs to patient ID '{study.patient.patient_id}'")
    series, _ = Series.objects.get_or_create(
        series_instance_uid=attrs.series_instance_uid,
        defaults={"study": study, "modality": attrs.modality,
                  "series_number": attrs.series_number,
                  "series_description": attrs.series_description,
                  "series_date": attrs.series_date, "series_time": attrs.series_time},
    )
    if series.study_id != study.pk:
        raise DatasetMismatch(
            f"Study mismatch: Series Instance UID {attrs.series_instance_uid} belongs to "
            f"study {series.study.study_instance_uid}, not {attrs.study_instance_uid}")
    study.patient = patient  # the same rows, as checked above: no queries to read them again
    series.study = study
    return series


@transaction.atomic
def _index(attrs: IndexAttrs, fields: dict[str, Any], *, ds: Dataset,
           on_indexed: OnIndexed | None) -> Instance:
    """Insert the Instance row, and its Patient/Study/Series rows if new, in one transaction."""
    instance = Instance.objects.create(series=_series_for(attrs), **fields)
    if on_indexed is not None:
        on_indexed(instance, ds)
    return instance
