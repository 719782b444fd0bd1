"""Treatment: the schedule, the sessions recorded at the console and what each delivered.

Mirrors the RT Beams / Brachy Treatment Record (PS3.3 A.29, A.30): a `Session` is one
treatment session (C.8.8.21 Treatment Session Beam Sequence; C.8.8.22 for brachy), a
`BeamDelivery` one item of its Treatment Session Beam Sequence, a `ChannelDelivery` one
Recorded Channel Sequence item, an `Override` one Override Sequence item (C.8.8.21: Override
Parameter, Override Reason, Operator). See docs/treatment-model.md.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from rv.models.machine import TreatmentMachine
from rv.models.plan import ApplicationSetup, Beam, BrachyChannel, DoseReference, Plan


class TerminationStatus(models.TextChoices):
    # PS3.3 C.8.8.21 Treatment Termination Status (3008,002A)
    NORMAL = "NORMAL", "normal"
    OPERATOR = "OPERATOR", "stopped by the operator"
    MACHINE = "MACHINE", "stopped by the machine"
    UNKNOWN = "UNKNOWN", "unknown"


class VerificationStatus(models.TextChoices):
    # PS3.3 C.8.8.21 Treatment Verification Status (3008,002C)
    VERIFIED = "VERIFIED", "verified"
    VERIFIED_OVR = "VERIFIED_OVR", "verified with override"
    NOT_VERIFIED = "NOT_VERIFIED", "not verified"


class ContentOrigin(models.TextChoices):
    # PS3.3 C.8.8.17 Treatment Record Content Origin... as rv records it
    USER = "USER", "entered at the console"
    DEVICE = "DEVICE", "sent by the treatment machine"
    SIMULATION = "SIMULATION", "simulation"


class Appointment(models.Model):
    """One appointment on a machine on a day, at a time for a while: a row of the day list.
    Only a treatment appointment is a fraction (`fraction_number` 1..fractions planned,
    counted over the plan's revisions); imaging, a new start's talk-through, a physics check
    or a review visit has none. See rv.services.schedule."""

    class Status(models.TextChoices):
        SCHEDULED = "SCHEDULED", "scheduled"
        PARTIAL = "PARTIAL", "begun, a beam left to continue"
        DONE = "DONE", "delivered"
        CANCELLED = "CANCELLED", "cancelled"
        MISSED = "MISSED", "missed (added at the end of the course)"

    class Activity(models.TextChoices):
        TREATMENT = "TREATMENT", "treatment"
        IMAGING = "IMAGING", "imaging"
        NEW_START = "NEW_START", "new start"
        PHYSICS_CHECK = "PHYSICS_CHECK", "physics check"
        REVIEW_VISIT = "REVIEW_VISIT", "review visit"

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="appointments")
    machine = models.ForeignKey(TreatmentMachine, on_delete=models.PROTECT,
                                related_name="appointments")
    activity = models.CharField(max_length=16, choices=Activity.choices,
                                default=Activity.TREATMENT)
    fraction_number = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="treatment only: counted over the plan's revisions (1..fractions planned)")
    date = models.DateField(db_index=True)
    time = models.TimeField(null=True, blank=True)
    duration_minutes = models.PositiveIntegerField(default=15)
    # The weekdays the course was scheduled on (Monday 0, e.g. "01234"): the planned pattern
    # a break in treatment is counted against (rv.schedule_rules.break_days).
    pattern = models.CharField(max_length=7, blank=True)
    note = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices,
                              default=Status.SCHEDULED, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["date", "time", "machine__name", "id"]
        indexes = [models.Index(fields=["machine", "date", "time"],
                                name="rv_appointment_machine_day")]
        constraints = [
            # A fraction number exactly when the appointment is a treatment.
            models.CheckConstraint(
                condition=Q(activity="TREATMENT", fraction_number__isnull=False)
                | (~Q(activity="TREATMENT") & Q(fraction_number__isnull=True)),
                name="rv_appointment_fraction_iff_treatment"),
        ]

    def __str__(self) -> str:
        what = (f"fx {self.fraction_number}" if self.activity == self.Activity.TREATMENT
                else self.get_activity_display())
        return f"{self.date} {self.machine} {self.plan.label} {what}"

    @property
    def is_treatment(self) -> bool:
        return self.activity == self.Activity.TREATMENT


class Session(models.Model):
    """One treatment session of one plan on one machine (PS3.3 A.29 / A.30).

    A fraction is normally one session. A beam stopped early (termination status not
    NORMAL, delivered < what was left) leaves the fraction open; a later session with
    `continuation=True` and the same `fraction_number` delivers the rest (C.8.8.21.2).
    """

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="sessions")
    machine = models.ForeignKey(TreatmentMachine, on_delete=models.PROTECT,
                                related_name="sessions")
    appointment = models.ForeignKey(Appointment, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="sessions")
    fraction_number = models.PositiveIntegerField(help_text="Current Fraction Number")
    continuation = models.BooleanField(
        default=False, help_text="continues a fraction begun in an earlier session")
    fraction_complete = models.BooleanField(
        default=False, help_text="every beam (channel) of the fraction fully delivered")
    treated_at = models.DateTimeField(db_index=True, help_text="Treatment Date / Time")
    # NULL for a session created from a treatment machine's own record (content_origin
    # DEVICE): the machine, not a user, recorded it (docs/machine-records.md).
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    identity_confirmed = models.BooleanField(default=False)
    verification_status = models.CharField(
        max_length=16, choices=VerificationStatus.choices,
        help_text="the worst of its beams' (channels') statuses")
    content_origin = models.CharField(max_length=16, choices=ContentOrigin.choices,
                                      default=ContentOrigin.USER)
    # Filled by the record builder (on_session_recorded) once a DICOM record exists.
    record_sop_instance_uid = models.CharField(max_length=64, blank=True)
    clearance = models.OneToOneField("rv.SetupClearance", null=True, blank=True,
                                     on_delete=models.PROTECT, related_name="session",
                                     help_text="the set-up check before beam-on")
    # Differences found when the delivery was recorded (Violation.as_dict() values): each
    # flags the session NOT_VERIFIED until a physicist or physician reviews it.
    findings = models.JSONField(default=list, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["plan", "fraction_number", "treated_at", "id"]
        indexes = [
            # The history's keyset order (rv.history): by date range, and by machine and day.
            models.Index(fields=["treated_at", "id"], name="rv_session_treated_id"),
            models.Index(fields=["machine", "treated_at", "id"],
                         name="rv_session_machine_treated"),
            # A plan's latest session (the revision to treat: the day list, the console).
            models.Index(fields=["plan", "treated_at", "id"], name="rv_session_plan_treated"),
        ]
        constraints = [
            # Second line behind the plan row lock: one first session per fraction.
            models.UniqueConstraint(fields=["plan", "fraction_number"],
                                    condition=Q(continuation=False),
                                    name="rv_session_one_start_per_fraction"),
        ]

    def __str__(self) -> str:
        cont = " (continuation)" if self.continuation else ""
        return f"{self.plan.label} fx {self.fraction_number}{cont} {self.treated_at:%Y-%m-%d}"


class BeamDelivery(models.Model):
    """One beam delivered in a session (PS3.3 C.8.8.21 Treatment Session Beam Sequence)."""

    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="beams")
    beam = models.ForeignKey(Beam, on_delete=models.PROTECT, related_name="deliveries")
    specified_meterset = models.FloatField(
        help_text="Specified Primary Meterset: the beam's meterset for a whole fraction")
    remaining_before = models.FloatField(
        help_text="what was left of it when this session began (continuations: less)")
    delivered_meterset = models.FloatField(help_text="Delivered Primary Meterset")
    unit = models.CharField(max_length=16, default="MU", help_text="Primary Dosimeter Unit")
    termination_status = models.CharField(max_length=16, choices=TerminationStatus.choices)
    verification_status = models.CharField(max_length=16, choices=VerificationStatus.choices)
    beam_dose = models.FloatField(null=True, blank=True,
                                  help_text="the plan's Beam Dose per fraction (Gy)")
    delivered_dose = models.FloatField(
        default=0.0, help_text="beam_dose x delivered / specified meterset (Gy)")
    # Delivered machine parameters, where known (None: not recorded, not checked).
    gantry_angle = models.FloatField(null=True, blank=True)
    collimator_angle = models.FloatField(null=True, blank=True)
    couch_angle = models.FloatField(null=True, blank=True)
    table_top_vertical = models.FloatField(null=True, blank=True)
    table_top_longitudinal = models.FloatField(null=True, blank=True)
    table_top_lateral = models.FloatField(null=True, blank=True)
    tolerance_table = models.ForeignKey("rv.ToleranceTable", null=True, blank=True,
                                        on_delete=models.PROTECT, related_name="deliveries",
                                        help_text="the table it was verified against")

    class Meta:
        ordering = ["session", "beam__number"]

    def __str__(self) -> str:
        return f"beam {self.beam_id}: {self.delivered_meterset:g}/{self.specified_meterset:g}"

    @property
    def remaining_after(self) -> float:
        return max(0.0, self.remaining_before - self.delivered_meterset)


class ChannelDelivery(models.Model):
    """One brachy channel delivered in a session (PS3.3 C.8.8.22 Recorded Channel Sequence)."""

    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="channels")
    setup = models.ForeignKey(ApplicationSetup, on_delete=models.PROTECT,
                              related_name="deliveries")
    channel = models.ForeignKey(BrachyChannel, on_delete=models.PROTECT,
                                related_name="deliveries")
    specified_time = models.FloatField(help_text="Specified Channel Total Time (s)")
    remaining_before = models.FloatField(help_text="seconds left when this session began")
    delivered_time = models.FloatField(help_text="Delivered Channel Total Time (s)")
    termination_status = models.CharField(max_length=16, choices=TerminationStatus.choices)
    verification_status = models.CharField(max_length=16, choices=VerificationStatus.choices)
    # Each interruption: {"after_seconds": float, "duration_seconds": float, "reason": str}
    interruptions = models.JSONField(default=list, blank=True)
    setup_dose = models.FloatField(null=True, blank=True,
                                   help_text="the plan's Brachy Application Setup Dose (Gy)")
    delivered_dose = models.FloatField(
        default=0.0, help_text="setup dose x delivered / specified time of its setup (Gy)")

    class Meta:
        ordering = ["session", "setup__number", "channel__number"]

    def __str__(self) -> str:
        return f"channel {self.channel_id}: {self.delivered_time:g}/{self.specified_time:g} s"


class Override(models.Model):
    """One violation let through by an authorised physicist or physician (PS3.3 C.8.8.21
    Override Sequence: Override Parameter Pointer, Override Reason, Operators' Name).

    `beam_delivery` / `channel_delivery` is None for a session-wide rule (interval,
    fraction count, plan status, cumulative dose)."""

    session = models.ForeignKey(Session, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="overrides",
                                help_text="set when the cleared session is recorded")
    clearance = models.ForeignKey("rv.SetupClearance", null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="overrides")
    beam_delivery = models.ForeignKey(BeamDelivery, null=True, blank=True,
                                      on_delete=models.PROTECT, related_name="overrides")
    channel_delivery = models.ForeignKey(ChannelDelivery, null=True, blank=True,
                                         on_delete=models.PROTECT, related_name="overrides")
    authorised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                      related_name="+")
    reason = models.TextField()
    rule = models.CharField(max_length=32)
    subject = models.CharField(max_length=200, blank=True,
                               help_text="the beam (channel) as the violation named it")
    parameter = models.CharField(max_length=200)
    planned = models.CharField(max_length=200, blank=True)
    actual = models.CharField(max_length=200, blank=True)
    tolerance = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "id"]

    def __str__(self) -> str:
        return f"override {self.rule} {self.parameter}"


class SessionDose(models.Model):
    """Dose a session delivered to one dose reference, and the total after it (for the
    chart and the RT Treatment Summary Record, PS3.3 C.8.8.23)."""

    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="doses")
    dose_reference = models.ForeignKey(DoseReference, on_delete=models.PROTECT,
                                       related_name="session_doses")
    delivered_dose = models.FloatField(help_text="Gy this session")
    cumulative_dose = models.FloatField(
        help_text="Gy so far over the plan's revisions, this session included")

    class Meta:
        ordering = ["session", "dose_reference__number"]

    def __str__(self) -> str:
        return f"{self.dose_reference}: +{self.delivered_dose:g} = {self.cumulative_dose:g} Gy"
