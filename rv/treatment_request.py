"""What a door hands the treatment services: plain values, built the same way by the console,
the API and the machine-record path, and resolved against the plan inside the plan lock.

`MachineSetting` (rv.verification) is the one list of machine parameters: every door builds
it with `setting_from`, every check and every stored column iterates `SETTING_FIELDS`.
Pure: no ORM, no settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rv.verification import ANGLES, POSITIONS, MachineSetting

# The recorded machine parameters that are numbers, in the order a therapist reads them.
SETTING_FIELDS: tuple[str, ...] = ANGLES + POSITIONS
# How each parameter is named in the plan's control point arrays (rv.models.plan.Beam.first).
PLANNED_KEY: dict[str, str] = {"gantry_angle": "gantry", "collimator_angle": "collimator",
                               "couch_angle": "couch", "table_top_vertical": "table_top_vertical",
                               "table_top_longitudinal": "table_top_longitudinal",
                               "table_top_lateral": "table_top_lateral"}
SETTING_WORDS: dict[str, str] = {
    "gantry_angle": "gantry angle (°)", "collimator_angle": "collimator angle (°)",
    "couch_angle": "couch angle (°)", "table_top_vertical": "table vertical (mm)",
    "table_top_longitudinal": "table longitudinal (mm)", "table_top_lateral": "table lateral (mm)"}
TERMINATIONS = ("NORMAL", "OPERATOR", "MACHINE", "UNKNOWN")


class RequestInvalid(ValueError):
    """Input that cannot be a set-up or a delivery (negative, not finite, out of range)."""


@dataclass(frozen=True)
class BeamRequest:
    """One beam: the set-up as read at the machine, and (when recording) what it delivered."""

    number: int
    setting: MachineSetting = field(default_factory=MachineSetting)
    delivered_meterset: float | None = None
    termination_status: str = "NORMAL"


@dataclass(frozen=True)
class ChannelRequest:
    setup: int
    channel: int
    delivered_time: float | None = None
    termination_status: str = "NORMAL"
    interruptions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class SessionRequest:
    """One set-up check or one record of a plan on a machine. `plan_id` is the plan the
    appointment or the user named: the service treats the revision to treat of its chain.
    `patient_id`, when given, is the Patient ID the operator (or the machine) has in front of
    it: a mismatch with the plan's patient is a hard stop."""

    plan_id: int
    machine: str
    fraction_number: int | None = None
    appointment_id: int | None = None
    patient_id: str | None = None
    identity_confirmed: bool = False
    beams: tuple[BeamRequest, ...] = ()
    channels: tuple[ChannelRequest, ...] = ()


def number(raw: object, what: str) -> float | None:
    """A form or JSON value as a finite float; "" or None is "not recorded"."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise RequestInvalid(f"{what}: {raw!r} is not a number.")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RequestInvalid(f"{what}: {raw!r} is not a number.") from None
    if not math.isfinite(value):
        raise RequestInvalid(f"{what}: {raw!r} is not a finite number.")
    return value


def setting_from(get: Callable[[str], object] | Mapping[str, object], *,
                 label: str = "") -> MachineSetting:
    """A MachineSetting from a mapping (JSON) or a getter (form fields), checked."""
    getter = get.get if isinstance(get, Mapping) else get
    values = {name: number(getter(name), f"{label} {SETTING_WORDS[name]}".strip())
              for name in SETTING_FIELDS}
    setting = MachineSetting(**values)  # type: ignore[arg-type]
    check_setting(setting, label=label)
    return setting


def check_setting(setting: MachineSetting, *, label: str = "") -> None:
    """Angles in [0, 360) (IEC 61217 as DICOM records them), every value finite."""
    for name in SETTING_FIELDS:
        value = getattr(setting, name)
        if value is None:
            continue
        what = f"{label} {SETTING_WORDS[name]}".strip()
        if not math.isfinite(value):
            raise RequestInvalid(f"{what}: {value!r} is not a finite number.")
        if name in ANGLES and not 0.0 <= value < 360.0:
            raise RequestInvalid(f"{what}: {value:g} is outside [0, 360).")


def check_delivered(value: float | None, *, what: str) -> float:
    """A delivered meterset or time: a finite number, not negative."""
    if value is None:
        raise RequestInvalid(f"{what}: give the delivered value.")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestInvalid(f"{what}: {value!r} is not a finite number.")
    if value < 0:
        raise RequestInvalid(f"{what}: {value:g} cannot be negative.")
    return float(value)


def check_request(request: SessionRequest, *, recording: bool) -> None:
    """Everything about the request that does not need the plan: raise RequestInvalid."""
    seen_b: set[int] = set()
    for b in request.beams:
        if b.number in seen_b:
            raise RequestInvalid(f"Beam {b.number} is given twice.")
        seen_b.add(b.number)
        check_setting(b.setting, label=f"Beam {b.number}")
        if b.termination_status not in TERMINATIONS:
            raise RequestInvalid(f"Beam {b.number}: unknown termination status "
                                 f"{b.termination_status!r}.")
        if recording:
            check_delivered(b.delivered_meterset, what=f"Beam {b.number} delivered meterset")
    seen_c: set[tuple[int, int]] = set()
    for c in request.channels:
        if (c.setup, c.channel) in seen_c:
            raise RequestInvalid(f"Channel {c.channel} is given twice.")
        seen_c.add((c.setup, c.channel))
        if c.termination_status not in TERMINATIONS:
            raise RequestInvalid(f"Channel {c.channel}: unknown termination status "
                                 f"{c.termination_status!r}.")
        if recording:
            check_delivered(c.delivered_time, what=f"Channel {c.channel} delivered time")
        for i in c.interruptions:
            for key in ("after_seconds", "duration_seconds"):
                check_delivered(number(i.get(key, 0.0), f"interruption {key}") or 0.0,
                                what=f"Channel {c.channel} interruption {key}")
    if recording and not request.beams and not request.channels:
        raise RequestInvalid("Record at least one beam or channel.")
