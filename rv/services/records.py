"""Records out (DESIGN.md flow 4): a recorded session becomes its DICOM treatment record and
a new RT Treatment Summary Record of the plan, stored in the archive through the same door as
received objects and queued for export, all in the session's transaction."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from archive.dicomio import dataset_part10
from archive.models import Instance
from archive.services import instance_store
from rv.models import Plan, Session
from rv.models.treatment import ContentOrigin
from rv.outbox import record_export
from rv.records.beams import beams_record_build
from rv.records.brachy import brachy_record_build
from rv.records.common import plan_dataset
from rv.records.summary import summary_record_build
from rv.services.audit import audit_record


@dataclass(frozen=True)
class SessionRecords:
    record: Instance | None  # None for a machine's session: its own record stands
    summary: Instance


def _store(ds: Dataset) -> Instance:
    result = instance_store(data=dataset_part10(ds), source="generated")
    record_export(instance=result.instance)  # outbox: jobs commit with the record
    return result.instance


def session_records_store(*, session: Session) -> SessionRecords:
    """Build, store and queue for export the session's RT Beams (Ion Beams, Brachy)
    Treatment Record and the plan's new RT Treatment Summary Record; set the session's
    record_sop_instance_uid. Runs in the caller's transaction (session_record's): if
    anything fails, the session is not recorded either."""
    plan_ds = plan_dataset(session.plan)
    summary = _store(summary_record_build(plan=session.plan, plan_ds=plan_ds))
    if session.content_origin == ContentOrigin.DEVICE:
        # The machine's own record is the session's record (rv.services.machine sets it);
        # only the plan's summary is new.
        audit_record(action="session.records", obj=session, user=None, details={
            "record": session.record_sop_instance_uid, "summary": summary.sop_instance_uid})
        return SessionRecords(record=None, summary=summary)
    build = brachy_record_build if session.plan.kind == Plan.Kind.BRACHY else beams_record_build
    record = _store(build(session=session, plan_ds=plan_ds))
    session.record_sop_instance_uid = record.sop_instance_uid
    session.save(update_fields=["record_sop_instance_uid"])
    audit_record(action="session.records", obj=session, user=session.recorded_by, details={
        "record": record.sop_instance_uid, "record_sop_class": record.sop_class_uid,
        "summary": summary.sop_instance_uid})
    return SessionRecords(record=record, summary=summary)
