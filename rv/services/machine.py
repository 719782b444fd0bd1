"""Treatment records a machine sends (issue 8): matched to plan, beams and fraction; a
session created from them or reconciled with the one a therapist recorded.

PS3.3 A.29 RT Beams Treatment Record, A.50 RT Ion Beams Treatment Record, A.30 RT Brachy
Treatment Record; C.8.8.17 General Treatment Record (Treatment Record Content Origin,
Referenced RT Plan), C.8.8.18 Treatment Machine Record, C.8.8.21 Beams Session Record
(C.8.8.21.2 partial fractions and continuations), C.8.8.22 Brachy Session Record.
See docs/machine-records.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import (
    RTBeamsTreatmentRecordStorage,
    RTBrachyTreatmentRecordStorage,
    RTIonBeamsTreatmentRecordStorage,
)

import archive.models
from rv import verification as v
from rv.errors import DomainError, ValidationError
from rv.models import (
    BrachyChannel,
    ContentOrigin,
    DeviceRecord,
    Plan,
    Session,
    Task,
    TerminationStatus,
    TreatmentMachine,
)
from rv.roles import ASSIGN_RECORD, REVIEW_RECORD, require
from rv.services.audit import audit_record
from rv.services.sessions import BeamInput, ChannelInput, device_session_save, plan_state
from rv.services.tasks import tasks_after_device_record, tasks_close
from rv.services.workitems import workitem_for_record
from rv.treatment_request import SETTING_FIELDS
from rv.verification import MachineSetting

TREATMENT_RECORD_SOP_CLASSES = frozenset({
    RTBeamsTreatmentRecordStorage, RTIonBeamsTreatmentRecordStorage,
    RTBrachyTreatmentRecordStorage})

# What counts as a difference between the console's session and the machine's record.
METERSET_SLACK = 0.05   # MU (or minutes, or seconds for channels)
ANGLE_SLACK = 0.1       # degrees
POSITION_SLACK = 0.5    # mm
# Each recorded machine parameter (rv.treatment_request.SETTING_FIELDS) and its keyword in a
# control point of the machine's record (PS3.3 C.8.8.21 Control Point Delivery Sequence).
PARAMETERS = (("gantry_angle", "GantryAngle"), ("collimator_angle", "BeamLimitingDeviceAngle"),
              ("couch_angle", "PatientSupportAngle"),
              ("table_top_vertical", "TableTopVerticalPosition"),
              ("table_top_longitudinal", "TableTopLongitudinalPosition"),
              ("table_top_lateral", "TableTopLateralPosition"))

User = AbstractBaseUser | AnonymousUser
S = DeviceRecord.Status


# --- parsing (pydicom only) -----------------------------------------------------------------

@dataclass
class ParsedRecord:
    origin: str
    manufacturer: str
    referenced_plan_uid: str
    machine_name: str
    treated_at: datetime | None
    fraction_number: int | None
    continuation: bool
    beams: list[dict[str, Any]] = field(default_factory=list)
    channels: list[dict[str, Any]] = field(default_factory=list)

    def content(self) -> dict[str, Any]:
        return {"beams": self.beams, "channels": self.channels}


def _float(value: object) -> float | None:
    try:
        return None if value in (None, "") else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _int(value: object) -> int | None:
    try:
        return None if value in (None, "") else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _termination(item: Dataset) -> str:
    value = str(item.get("TreatmentTerminationStatus", "") or "").strip().upper()
    return value if value in TerminationStatus.values else TerminationStatus.UNKNOWN


def _when(date: object, time: object) -> datetime | None:
    text = str(date or "").strip()
    if len(text) != 8:
        return None
    clock = (str(time or "").split(".")[0] + "000000")[:6]
    try:
        naive = datetime.strptime(text + clock, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return timezone.make_aware(naive)


def record_parse(ds: Dataset) -> ParsedRecord:
    """What the machine says it delivered. Tolerant: a missing value is None."""
    plan_uid = ""
    for ref in ds.get("ReferencedRTPlanSequence", []) or []:
        plan_uid = str(ref.get("ReferencedSOPInstanceUID", "") or "")
        break
    machine = ""
    for m in ds.get("TreatmentMachineSequence", []) or []:
        machine = str(m.get("TreatmentMachineName", "") or "")
        break
    treated_at = _when(ds.get("TreatmentDate"), ds.get("TreatmentTime"))
    fractions: list[int] = []
    continuation = False
    beams = []
    items = list(ds.get("TreatmentSessionBeamSequence", []) or []) + list(
        ds.get("TreatmentSessionIonBeamSequence", []) or [])
    for item in items:
        number = _int(item.get("ReferencedBeamNumber"))
        if number is None:
            continue
        fraction = _int(item.get("CurrentFractionNumber"))
        if fraction is not None:
            fractions.append(fraction)
        delivery_type = str(item.get("TreatmentDeliveryType", "") or "").upper()
        continuation |= delivery_type == "CONTINUATION"
        cps = list(item.get("ControlPointDeliverySequence", []) or []) + list(
            item.get("IonControlPointDeliverySequence", []) or [])
        first = cps[0] if cps else Dataset()
        if treated_at is None and cps:
            treated_at = _when(first.get("TreatmentControlPointDate"),
                               first.get("TreatmentControlPointTime"))
        beam: dict[str, Any] = {
            "beam": number, "delivered": _float(item.get("DeliveredPrimaryMeterset")) or 0.0,
            "specified": _float(item.get("SpecifiedPrimaryMeterset")),
            "termination": _termination(item), "delivery_type": delivery_type,
            "verification": str(item.get("TreatmentVerificationStatus", "") or "")}
        for name, keyword in PARAMETERS:
            beam[name] = _float(first.get(keyword))
        beams.append(beam)
    channels = []
    for setup in ds.get("TreatmentSessionApplicationSetupSequence", []) or []:
        fraction = _int(setup.get("CurrentFractionNumber"))
        if fraction is not None:
            fractions.append(fraction)
        delivery_type = str(setup.get("TreatmentDeliveryType", "") or "").upper()
        continuation |= delivery_type == "CONTINUATION"
        setup_number = _int(setup.get("ReferencedBrachyApplicationSetupNumber"))
        for ch in setup.get("RecordedChannelSequence", []) or []:
            channels.append({
                "setup": setup_number, "channel": _int(ch.get("ChannelNumber")),
                "delivered": _float(ch.get("DeliveredChannelTotalTime")) or 0.0,
                "specified": _float(ch.get("SpecifiedChannelTotalTime")),
                "termination": _termination(setup)})
    return ParsedRecord(
        origin=str(ds.get("TreatmentRecordContentOrigin", "") or "").strip().upper(),
        manufacturer=str(ds.get("Manufacturer", "") or ""), referenced_plan_uid=plan_uid,
        machine_name=machine, treated_at=treated_at,
        fraction_number=max(fractions) if fractions else None, continuation=continuation,
        beams=beams, channels=channels)


def ignored_because(*, parsed: ParsedRecord, instance: archive.models.Instance) -> str:
    """Why a treatment record is not one a machine sent ("" if it is): Verity's own records
    (source "generated", Manufacturer "Verity") and USER or SIMULATION ones stay archive
    objects only, so the record builder and this intake never feed each other."""
    if instance.source == "generated" or parsed.manufacturer.strip().lower() == "verity":
        return "generated by Verity"
    if parsed.origin not in ("", ContentOrigin.DEVICE):
        return f"content origin {parsed.origin}"
    return ""


# --- the services ---------------------------------------------------------------------------

@transaction.atomic
def device_record_receive(*, instance: archive.models.Instance, dataset: Dataset,
                          calling_ae: str = "") -> DeviceRecord | None:
    """The on_indexed hook for treatment records: runs in the store's transaction.

    Never refuses the C-STORE for a clinical reason (the machine has delivered already):
    an unknown plan makes an UNMATCHED record; violations make a NOT_VERIFIED session."""
    parsed = record_parse(dataset)
    if ignored_because(parsed=parsed, instance=instance):
        return None
    record = DeviceRecord.objects.create(
        instance=instance, sop_class_uid=instance.sop_class_uid,
        referenced_plan_uid=parsed.referenced_plan_uid[:64],
        machine_name=parsed.machine_name[:64], fraction_number=parsed.fraction_number,
        continuation=parsed.continuation, treated_at=parsed.treated_at,
        content=parsed.content(), status=S.UNMATCHED)
    plan = (Plan.objects.filter(sop_instance_uid=parsed.referenced_plan_uid).first()
            if parsed.referenced_plan_uid else None)
    if plan is None:
        record.problem = (f"No plan with SOP Instance UID {parsed.referenced_plan_uid}."
                          if parsed.referenced_plan_uid else "The record names no RT Plan.")
        record.save(update_fields=["problem"])
        event = audit_record(action="device_record.unmatched", obj=record, username=calling_ae,
                             details={"referenced_plan": parsed.referenced_plan_uid,
                                      "sop_instance_uid": instance.sop_instance_uid})
        tasks_after_device_record(record=record, event=event)  # a physicist assigns it
        return record
    # TDW-II: the step it was delivered under (a record is stored whatever the step's state).
    record.workitem = workitem_for_record(plan=plan, fraction_number=parsed.fraction_number,
                                          calling_ae=calling_ae)
    if record.workitem is not None:
        record.save(update_fields=["workitem"])
    return _apply(record=record, plan=plan, sender=calling_ae, done=None)


@transaction.atomic
def device_record_assign(*, record: DeviceRecord, plan: Plan, user: User) -> DeviceRecord:
    """A physicist ties an unmatched record to a plan of the same patient; it is then
    processed as if it had named that plan (session created or reconciled)."""
    require(user, ASSIGN_RECORD)
    record = DeviceRecord.objects.select_for_update().select_related(
        "instance__series__study").get(pk=record.pk)
    if record.status != S.UNMATCHED:
        raise ValidationError("This record is already matched.")
    plan = Plan.objects.select_related("patient").get(pk=plan.pk)
    if plan.patient.archive_patient_id != record.instance.series.study.patient_id:
        raise ValidationError("The plan belongs to another patient than the record.")
    record.assigned_by = user  # type: ignore[assignment]
    record.assigned_at = timezone.now()
    record.problem = ""
    record.save(update_fields=["assigned_by", "assigned_at", "problem"])
    audit_record(action="device_record.assign", obj=record, user=user,
                 details={"plan": plan.pk, "sop_instance_uid": record.instance.sop_instance_uid})
    record = _apply(record=record, plan=plan, sender=user.get_username(), done=S.ASSIGNED)
    if record.status != S.UNMATCHED:
        tasks_close(kind=Task.Kind.UNMATCHED_RECORD, device_record=record, user=user,
                    action="device_record.assign")
    return record


@transaction.atomic
def device_record_review(*, record: DeviceRecord, user: User, comment: str) -> DeviceRecord:
    """A physicist or physician has looked at what a record flagged (differences from the
    console, violations of a device session) and says what they concluded; the flag on the
    chart clears. The session itself is not changed: what was delivered stays recorded."""
    require(user, REVIEW_RECORD)
    record = DeviceRecord.objects.select_for_update().get(pk=record.pk)
    if not (record.differences or record.violations):
        raise ValidationError("This record flagged nothing to review.")
    if not comment.strip():
        raise ValidationError("Say what you concluded.")
    record.reviewed_by = user  # type: ignore[assignment]
    record.reviewed_at = timezone.now()
    record.review_comment = comment.strip()
    record.save(update_fields=["reviewed_by", "reviewed_at", "review_comment"])
    audit_record(action="device_record.review", obj=record, user=user,
                 details={"comment": record.review_comment,
                          "differences": record.differences, "violations": record.violations})
    return record


def _machine(record: DeviceRecord, plan: Plan) -> TreatmentMachine:
    if record.machine_name:
        machine, _ = TreatmentMachine.objects.get_or_create(name=record.machine_name)
        return machine
    first = plan.beams.exclude(machine=None).first() or plan.application_setups.exclude(
        machine=None).first()
    if first is None or first.machine is None:
        raise ValidationError("The record names no treatment machine and the plan has none.")
    return first.machine


def _inputs(record: DeviceRecord, plan: Plan) -> tuple[list[BeamInput], list[ChannelInput]]:
    beams = {b.number: b for b in plan.beams.all()}
    b_in = []
    for b in record.content.get("beams", []):
        if b["beam"] not in beams:
            raise ValidationError(f"Beam {b['beam']} is not a beam of plan {plan.label}.")
        b_in.append(BeamInput(beam=beams[b["beam"]], delivered_meterset=b["delivered"],
                              termination_status=b["termination"],
                              setting=MachineSetting(**{
                                  n: b.get(n) for n in SETTING_FIELDS})))
    c_in = []
    for c in record.content.get("channels", []):
        channel = BrachyChannel.objects.filter(setup__plan=plan, setup__number=c["setup"],
                                               number=c["channel"]).select_related(
            "setup").first()
        if channel is None:
            raise ValidationError(f"Setup {c['setup']} channel {c['channel']} is not in plan "
                                  f"{plan.label}.")
        c_in.append(ChannelInput(channel=channel, delivered_time=c["delivered"],
                                 termination_status=c["termination"]))
    return b_in, c_in


def _apply(*, record: DeviceRecord, plan: Plan, sender: str, done: str | None) -> DeviceRecord:
    """Match `record` to `plan`: reconcile with a session of its fraction, or create one."""
    plan = Plan.objects.select_for_update(of=("self",)).get(pk=plan.pk)  # lock before count
    record.plan = plan
    state = plan_state(plan=plan)
    number = record.fraction_number or state.next_fraction()[0]
    record.fraction_number = number
    sessions = list(Session.objects.filter(
        plan_id__in=[p.pk for p in plan.revision_chain()], fraction_number=number)
        .order_by("treated_at", "id"))
    taken = set(DeviceRecord.objects.filter(session__in=sessions).exclude(pk=record.pk)
                .values_list("session_id", flat=True))
    free = [s for s in sessions if s.pk not in taken and s.content_origin == ContentOrigin.USER
            and s.continuation == record.continuation]
    when = record.treated_at or timezone.now()
    try:
        with transaction.atomic():  # a refusal rolls back what the attempt wrote
            _match(record=record, state=state, sessions=sessions, free=free, number=number,
                   when=when, sender=sender, done=done)
    except DomainError as exc:
        record.status = S.UNMATCHED
        record.session = None
        record.problem = exc.message
    record.save()
    event = audit_record(action=f"device_record.{record.status.lower()}", obj=record,
                         username=sender, details={
                             "plan": plan.pk, "session": record.session_id,
                             "fraction_number": number, "differences": record.differences,
                             "violations": record.violations, "problem": record.problem})
    tasks_after_device_record(record=record, event=event)  # UNMATCHED: a physicist assigns it
    return record


def _match(*, record: DeviceRecord, state: Any, sessions: list[Session], free: list[Session],
           number: int, when: datetime, sender: str, done: str | None) -> None:
    plan = state.plan
    if free:
        target = min(free, key=lambda s: abs((s.treated_at - when).total_seconds()))
        _reconcile(record, target, done=done)
    elif number not in state.started or (record.continuation
                                         and state.fraction_open(number)):
        b_in, c_in = _inputs(record, plan)
        session, violations = device_session_save(
            state=state, machine=_machine(record, plan), fraction_number=number,
            continuation=number in state.started, beams=b_in, channels=c_in, now=when,
            sender=sender, record_sop_instance_uid=record.instance.sop_instance_uid)
        record.session = session
        record.violations = [x.as_dict() for x in violations]
        record.status = done or S.CREATED
    else:
        # Already recorded (by a therapist, or from another record of the machine): a
        # second record for the same fraction is compared, never counted again.
        same = [s for s in sessions if s.continuation == record.continuation] or sessions
        _reconcile(record, same[-1], done=done)


def _reconcile(record: DeviceRecord, session: Session, *, done: str | None) -> None:
    record.session = session
    record.differences = differences(session=session, content=record.content)
    record.status = done or (S.RECONCILED if record.differences else S.MATCHED)


def _differs(attr: str, a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return False
    if attr in v.ANGLES:
        return v.angle_difference(a, b) > ANGLE_SLACK
    return abs(a - b) > POSITION_SLACK


def differences(*, session: Session, content: dict[str, Any]) -> list[dict[str, Any]]:
    """What the machine's record says against the session recorded: one
    {"beam", "field", "recorded", "device"} per difference."""
    out: list[dict[str, Any]] = []
    recorded = {bd.beam.number: bd for bd in session.beams.select_related("beam")}
    sent = set()
    for b in content.get("beams", []):
        sent.add(b["beam"])
        bd = recorded.get(b["beam"])
        name = f"Beam {b['beam']}"
        if bd is None:
            out.append({"beam": name, "field": "beam", "recorded": "not recorded",
                        "device": f"{b['delivered']:g} delivered"})
            continue
        if abs(bd.delivered_meterset - b["delivered"]) > METERSET_SLACK:
            out.append({"beam": name, "field": "delivered meterset",
                        "recorded": bd.delivered_meterset, "device": b["delivered"]})
        if bd.termination_status != b["termination"]:
            out.append({"beam": name, "field": "termination status",
                        "recorded": bd.termination_status, "device": b["termination"]})
        for attr, _kw in PARAMETERS:
            if _differs(attr, getattr(bd, attr), b.get(attr)):
                out.append({"beam": name, "field": attr.replace("_", " "),
                            "recorded": getattr(bd, attr), "device": b.get(attr)})
    for number, bd in recorded.items():
        if number not in sent and content.get("beams"):
            out.append({"beam": f"Beam {number}", "field": "beam",
                        "recorded": f"{bd.delivered_meterset:g} delivered",
                        "device": "not in the record"})
    channels = {(cd.setup.number, cd.channel.number): cd
                for cd in session.channels.select_related("setup", "channel")}
    for c in content.get("channels", []):
        name = f"Setup {c['setup']} channel {c['channel']}"
        cd = channels.get((c["setup"], c["channel"]))
        if cd is None:
            out.append({"beam": name, "field": "channel", "recorded": "not recorded",
                        "device": f"{c['delivered']:g} s delivered"})
            continue
        if abs(cd.delivered_time - c["delivered"]) > METERSET_SLACK:
            out.append({"beam": name, "field": "delivered time", "recorded": cd.delivered_time,
                        "device": c["delivered"]})
        if cd.termination_status != c["termination"]:
            out.append({"beam": name, "field": "termination status",
                        "recorded": cd.termination_status, "device": c["termination"]})
    return out
