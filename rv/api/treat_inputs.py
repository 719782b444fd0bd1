"""The API's input shapes for the set-up check and the record, built from the one list of
machine parameters (rv.treatment_request.SETTING_FIELDS), and their SessionRequest."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from rv.models import TerminationStatus
from rv.treatment_request import (
    SETTING_FIELDS,
    SETTING_WORDS,
    BeamRequest,
    ChannelRequest,
    RequestInvalid,
    SessionRequest,
    setting_from,
)


def _setting_fields() -> dict[str, serializers.Field]:
    return {name: serializers.FloatField(required=False, allow_null=True,
                                         help_text=SETTING_WORDS[name])
            for name in SETTING_FIELDS}


BeamSetupIn = type("BeamSetupIn", (serializers.Serializer,), {
    "beam": serializers.IntegerField(help_text="Beam Number in the plan"),
    **_setting_fields()})

BeamRecordIn = type("BeamRecordIn", (serializers.Serializer,), {
    "beam": serializers.IntegerField(help_text="Beam Number in the plan"),
    "delivered_meterset": serializers.FloatField(),
    "termination_status": serializers.ChoiceField(TerminationStatus.choices,
                                                  default=TerminationStatus.NORMAL),
    **_setting_fields()})


class InterruptionIn(serializers.Serializer):
    after_seconds = serializers.FloatField(default=0.0)
    duration_seconds = serializers.FloatField(default=0.0)
    reason = serializers.CharField(allow_blank=True, default="", max_length=200)


class ChannelIn(serializers.Serializer):
    setup = serializers.IntegerField(help_text="Application Setup Number")
    channel = serializers.IntegerField(help_text="Channel Number")
    delivered_time = serializers.FloatField(help_text="seconds", required=False,
                                            allow_null=True)
    termination_status = serializers.ChoiceField(TerminationStatus.choices,
                                                 default=TerminationStatus.NORMAL)
    interruptions = InterruptionIn(many=True, required=False)


class OverrideIn(serializers.Serializer):
    username = serializers.CharField(help_text="the authorising physicist or physician")
    password = serializers.CharField(help_text="their password, entered again")
    reason = serializers.CharField()
    violation_keys = serializers.ListField(
        child=serializers.CharField(), help_text="the `key` of each violation authorised, "
        "as a 422 answer listed them")


class _Common(serializers.Serializer):
    plan = serializers.IntegerField(help_text="the plan (any revision: the revision to treat "
                                    "is used)")
    machine = serializers.CharField(help_text="Treatment Machine Name")
    fraction_number = serializers.IntegerField(required=False, allow_null=True,
                                               help_text="default: the next one")
    appointment = serializers.IntegerField(required=False, allow_null=True)
    patient_id = serializers.CharField(required=False, allow_null=True,
                                       help_text="the Patient ID at the machine; a mismatch "
                                       "is a hard stop")
    identity_confirmed = serializers.BooleanField()
    date_reason = serializers.CharField(required=False, allow_blank=True, default="",
                                        help_text="why an appointment of another day is "
                                        "treated today")
    channels = ChannelIn(many=True, required=False)


class SetupCheckIn(_Common):
    beams = BeamSetupIn(many=True, required=False,
                        help_text="the set-up as read at the machine; none: every beam left")
    override = OverrideIn(required=False, allow_null=True)


class SessionIn(_Common):
    clearance = serializers.IntegerField(required=False, allow_null=True,
                                         help_text="the set-up check (none: downtime, the "
                                         "session is NOT_VERIFIED)")
    beams = BeamRecordIn(many=True, required=False)


def session_request(d: dict[str, Any]) -> SessionRequest:
    """The validated body as the services' plain request (raises RequestInvalid)."""
    beams = tuple(BeamRequest(
        number=b["beam"], delivered_meterset=b.get("delivered_meterset"),
        termination_status=b.get("termination_status", TerminationStatus.NORMAL),
        setting=setting_from(b, label=f"Beam {b['beam']}")) for b in d.get("beams", []))
    channels = tuple(ChannelRequest(
        setup=c["setup"], channel=c["channel"], delivered_time=c.get("delivered_time"),
        termination_status=c.get("termination_status", TerminationStatus.NORMAL),
        interruptions=tuple(c.get("interruptions", []))) for c in d.get("channels", []))
    return SessionRequest(plan_id=d["plan"], machine=d["machine"],
                          fraction_number=d.get("fraction_number"),
                          appointment_id=d.get("appointment"), patient_id=d.get("patient_id"),
                          identity_confirmed=d["identity_confirmed"], beams=beams,
                          channels=channels)


def validated(shape: type[serializers.Serializer], data: Any
              ) -> tuple[dict[str, Any], SessionRequest]:
    """The body checked against `shape` (400 on its errors), and its SessionRequest (400,
    through rv.api_errors, on input that cannot be a set-up or a delivery)."""
    from rv import errors

    checked = shape(data=data)
    checked.is_valid(raise_exception=True)
    d: dict[str, Any] = dict(checked.validated_data)
    try:
        return d, session_request(d)
    except RequestInvalid as exc:
        raise errors.ValidationError(str(exc)) from None


__all__ = ["SessionIn", "SetupCheckIn", "session_request", "validated"]
