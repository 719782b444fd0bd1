"""Tests' shorthand for the console's two steps: the set-up check before beam-on, then the
record after it, in one call with Beam/Channel objects (as the tests of one step used to).

`session_record(...)` here = `setup_check` (with the override, if any) + the record against
its clearance. `record_only(...)` records without a set-up check (downtime)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rv.models import Appointment, Beam, BrachyChannel, Plan, Session, TreatmentMachine
from rv.services.sessions import session_record as _record
from rv.services.setup_check import OverrideInput, setup_check
from rv.treatment_request import BeamRequest, ChannelRequest, SessionRequest
from rv.verification import MachineSetting

__all__ = ["BeamInput", "ChannelInput", "OverrideInput", "record_only", "request_of",
           "session_record"]


@dataclass(frozen=True)
class BeamInput:
    beam: Beam
    delivered_meterset: float
    termination_status: str = "NORMAL"
    gantry_angle: float | None = None
    collimator_angle: float | None = None
    couch_angle: float | None = None
    table_top_vertical: float | None = None
    table_top_longitudinal: float | None = None
    table_top_lateral: float | None = None

    def request(self, *, recording: bool) -> BeamRequest:
        return BeamRequest(
            number=self.beam.number,
            delivered_meterset=self.delivered_meterset if recording else None,
            termination_status=self.termination_status,
            setting=MachineSetting(
                gantry_angle=self.gantry_angle, collimator_angle=self.collimator_angle,
                couch_angle=self.couch_angle, table_top_vertical=self.table_top_vertical,
                table_top_longitudinal=self.table_top_longitudinal,
                table_top_lateral=self.table_top_lateral))


@dataclass(frozen=True)
class ChannelInput:
    channel: BrachyChannel
    delivered_time: float
    termination_status: str = "NORMAL"
    interruptions: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def request(self, *, recording: bool) -> ChannelRequest:
        return ChannelRequest(setup=self.channel.setup.number, channel=self.channel.number,
                              delivered_time=self.delivered_time if recording else None,
                              termination_status=self.termination_status,
                              interruptions=self.interruptions)


def request_of(*, plan: Plan, machine: TreatmentMachine, beams: Any = (), channels: Any = (),
               identity_confirmed: bool = True, recording: bool,
               fraction_number: int | None = None, appointment: Appointment | None = None,
               patient_id: str | None = None) -> SessionRequest:
    return SessionRequest(
        plan_id=plan.pk, machine=machine.name, fraction_number=fraction_number,
        appointment_id=appointment.pk if appointment else None, patient_id=patient_id,
        identity_confirmed=identity_confirmed,
        beams=tuple(b.request(recording=recording) for b in beams),
        channels=tuple(c.request(recording=recording) for c in channels))


def session_record(*, plan: Plan, machine: TreatmentMachine, beams: Any = (),
                   channels: Any = (), recorded_by: Any, identity_confirmed: bool = True,
                   override: OverrideInput | None = None, fraction_number: int | None = None,
                   appointment: Appointment | None = None, now: datetime | None = None,
                   date_reason: str = "") -> Session:
    """Check the set-up, then record: the console's two steps."""
    common = {"plan": plan, "machine": machine, "beams": beams, "channels": channels,
              "identity_confirmed": identity_confirmed, "fraction_number": fraction_number,
              "appointment": appointment}
    clearance = setup_check(request=request_of(recording=False, **common),
                            checked_by=recorded_by, override=override, now=now,
                            date_reason=date_reason)
    return _record(request=request_of(recording=True, **common), recorded_by=recorded_by,
                   clearance=clearance, now=now)


def record_only(*, plan: Plan, machine: TreatmentMachine, beams: Any = (), channels: Any = (),
                recorded_by: Any, identity_confirmed: bool = True,
                fraction_number: int | None = None, appointment: Appointment | None = None,
                now: datetime | None = None, date_reason: str = "",
                clearance: Any = None) -> Session:
    """The record step alone (downtime: no set-up check; or against a given clearance)."""
    return _record(request=request_of(plan=plan, machine=machine, beams=beams,
                                      channels=channels, identity_confirmed=identity_confirmed,
                                      recording=True, fraction_number=fraction_number,
                                      appointment=appointment),
                   recorded_by=recorded_by, clearance=clearance, now=now,
                   date_reason=date_reason)
