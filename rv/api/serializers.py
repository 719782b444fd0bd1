"""Output shapes of the clinical API (input shapes live beside their views)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from rv.models import (
    ApplicationSetup,
    Beam,
    BrachyChannel,
    BrachySource,
    Course,
    DoseReference,
    FractionGroup,
    FractionGroupBeam,
    Patient,
    Plan,
    ToleranceTable,
)
from rv.names import display_name
from rv.selectors import plan_fractions_delivered


class PatientSerializer(serializers.ModelSerializer):
    display_name = serializers.SerializerMethodField(
        help_text='the name formatted for people ("SMITH, John A."), rv.names')

    class Meta:
        model = Patient
        fields = ["id", "patient_id", "patient_name", "display_name", "birth_date", "sex",
                  "archive_patient", "created_at"]

    def get_display_name(self, patient: Patient) -> str:
        return display_name(patient.patient_name)


class CourseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Course
        fields = ["id", "patient", "code", "status", "created_at"]


class PlanSerializer(serializers.ModelSerializer):
    fractions_planned = serializers.IntegerField(read_only=True)
    fractions_delivered = serializers.SerializerMethodField()
    course_code = serializers.CharField(source="course.code", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Plan
        fields = ["id", "patient", "course", "course_code", "label", "name", "revision",
                  "previous_revision", "status", "kind", "dicom_approval_status",
                  "approved_by", "approved_at", "fractions_planned", "fractions_delivered",
                  "sop_instance_uid", "sop_class_uid", "plan_date", "intent", "geometry",
                  "referenced_structure_set_uid", "frame_of_reference_uid",
                  "brachy_treatment_type", "treatment_started", "created_at"]

    def get_fractions_delivered(self, plan: Plan) -> int:
        return plan_fractions_delivered(plan=plan)


class ToleranceTableSerializer(serializers.ModelSerializer):
    machine = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ToleranceTable
        fields = ["id", "source", "machine", "number", "label", "version", "is_current",
                  "used_for_delivery", "gantry_angle", "collimator_angle", "couch_angle",
                  "table_top_vertical", "table_top_longitudinal", "table_top_lateral",
                  "jaw_x", "jaw_y", "mlc", "meterset"]


class BeamSerializer(serializers.ModelSerializer):
    machine = serializers.SlugRelatedField(slug_field="name", read_only=True)
    is_setup = serializers.BooleanField(read_only=True)
    first_control_point = serializers.SerializerMethodField()

    class Meta:
        model = Beam
        fields = ["id", "number", "name", "machine", "radiation_type", "nominal_energy",
                  "beam_type", "delivery_type", "primary_dosimeter_unit", "is_setup",
                  "final_cumulative_meterset_weight", "number_of_control_points",
                  "number_of_leaves", "tolerance_table", "first_control_point"]

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "number",
                                                                     "nullable": True}})
    def get_first_control_point(self, beam: Beam) -> dict[str, Any]:
        return {key: beam.first(key) for key in ("gantry", "collimator", "couch")}


class FractionGroupBeamSerializer(serializers.ModelSerializer):
    beam_number = serializers.IntegerField(source="beam.number", read_only=True)

    class Meta:
        model = FractionGroupBeam
        fields = ["beam_number", "meterset", "dose"]


class FractionGroupSerializer(serializers.ModelSerializer):
    beams = FractionGroupBeamSerializer(source="beam_refs", many=True, read_only=True)

    class Meta:
        model = FractionGroup
        fields = ["number", "description", "fractions_planned", "beams"]


class DoseReferenceSerializer(serializers.ModelSerializer):
    class Meta:
        model = DoseReference
        fields = ["number", "structure_type", "description", "reference_type", "roi_number",
                  "target_prescription_dose", "delivery_maximum_dose",
                  "organ_at_risk_maximum_dose"]


class BrachySourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = BrachySource
        fields = ["number", "isotope", "source_type", "air_kerma_strength", "reference_date",
                  "reference_time", "half_life_days"]


class BrachyChannelSerializer(serializers.ModelSerializer):
    source_number = serializers.IntegerField(source="source.number", read_only=True)

    class Meta:
        model = BrachyChannel
        fields = ["number", "source_number", "total_time", "number_of_pulses",
                  "pulse_repetition_interval", "applicator_id"]


class ApplicationSetupSerializer(serializers.ModelSerializer):
    machine = serializers.SlugRelatedField(slug_field="name", read_only=True)
    channels = BrachyChannelSerializer(many=True, read_only=True)

    class Meta:
        model = ApplicationSetup
        fields = ["number", "name", "setup_type", "machine", "channels"]


class PlanDetailSerializer(PlanSerializer):
    fraction_groups = FractionGroupSerializer(many=True, read_only=True)
    beams = BeamSerializer(many=True, read_only=True)
    dose_references = DoseReferenceSerializer(many=True, read_only=True)
    sources = BrachySourceSerializer(many=True, read_only=True)
    application_setups = ApplicationSetupSerializer(many=True, read_only=True)
    tolerance_tables = ToleranceTableSerializer(many=True, read_only=True)

    class Meta(PlanSerializer.Meta):
        fields = [*PlanSerializer.Meta.fields, "fraction_groups", "beams", "dose_references",
                  "sources", "application_setups", "tolerance_tables"]
