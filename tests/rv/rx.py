"""Helpers of the prescription tests (issue 15): a prescription written and signed, plans
that give a second dose reference, one fraction checked and recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from pydicom.sequence import Sequence

from rv.ingest import object_receive
from rv.models import Course, Plan, Prescription, SetupClearance
from rv.services.prescriptions import (
    PrescriptionInput,
    ReferencePointInput,
    prescription_create,
    prescription_sign,
)
from rv.services.sessions import session_record
from rv.services.setup_check import OverrideInput, setup_check
from rv.treatment_request import BeamRequest, SessionRequest
from tests.rv.conftest import PASSWORD, machine_of, receive_plan
from tests.rv.plans import _dose_reference, dose_coefficient, part10, vmat_plan

# receive_plan: one arc of Beam Dose 1 Gy whose control points give dose reference 1 ("PTV")
# a coefficient equal to the meterset weight: 1 Gy a fraction to the PTV; 251 MU.
MU = 251.0


def rx_input(*, site: str = "Pelvis", per: float = 1.0, fractions: int = 5,
             points: tuple[ReferencePointInput, ...] | None = None,
             **kwargs: Any) -> PrescriptionInput:
    return PrescriptionInput(site=site, dose_per_fraction=per, fractions=fractions,
                             references=points or (ReferencePointInput("PTV", primary=True),),
                             **kwargs)


def prescribe(course: Course, physician: User, *, sign: bool = True,
              **kwargs: Any) -> Prescription:
    """A physician writes (and by default signs) a prescription for the course."""
    rx = prescription_create(course=course, user=physician, data=rx_input(**kwargs))
    return prescription_sign(prescription=rx, user=physician, password=PASSWORD) if sign \
        else rx


def plan_with_cord(*, patient_id: str = "RXCORD", label: str = "Cord", fractions: int = 5,
                   cord_share: float = 0.5) -> Plan:
    """receive_plan's plan with a second dose reference, "Cord" (an organ at risk), that
    gets `cord_share` of the beam's dose: its coefficients run to cord_share."""
    ds = vmat_plan(patient_id=patient_id, label=label, arcs=1, control_points=3,
                   leaf_pairs=2, fractions=fractions)
    cord = _dose_reference("Cord", 0.0)
    cord.DoseReferenceNumber = 2
    cord.DoseReferenceType = "ORGAN_AT_RISK"
    del cord.TargetPrescriptionDose
    ds.DoseReferenceSequence = Sequence([*ds.DoseReferenceSequence, cord])
    for cp in ds.BeamSequence[0].ControlPointSequence:
        weight = float(cp.CumulativeMetersetWeight)
        cp.ReferencedDoseReferenceSequence = Sequence([
            *cp.ReferencedDoseReferenceSequence,
            dose_coefficient(2, f"{weight * cord_share:.6f}")])
    return Plan.objects.get(instance=object_receive(data=part10(ds), calling_ae="TPS").instance)


def request(plan: Plan, *, mu: float | None = None) -> SessionRequest:
    return SessionRequest(plan_id=plan.pk, machine=machine_of(plan).name,
                          identity_confirmed=True,
                          beams=(BeamRequest(number=1, delivered_meterset=mu),))


def check(plan: Plan, therapist: User, *, override: OverrideInput | None = None,
          now: datetime | None = None) -> SetupClearance:
    return setup_check(request=request(plan), checked_by=therapist, override=override, now=now)


def treat(plan: Plan, therapist: User, *, mu: float = MU, override: OverrideInput | None = None,
          now: datetime | None = None) -> Any:
    """Check the set-up, then record `mu` against the clearance."""
    clearance = check(plan, therapist, override=override, now=now)
    return session_record(request=request(plan, mu=mu), recorded_by=therapist,
                          clearance=clearance, now=now)


def signed_by(user: User, keys: list[str], reason: str = "physician's decision") -> OverrideInput:
    return OverrideInput(username=user.username, password=PASSWORD, reason=reason,
                         violation_keys=tuple(keys))


__all__ = ["MU", "check", "plan_with_cord", "prescribe", "receive_plan", "request", "rx_input",
           "signed_by", "treat"]
