"""Treatment machines and tolerance tables (PS3.3 C.8.8.11 RT Tolerance Tables Module)."""

from __future__ import annotations

from django.db import models

# Tolerance values a table holds: (field, what it limits). None means no tolerance: zero.
TOLERANCE_FIELDS: tuple[tuple[str, str], ...] = (
    ("gantry_angle", "gantry angle (deg)"),
    ("collimator_angle", "beam limiting device angle (deg)"),
    ("couch_angle", "patient support angle (deg)"),
    ("table_top_vertical", "table top vertical position (mm)"),
    ("table_top_longitudinal", "table top longitudinal position (mm)"),
    ("table_top_lateral", "table top lateral position (mm)"),
    ("jaw_x", "X jaw positions (mm)"),
    ("jaw_y", "Y jaw positions (mm)"),
    ("mlc", "MLC leaf positions (mm)"),
    ("meterset", "meterset (MU)"),
)


class TreatmentMachine(models.Model):
    # PS3.3 C.8.8.14: Treatment Machine Name (300A,00B2), as the TPS names it
    name = models.CharField(max_length=64, unique=True)
    manufacturer = models.CharField(max_length=64, blank=True)
    model_name = models.CharField(max_length=64, blank=True)
    # The physicist's meterset tolerance policy, for beams whose tolerance table gives none
    # (every table a TPS sends: DICOM tables have no meterset field). Both: the larger.
    meterset_tolerance_mu = models.FloatField(null=True, blank=True,
                                              help_text="absolute, in the beam's unit")
    meterset_tolerance_percent = models.FloatField(null=True, blank=True,
                                                   help_text="% of the specified meterset")
    # The physicist's tolerance on dose per fraction when a plan for this machine is
    # approved against its prescription (None: RV_PRESCRIPTION_TOLERANCE_PERCENT).
    prescription_tolerance_percent = models.FloatField(
        null=True, blank=True, help_text="% of the prescribed dose per fraction")
    # IHE-RO TDW-II: the machine pulls its fractions from Verity's UPS worklist
    # (rv.services.workitems makes a step for each appointment of an approved plan).
    tdw_delivery = models.BooleanField(
        default=False, help_text="a TDW-II Treatment Delivery Device: gets a UPS worklist")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ToleranceTable(models.Model):
    """Either carried in a plan (PS3.3 C.8.8.11, `plan` set) or defined by a physicist for a
    machine (`machine` set). A table used for a delivered beam is frozen: a change makes a
    new version (`previous` points back; only the newest is `is_current`)."""

    class Source(models.TextChoices):
        PLAN = "PLAN", "carried in the plan"
        USER = "USER", "defined by a physicist"

    source = models.CharField(max_length=8, choices=Source.choices)
    plan = models.ForeignKey("rv.Plan", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="tolerance_tables")
    machine = models.ForeignKey(TreatmentMachine, null=True, blank=True,
                                on_delete=models.PROTECT, related_name="tolerance_tables")
    number = models.IntegerField(null=True, blank=True,
                                 help_text="Tolerance Table Number (300A,0042) in the plan")
    label = models.CharField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    previous = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="next_version")
    is_current = models.BooleanField(default=True)
    used_for_delivery = models.BooleanField(
        default=False, help_text="set when a delivered beam was checked against it")
    gantry_angle = models.FloatField(null=True, blank=True)
    collimator_angle = models.FloatField(null=True, blank=True)
    couch_angle = models.FloatField(null=True, blank=True)
    table_top_vertical = models.FloatField(null=True, blank=True)
    table_top_longitudinal = models.FloatField(null=True, blank=True)
    table_top_lateral = models.FloatField(null=True, blank=True)
    jaw_x = models.FloatField(null=True, blank=True)
    jaw_y = models.FloatField(null=True, blank=True)
    mlc = models.FloatField(null=True, blank=True)
    meterset = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["machine__name", "label", "-version"]

    def __str__(self) -> str:
        where = self.machine.name if self.machine_id else "plan"  # type: ignore[union-attr]
        return f"{self.label} v{self.version} ({where})"

    def values(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name, _ in TOLERANCE_FIELDS}
