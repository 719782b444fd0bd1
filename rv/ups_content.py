"""What a Unified Procedure Step says (pure: pydicom only): its final state requirements
(PS3.4 Table CC.2.5-3, CC.2.5.1.1), their lenient supply, and the progress, outputs and
discontinuation the pages show. rv.ups re-exports the public names.
"""

from __future__ import annotations

import math
import re
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from rv.ups_match import dt_bounds

COMPLETED = "COMPLETED"
CANCELED = "CANCELED"

PERFORMED = "UnifiedProcedureStepPerformedProcedureSequence"  # (0074,1216)
PROGRESS_INFO = "ProcedureStepProgressInformationSequence"  # (0074,1002)
# CID 9300 "Procedure Discontinuation Reasons": what dcm4chee-arc supplies when missing.
UNSPECIFIED_REASON = ("110513", "DCM", "Discontinued for unspecified reason")
# IHE-RO TDW-II progress parameter: the beam being delivered (RO-62).
BEAM_NUMBER_CONCEPT = ("2018004", "99IHERO2018")


def _tag(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else "(?)"


def _first(ds: Dataset | None, keyword: str) -> Dataset | None:
    """The first item of a sequence, or None (tolerant of anything)."""
    try:
        seq = getattr(ds, keyword, None) if ds is not None else None
        return seq[0] if seq else None
    except Exception:
        return None


def _str(ds: Dataset | None, keyword: str) -> str:
    try:
        value = getattr(ds, keyword, "") if ds is not None else ""
    except Exception:
        return ""
    return "" if value is None else str(value).strip()


def code_ok(item: Dataset | None) -> bool:
    """A Code Sequence Macro item (PS3.3 Table 8.8-1) with a code value and, unless it is a
    URN code, a coding scheme. Code Meaning is not required here (a device may omit it)."""
    if item is None:
        return False
    if _str(item, "URNCodeValue"):
        return True
    return bool(_str(item, "CodeValue") or _str(item, "LongCodeValue")) and bool(
        _str(item, "CodingSchemeDesignator"))


def _dt_ok(ds: Dataset | None, keyword: str) -> bool:
    text = _str(ds, keyword)
    return bool(text) and dt_bounds(text) is not None


def final_state_problems(item: Dataset, target: str) -> list[str]:
    """What keeps `item` from the final state `target` (PS3.4 CC.2.5.1.1, the Final State
    column of Table CC.2.5-3, as IHE-RO TDW-II applies it); empty: the requirements are met.

    COMPLETED: the Unified Procedure Step Performed Procedure Sequence has an item with a
    Performed Station Name Code Sequence and a Performed Workitem Code Sequence (valid code
    items), Performed Procedure Step Start and End DateTime (valid DT values) and an Output
    Information Sequence (present; it may be empty).
    CANCELED: the Procedure Step Progress Information Sequence has an item with a Procedure
    Step Cancellation DateTime and a Procedure Step Discontinuation Reason Code Sequence."""
    return [f"{keyword} {_tag(keyword)}: {what}" for keyword, what in _missing(item, target)]


def _missing(item: Dataset, target: str) -> list[tuple[str, str]]:
    missing: list[tuple[str, str]] = []
    if target == COMPLETED:
        performed = _first(item, PERFORMED)
        if performed is None:
            missing.append((PERFORMED, "no item"))
        for keyword in ("PerformedStationNameCodeSequence", "PerformedWorkitemCodeSequence"):
            if not code_ok(_first(performed, keyword)):
                missing.append((keyword, "no valid code item"))
        for keyword in ("PerformedProcedureStepStartDateTime",
                        "PerformedProcedureStepEndDateTime"):
            if not _dt_ok(performed, keyword):
                missing.append((keyword, "no valid DT value"))
        if performed is None or "OutputInformationSequence" not in performed:
            missing.append(("OutputInformationSequence", "missing"))
        return missing
    if target == CANCELED:
        info = _first(item, PROGRESS_INFO)
        if not _dt_ok(info, "ProcedureStepCancellationDateTime"):
            missing.append(("ProcedureStepCancellationDateTime", "no valid DT value"))
        if not code_ok(_first(info, "ProcedureStepDiscontinuationReasonCodeSequence")):
            missing.append(("ProcedureStepDiscontinuationReasonCodeSequence",
                            "no valid code item"))
        return missing
    raise ValueError(f"{target!r} is not a final state")


def format_dt(moment: datetime) -> str:
    """A DT value (PS3.5): YYYYMMDDHHMMSS[.FFFFFF][&ZZXX], the offset when `moment` is aware."""
    text = moment.strftime("%Y%m%d%H%M%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    offset = moment.utcoffset()
    if offset is not None:
        minutes = int(offset.total_seconds() // 60)
        sign = "-" if minutes < 0 else "+"
        text += f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return text


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue = value
    code.CodingSchemeDesignator = scheme
    code.CodeMeaning = meaning
    return code


def _ensure_first(ds: Dataset, keyword: str, supplied: list[str]) -> Dataset:
    """The first item of a sequence of `ds`, created (and noted) when there is none."""
    current = _first(ds, keyword)
    if current is not None:
        return current
    created = Dataset()
    setattr(ds, keyword, Sequence([created]))
    supplied.append(keyword)
    return created


def final_state_supply(item: Dataset, target: str, *, station: Dataset, start: datetime,
                       end: datetime, workitem_code: Dataset) -> tuple[Dataset, list[str]]:
    """Lenient mode (TDW-II "device quirks"; dcm4chee-arc does the same for CANCELED): a
    copy of `item` with what final_state_problems finds missing for `target` supplied, and
    the keywords supplied (empty: nothing was missing), for the audit. Present valid values
    are never replaced; a malformed one is.

    COMPLETED: the first Performed Procedure Sequence item gets Performed Station Name Code
    Sequence = [station], Performed Procedure Step Start/End DateTime = start/end,
    Performed Workitem Code Sequence = [workitem_code], an empty Output Information Sequence.
    CANCELED: the first Progress Information item gets Procedure Step Cancellation DateTime
    = end and Discontinuation Reason Code Sequence = 110513 DCM "Discontinued for
    unspecified reason"."""
    result = deepcopy(item)
    supplied: list[str] = []
    missing = {keyword for keyword, _what in _missing(result, target)}
    if not missing:
        return result, supplied
    if target == COMPLETED:
        performed = _ensure_first(result, PERFORMED, supplied)
        fill: dict[str, Any] = {
            "PerformedStationNameCodeSequence": Sequence([deepcopy(station)]),
            "PerformedProcedureStepStartDateTime": format_dt(start),
            "PerformedProcedureStepEndDateTime": format_dt(end),
            "PerformedWorkitemCodeSequence": Sequence([deepcopy(workitem_code)]),
            "OutputInformationSequence": Sequence(),
        }
    else:
        performed = _ensure_first(result, PROGRESS_INFO, supplied)
        fill = {
            "ProcedureStepCancellationDateTime": format_dt(end),
            "ProcedureStepDiscontinuationReasonCodeSequence":
                Sequence([code_item(*UNSPECIFIED_REASON)]),
        }
    for keyword, value in fill.items():
        if keyword in missing:
            setattr(performed, keyword, value)
            supplied.append(keyword)
    return result, supplied


# ----------------------------------------------------------------- for the pages


@dataclass(frozen=True)
class Progress:
    """RO-62 progress: percent complete, the description, the beam being delivered."""

    percent: float | None
    description: str
    beam_number: int | None


_BEAM_IN_TEXT = re.compile(r"\bbeam\s*(?:number|no\.?|nr\.?|#)?\s*[:=#]?\s*(\d{1,4})\b",
                           re.IGNORECASE)


def _number(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _beam_parameter(info: Dataset) -> int | None:
    """The TDW-II "Referenced Beam Number" item of the Procedure Step Progress Parameters
    Sequence (0074,1007): a content item (PS3.3 Table 10-2) NUMERIC, concept 2018004
    99IHERO2018, value in Numeric Value (0040,A30A) (or, tolerated, a Measured Value
    Sequence or a Text Value)."""
    try:
        parameters = list(getattr(info, "ProcedureStepProgressParametersSequence", None) or [])
    except Exception:
        return None
    for parameter in parameters:
        concept = _first(parameter, "ConceptNameCodeSequence")
        if (_str(concept, "CodeValue"), _str(concept, "CodingSchemeDesignator")) \
                != BEAM_NUMBER_CONCEPT:
            continue
        candidates = [_str(parameter, "NumericValue"),
                      _str(_first(parameter, "MeasuredValueSequence"), "NumericValue"),
                      _str(parameter, "TextValue")]
        for text in candidates:
            number = _number(text.split("\\")[0]) if text else None
            if number is not None and number.is_integer() and number >= 0:
                return int(number)
    return None


def progress(item: Dataset) -> Progress:
    """The Procedure Step Progress Information Sequence (0074,1002) in plain values: Procedure
    Step Progress (0074,1004, percent), Description (0074,1006), and the beam number from a
    progress parameter, else from the description ("Beam 2", "beam: 3") as older devices
    write it. Never raises: what cannot be read is None or empty."""
    try:
        info = _first(item, PROGRESS_INFO)
        percent = _number(_str(info, "ProcedureStepProgress")) if info is not None else None
        description = _str(info, "ProcedureStepProgressDescription")
        beam = _beam_parameter(info) if info is not None else None
        if beam is None and description:
            m = _BEAM_IN_TEXT.search(description)
            beam = int(m.group(1)) if m else None
        return Progress(percent=percent, description=description, beam_number=beam)
    except Exception:  # a failed progress update never stops treatment
        return Progress(percent=None, description="", beam_number=None)


def output_references(item: Dataset) -> list[tuple[str, str]]:
    """(SOP Class UID, SOP Instance UID) of the outputs the performer reported: Unified
    Procedure Step Performed Procedure Sequence > Output Information Sequence > Referenced
    SOP Sequence, in order, without repeats. Incomplete references are skipped."""
    found: list[tuple[str, str]] = []
    try:
        for performed in getattr(item, PERFORMED, None) or []:
            for output in getattr(performed, "OutputInformationSequence", None) or []:
                for ref in getattr(output, "ReferencedSOPSequence", None) or []:
                    pair = (_str(ref, "ReferencedSOPClassUID"),
                            _str(ref, "ReferencedSOPInstanceUID"))
                    if all(pair) and pair not in found:
                        found.append(pair)
    except Exception:  # a malformed sequence yields what was read so far
        return found
    return found


def discontinuation(item: Dataset) -> tuple[str, str]:
    """(reason, cancellation DateTime text) from the Progress Information Sequence, for
    display: the reason is the first discontinuation reason code's meaning (else its value),
    else the Reason For Cancellation text; empty strings when absent."""
    info = _first(item, PROGRESS_INFO)
    code = _first(info, "ProcedureStepDiscontinuationReasonCodeSequence")
    reason = (_str(code, "CodeMeaning") or _str(code, "CodeValue")
              or _str(info, "ReasonForCancellation"))
    return reason, _str(info, "ProcedureStepCancellationDateTime")
