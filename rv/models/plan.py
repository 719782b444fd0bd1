"""An RT Plan as clinical data (PS3.3 A.20 RT Plan IOD, A.49 RT Ion Plan IOD)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from django.db import models

import archive.models
from rv.models.machine import ToleranceTable, TreatmentMachine
from rv.models.patient import Course, Patient


class Plan(models.Model):
    # PS3.3 C.8.8.9 RT General Plan Module, plus rv's own lifecycle
    class Status(models.TextChoices):
        RECEIVED = "RECEIVED"
        APPROVED = "APPROVED"
        ON_HOLD = "ON_HOLD"
        COMPLETED = "COMPLETED"
        RETIRED = "RETIRED"
        SUPERSEDED = "SUPERSEDED"

    class Kind(models.TextChoices):
        EXTERNAL = "EXTERNAL", "external beam (photon, electron)"
        ION = "ION", "ion (proton, carbon ...)"
        BRACHY = "BRACHY", "brachytherapy"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="plans")
    course = models.ForeignKey(Course, on_delete=models.PROTECT, related_name="plans")
    instance = models.OneToOneField(archive.models.Instance, on_delete=models.PROTECT,
                                    related_name="rv_plan")
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    label = models.CharField(max_length=16, db_index=True, help_text="RT Plan Label")
    name = models.CharField(max_length=64, blank=True, help_text="RT Plan Name")
    description = models.TextField(blank=True)
    plan_date = models.DateField(null=True, blank=True)
    geometry = models.CharField(max_length=16, blank=True, help_text="PATIENT or TREATMENT_DEVICE")
    intent = models.CharField(max_length=16, blank=True, help_text="Plan Intent")
    # PS3.3 C.8.8.16 Approval Module: the TPS's approval, not approval for treatment
    dicom_approval_status = models.CharField(max_length=16, blank=True)
    dicom_reviewer = models.CharField(max_length=324, blank=True)
    referenced_structure_set_uid = models.CharField(max_length=64, blank=True)
    frame_of_reference_uid = models.CharField(max_length=64, blank=True)
    brachy_treatment_type = models.CharField(max_length=16, blank=True, help_text="HDR, PDR ...")
    brachy_treatment_technique = models.CharField(max_length=16, blank=True)
    manufacturer = models.CharField(max_length=64, blank=True)
    software = models.CharField(max_length=200, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED,
                              db_index=True)
    status_before_hold = models.CharField(max_length=16, choices=Status.choices, blank=True)
    revision = models.PositiveIntegerField(default=1)
    previous_revision = models.OneToOneField("self", null=True, blank=True,
                                             on_delete=models.PROTECT,
                                             related_name="next_revision")
    approved_by = models.ForeignKey("auth.User", null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    # Set by the first recorded delivery (issue 5); a treated plan is never altered by C-STORE.
    treatment_started = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["patient", "course", "label", "revision"]

    def __str__(self) -> str:
        return f"{self.label} r{self.revision} ({self.status})"

    def revision_chain(self) -> list[Plan]:
        """This plan and the revisions before it, newest first."""
        chain: list[Plan] = [self]
        while chain[-1].previous_revision_id is not None:
            prev = chain[-1].previous_revision
            assert prev is not None
            chain.append(prev)
        return chain

    @property
    def fractions_planned(self) -> int:
        return sum(fg.fractions_planned or 0 for fg in self.fraction_groups.all())


class FractionGroup(models.Model):
    # PS3.3 C.8.8.13 RT Fraction Scheme Module: one Fraction Group Sequence item
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="fraction_groups")
    number = models.IntegerField()
    description = models.CharField(max_length=200, blank=True)
    fractions_planned = models.IntegerField(null=True, blank=True)
    number_of_beams = models.IntegerField(default=0)
    number_of_brachy_setups = models.IntegerField(default=0)

    class Meta:
        ordering = ["plan", "number"]
        constraints = [models.UniqueConstraint(fields=["plan", "number"],
                                               name="rv_fraction_group_unique")]

    def __str__(self) -> str:
        return f"FG {self.number}: {self.fractions_planned} fx"


def _arrays_to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


class Beam(models.Model):
    # PS3.3 C.8.8.14 RT Beams Module (C.8.8.25 RT Ion Beams Module for ion plans)
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="beams")
    number = models.IntegerField()
    name = models.CharField(max_length=64, blank=True)
    description = models.TextField(blank=True)
    machine = models.ForeignKey(TreatmentMachine, null=True, blank=True,
                                on_delete=models.PROTECT, related_name="beams")
    radiation_type = models.CharField(max_length=16, blank=True)
    beam_type = models.CharField(max_length=16, blank=True, help_text="STATIC or DYNAMIC")
    delivery_type = models.CharField(max_length=16, blank=True,
                                     help_text="Treatment Delivery Type")
    primary_dosimeter_unit = models.CharField(max_length=16, blank=True)
    nominal_energy = models.FloatField(null=True, blank=True, help_text="MV, MeV or MeV/u")
    final_cumulative_meterset_weight = models.FloatField(null=True, blank=True)
    number_of_control_points = models.IntegerField(default=0)
    number_of_leaves = models.IntegerField(default=0, help_text="MLC leaf pairs")
    scan_mode = models.CharField(max_length=16, blank=True, help_text="ion beams")
    tolerance_table = models.ForeignKey(ToleranceTable, null=True, blank=True,
                                        on_delete=models.PROTECT, related_name="beams")
    # Per control point, carried forward (PS3.3 C.8.8.14.5: later points list only changes):
    # npz of gantry, collimator, couch, weight (n,), jaw_x, jaw_y (n,2), mlc (n, 2*leaves).
    control_points_npz = models.BinaryField()
    # PS3.3 C.8.8.14.7: {"<dose reference number>": [[cumulative meterset weight, cumulative
    # dose reference coefficient], ...]} at the control points that give one; Beam Dose x
    # coefficient = dose to the reference so far (docs/treatment-model.md, rv/dose.py).
    dose_coefficients = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["plan", "number"]
        constraints = [models.UniqueConstraint(fields=["plan", "number"],
                                               name="rv_beam_unique")]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"

    @property
    def is_setup(self) -> bool:
        return self.delivery_type == "SETUP"

    def control_points(self) -> dict[str, np.ndarray]:
        """The per control point arrays (decoded once per instance)."""
        cached = self.__dict__.get("_control_points")
        if cached is None and not self.control_points_npz:
            cached = self.__dict__["_control_points"] = {}  # none recorded (seeded clinics)
        if cached is None:
            with np.load(io.BytesIO(bytes(self.control_points_npz))) as npz:
                cached = self.__dict__["_control_points"] = {k: npz[k] for k in npz.files}
        return cached

    def set_control_points(self, arrays: dict[str, Any]) -> None:
        self.control_points_npz = _arrays_to_bytes(arrays)
        self.__dict__.pop("_control_points", None)

    def last(self, key: str) -> float | None:
        """The value at the last control point (e.g. where an arc ends), or None."""
        arr = self.control_points().get(key)
        if arr is None or len(arr) == 0 or np.isnan(arr[-1]):
            return None
        return float(arr[-1])

    def first(self, key: str) -> float | None:
        """The value at the first control point (e.g. "gantry"), or None if not given."""
        arr = self.control_points().get(key)
        if arr is None or len(arr) == 0 or np.isnan(arr[0]):
            return None
        return float(arr[0])


class FractionGroupBeam(models.Model):
    # PS3.3 C.8.8.13: Referenced Beam Sequence item (meterset and dose per fraction)
    fraction_group = models.ForeignKey(FractionGroup, on_delete=models.CASCADE,
                                       related_name="beam_refs")
    beam = models.ForeignKey(Beam, on_delete=models.CASCADE, related_name="fraction_refs")
    meterset = models.FloatField(null=True, blank=True, help_text="Beam Meterset per fraction")
    dose = models.FloatField(null=True, blank=True, help_text="Beam Dose (Gy) per fraction")
    # {"<dose reference number>": Gy per fraction} where the plan gives the beam's dose to
    # each reference (Referenced Dose Reference Sequence in the Referenced Beam Sequence)
    reference_doses = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["fraction_group", "beam__number"]

    def __str__(self) -> str:
        return f"beam {self.beam_id}: {self.meterset} MU"


class BrachySource(models.Model):
    # PS3.3 C.8.8.15 RT Brachy Application Setups Module: Source Sequence
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="sources")
    number = models.IntegerField()
    source_type = models.CharField(max_length=16, blank=True)
    isotope = models.CharField(max_length=64, blank=True)
    half_life_days = models.FloatField(null=True, blank=True)
    air_kerma_strength = models.FloatField(
        null=True, blank=True, help_text="Reference Air Kerma Rate (µGy/h at 1 m)")
    reference_date = models.DateField(null=True, blank=True)
    reference_time = models.CharField(max_length=16, blank=True)
    manufacturer = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["plan", "number"]

    def __str__(self) -> str:
        return f"source {self.number} {self.isotope}"


class ApplicationSetup(models.Model):
    # PS3.3 C.8.8.15: Application Setup Sequence item
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="application_setups")
    number = models.IntegerField()
    name = models.CharField(max_length=64, blank=True)
    setup_type = models.CharField(max_length=16, blank=True)
    machine = models.ForeignKey(TreatmentMachine, null=True, blank=True,
                                on_delete=models.PROTECT, related_name="application_setups")
    total_reference_air_kerma = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["plan", "number"]

    def __str__(self) -> str:
        return f"setup {self.number} {self.name}"


class BrachyChannel(models.Model):
    # PS3.3 C.8.8.15: Channel Sequence item
    setup = models.ForeignKey(ApplicationSetup, on_delete=models.CASCADE,
                              related_name="channels")
    number = models.IntegerField()
    source = models.ForeignKey(BrachySource, on_delete=models.PROTECT, related_name="channels")
    total_time = models.FloatField(null=True, blank=True, help_text="Channel Total Time (s)")
    number_of_pulses = models.IntegerField(null=True, blank=True)
    pulse_repetition_interval = models.FloatField(null=True, blank=True)
    number_of_control_points = models.IntegerField(default=0)
    applicator_id = models.CharField(max_length=64, blank=True)
    applicator_type = models.CharField(max_length=64, blank=True)
    final_cumulative_time_weight = models.FloatField(null=True, blank=True)
    # {"<dose reference number>": [[cumulative time weight, coefficient], ...]} from the
    # Brachy Referenced Dose Reference Sequence of each Brachy Control Point
    dose_coefficients = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["setup", "number"]

    def __str__(self) -> str:
        return f"channel {self.number}: {self.total_time} s"


class FractionGroupBrachySetup(models.Model):
    # PS3.3 C.8.8.13: Referenced Brachy Application Setup Sequence item
    fraction_group = models.ForeignKey(FractionGroup, on_delete=models.CASCADE,
                                       related_name="brachy_refs")
    setup = models.ForeignKey(ApplicationSetup, on_delete=models.CASCADE,
                              related_name="fraction_refs")
    dose = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"setup {self.setup_id}: {self.dose} Gy"


class DoseReference(models.Model):
    # PS3.3 C.8.8.10 RT Prescription Module: Dose Reference Sequence item
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="dose_references")
    number = models.IntegerField()
    structure_type = models.CharField(max_length=16, blank=True)
    description = models.CharField(max_length=64, blank=True)
    reference_type = models.CharField(max_length=16, blank=True, help_text="TARGET, ORGAN_AT_RISK")
    roi_number = models.IntegerField(null=True, blank=True)
    target_prescription_dose = models.FloatField(null=True, blank=True)
    delivery_maximum_dose = models.FloatField(null=True, blank=True)
    target_maximum_dose = models.FloatField(null=True, blank=True)
    organ_at_risk_maximum_dose = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["plan", "number"]

    def __str__(self) -> str:
        return f"{self.number} {self.description}"
