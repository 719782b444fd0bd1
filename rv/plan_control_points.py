"""An RT Plan beam's control points (PS3.3 C.8.8.14.5, C.8.8.25.5) as per-point arrays, and
its dose reference coefficient curves (C.8.8.14.7): part of rv.plan_parse, pure, no ORM.

Two readers give the same rows: a fast one walking the still-raw Control Point Sequence
bytes (rv.cp_raw) and pydicom's, used whenever the raw one cannot read the value.
"""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from rv import cp_raw
from rv.errors import PlanRejected

# PS3.3 C.8.8.14.5 / C.8.8.25.5 control point attributes read per point
_GANTRY = Tag(0x300A, 0x011E)
_COLLIMATOR = Tag(0x300A, 0x0120)
_COUCH = Tag(0x300A, 0x0122)
_WEIGHT = Tag(0x300A, 0x0134)
_ENERGY = Tag(0x300A, 0x0114)
_TT_VERT = Tag(0x300A, 0x0128)
_TT_LONG = Tag(0x300A, 0x0129)
_TT_LAT = Tag(0x300A, 0x012A)
_BLD_POSITIONS = Tag(0x300A, 0x011A)
_BLD_TYPE = Tag(0x300A, 0x00B8)
_LEAF_JAW = Tag(0x300A, 0x011C)
# PS3.3 C.8.8.14 / C.8.8.14.7: per control point, per dose reference, the cumulative
# coefficient by which Beam Dose is multiplied to give the dose to the reference so far
_REF_DOSE_SEQ = Tag(0x300C, 0x0050)
_REF_DOSE_NUMBER = Tag(0x300C, 0x0051)
_DOSE_COEFFICIENT = Tag(0x300A, 0x010C)

_SCALARS = (("gantry", _GANTRY), ("collimator", _COLLIMATOR), ("couch", _COUCH),
            ("weight", _WEIGHT), ("energy", _ENERGY), ("table_top_vertical", _TT_VERT),
            ("table_top_longitudinal", _TT_LONG), ("table_top_lateral", _TT_LAT))
JAW_X = {"X", "ASYMX"}
JAW_Y = {"Y", "ASYMY"}
MLC = {"MLCX", "MLCY"}

REJECT = "RT Plan rejected: "


def numbers(ds: Dataset, tag: Any) -> np.ndarray | None:
    """A DS/IS/FL value as floats, parsed from the raw bytes when still raw (fast for the
    thousands of leaf positions of a VMAT or TomoTherapy plan)."""
    if tag not in ds:
        return None
    elem = ds.get_item(tag)
    if isinstance(elem, RawDataElement):
        raw = elem.value
        if raw is None or len(raw) == 0:
            return None
        vr = elem.VR
        if vr in (None, "DS", "IS"):  # text, whatever the byte order
            # not text after all (implicit VR FL): fall back to pydicom below
            with contextlib.suppress(ValueError):
                return _text_numbers(raw)
    value = ds[tag].value
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        try:
            return np.array([float(v) for v in value], dtype=float)
        except (TypeError, ValueError):
            return None
    try:
        return np.array([float(value)], dtype=float)
    except (TypeError, ValueError):
        return None


# per control point: scalars, device positions, (dose reference number, coefficient)
Row = tuple[dict[str, float], list[tuple[str, np.ndarray]], list[tuple[int, float]]]
_SCALAR_INTS = tuple((name, int(tag)) for name, tag in _SCALARS)
_KEEP = frozenset(tag for _, tag in _SCALAR_INTS) | {
    int(_BLD_TYPE), int(_LEAF_JAW), int(_REF_DOSE_NUMBER), int(_DOSE_COEFFICIENT)}
_KEEP_SEQ = frozenset({int(_BLD_POSITIONS), int(_REF_DOSE_SEQ)})
_I_POSITIONS, _I_TYPE, _I_LEAF_JAW = int(_BLD_POSITIONS), int(_BLD_TYPE), int(_LEAF_JAW)
_I_REF_SEQ, _I_REF_NUMBER, _I_COEFFICIENT = (int(_REF_DOSE_SEQ), int(_REF_DOSE_NUMBER),
                                             int(_DOSE_COEFFICIENT))


def _first_number(raw: bytes) -> float | None:
    text = raw.split(b"\\", 1)[0].strip(b" \x00")
    return float(text) if text else None


def _text_numbers(raw: bytes) -> np.ndarray | None:
    text = raw.decode("ascii", "replace").strip(" \x00")
    if not text:
        return None
    return np.array(text.split("\\"), dtype=float)


def rows_raw(beam: Dataset, seq_tag: Any) -> list[Row] | None:
    """Rows read straight from the raw sequence bytes, or None to use pydicom."""
    if seq_tag not in beam:
        return []
    elem = beam.get_item(seq_tag)
    if not isinstance(elem, RawDataElement) or not elem.is_little_endian or \
            not isinstance(elem.value, bytes | bytearray):
        return None
    try:
        found = cp_raw.items(bytes(elem.value), implicit=bool(elem.is_implicit_VR),
                             keep=_KEEP, keep_seq=_KEEP_SEQ)
        rows: list[Row] = []
        for item in found:
            scalars = {}
            for name, tag in _SCALAR_INTS:
                raw = item.get(tag)
                if isinstance(raw, bytes):
                    text = raw.split(b"\\", 1)[0].strip(b" \x00")
                    if text:
                        scalars[name] = float(text)
            positions = []
            for dev in item.get(_I_POSITIONS, []) or []:
                assert isinstance(dev, dict)
                kind, raw = dev.get(_I_TYPE), dev.get(_I_LEAF_JAW)
                if isinstance(kind, bytes) and isinstance(raw, bytes):
                    values = _text_numbers(raw)
                    if values is not None:
                        positions.append((kind.decode("ascii", "replace").strip(" \x00")
                                          .upper(), values))
            refs = []
            for ref in item.get(_I_REF_SEQ, []) or []:
                assert isinstance(ref, dict)
                number, coefficient = ref.get(_I_REF_NUMBER), ref.get(_I_COEFFICIENT)
                if isinstance(number, bytes) and isinstance(coefficient, bytes):
                    n, c = _first_number(number), _first_number(coefficient)
                    if n is not None and c is not None:
                        refs.append((int(n), c))
            rows.append((scalars, positions, refs))
        return rows
    except (cp_raw.NotRaw, ValueError, UnicodeError, struct.error):
        return None


def rows_pydicom(beam: Dataset, seq_keyword: str) -> list[Row]:
    rows: list[Row] = []
    for cp in beam.get(seq_keyword) or []:
        scalars = {}
        for name, tag in _SCALARS:
            values = numbers(cp, tag)
            if values is not None and len(values):
                scalars[name] = float(values[0])
        positions = []
        for item in cp.get("BeamLimitingDevicePositionSequence") or []:
            values = numbers(item, _LEAF_JAW)
            if values is not None:
                positions.append((str(item.get("RTBeamLimitingDeviceType", "")).upper(),
                                  values))
        refs = []
        for ref in cp.get(_REF_DOSE_SEQ) or []:
            number, coefficient = numbers(ref, _REF_DOSE_NUMBER), numbers(
                ref, _DOSE_COEFFICIENT)
            if number is not None and len(number) and coefficient is not None and \
                    len(coefficient):
                refs.append((int(number[0]), float(coefficient[0])))
        rows.append((scalars, positions, refs))
    return rows


def control_points(beam: Dataset, seq_keyword: str, where: str, leaf_count: int
                    ) -> tuple[dict[str, np.ndarray], dict[int, list[tuple[float, float]]]]:
    """Per control point arrays; values a point omits carry forward (PS3.3 C.8.8.14.5);
    and the dose reference coefficient curves."""
    rows = rows_raw(beam, tag_for_keyword(seq_keyword))
    if rows is None:
        rows = rows_pydicom(beam, seq_keyword)
    cps = carry_forward(rows, where, leaf_count)
    return cps, dose_curves(rows, cps["weight"])


def dose_curves(rows: list[Row], weights: np.ndarray) -> dict[int, list[tuple[float, float]]]:
    """Per dose reference number, (cumulative meterset weight, cumulative dose reference
    coefficient) at each control point that gives both, in control point order."""
    curves: dict[int, list[tuple[float, float]]] = {}
    for i, (_scalars, _positions, refs) in enumerate(rows):
        weight = float(weights[i])
        if np.isnan(weight):
            continue
        for number, coefficient in dict(refs).items():  # a reference twice: the last holds
            curves.setdefault(number, []).append((weight, coefficient))
    return curves


def carry_forward(rows: list[Row], where: str, leaf_count: int) -> dict[str, np.ndarray]:
    n = len(rows)
    out: dict[str, np.ndarray] = {name: np.full(n, np.nan) for name, _ in _SCALARS}
    jaw_x = np.full((n, 2), np.nan)
    jaw_y = np.full((n, 2), np.nan)
    mlc = np.full((n, 2 * leaf_count), np.nan) if leaf_count else None
    mlc_width: int | None = 2 * leaf_count if leaf_count else None
    last: dict[str, float] = {}
    last_x = last_y = last_mlc = None
    for i, (scalars, positions, _refs) in enumerate(rows):
        last.update(scalars)
        for name, value in last.items():
            out[name][i] = value
        for kind, values in positions:
            if kind in JAW_X and len(values) == 2:
                last_x = values
            elif kind in JAW_Y and len(values) == 2:
                last_y = values
            elif kind in MLC:
                if mlc_width is None:
                    mlc_width = len(values)
                    mlc = np.full((n, mlc_width), np.nan)
                if len(values) != mlc_width:
                    raise PlanRejected(
                        f"{REJECT}{where} control point {i} has {len(values)} MLC "
                        f"positions, expected {mlc_width}")
                last_mlc = values
        if last_x is not None:
            jaw_x[i] = last_x
        if last_y is not None:
            jaw_y[i] = last_y
        if last_mlc is not None and mlc is not None:
            mlc[i] = last_mlc
    out["jaw_x"] = jaw_x
    out["jaw_y"] = jaw_y
    out["mlc"] = mlc if mlc is not None else np.zeros((n, 0))
    return out
