"""Byte-level DICOM helpers for the archive: completeness check, Part 10 framing, index attrs.

The archive keeps bytes exactly as received and decodes only what it indexes (DESIGN.md).
`check_complete` walks the element headers of a data set (PS3.5 section 7) without decoding
any value, so a truncated or garbled stream is refused before it is stored; pydicom alone
reads a truncated value silently.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from archive.errors import CannotUnderstand, DatasetMismatch, TooLarge

# PS3.5 7.1.2: VRs whose explicit header has 2 reserved bytes and a 32-bit length.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_MAX_DEPTH = 64
# The same PS3.5 framing constants under public names, for readers of raw values elsewhere.
LONG_VRS, ITEM, ITEM_END, SEQ_END, UNDEFINED_LENGTH = (frozenset(_LONG_VRS), _ITEM, _ITEM_END,
                                                       _SEQ_END, _UNDEFINED)


class _Truncated(Exception):
    pass


@dataclass(frozen=True)
class _Syntax:
    implicit: bool
    little: bool


def _walk(buf: memoryview, pos: int, end: int, syn: _Syntax, depth: int,
          until: int | None) -> int:
    """Walk elements from pos; stop at `end` or after the delimiter `until`. Return position."""
    if depth > _MAX_DEPTH:
        raise _Truncated("sequences nested deeper than 64 levels")
    order = "<" if syn.little else ">"
    while pos < end:
        if pos + 8 > end:
            raise _Truncated(f"element header cut short at byte {pos}")
        group, elem = struct.unpack_from(order + "HH", buf, pos)
        tag = (group << 16) | elem
        if group == 0xFFFE:
            (length,) = struct.unpack_from(order + "L", buf, pos + 4)
            pos += 8
            if tag == until:
                return pos
            if tag == _ITEM:
                raise _Truncated(f"sequence item outside a sequence at byte {pos - 8}")
            raise _Truncated(f"unexpected delimiter ({group:04X},{elem:04X}) at byte {pos - 8}")
        vr = b""
        if syn.implicit:
            (length,) = struct.unpack_from(order + "L", buf, pos + 4)
            pos += 8
        else:
            vr = bytes(buf[pos + 4:pos + 6])
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    raise _Truncated(f"element header cut short at byte {pos}")
                (length,) = struct.unpack_from(order + "L", buf, pos + 8)
                pos += 12
            else:
                if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
                    raise _Truncated(
                        f"({group:04X},{elem:04X}) has no valid VR at byte {pos}: {vr!r}")
                (length,) = struct.unpack_from(order + "H", buf, pos + 6)
                pos += 8
        if length == _UNDEFINED:
            # PS3.5 7.5: a sequence (or, in explicit VR, UN holding implicit VR LE, 6.2.2)
            # or encapsulated pixel data (A.4): items until the sequence delimiter.
            inner = _Syntax(True, True) if vr == b"UN" else syn
            pos = _walk_items(buf, pos, end, inner, depth + 1,
                              encapsulated=(vr in (b"OB", b"OW") or tag == 0x7FE00010))
            continue
        if pos + length > end:
            raise _Truncated(
                f"({group:04X},{elem:04X}) declares {length} bytes but only {end - pos} remain")
        # A defined-length value (a sequence too) is skipped whole: its bounds are checked.
        pos += length
    if until is not None:
        raise _Truncated("data set ends before its sequence or item is closed")
    return pos


def _walk_items(buf: memoryview, pos: int, end: int, syn: _Syntax, depth: int, *,
                encapsulated: bool) -> int:
    order = "<" if syn.little else ">"
    while pos < end:
        if pos + 8 > end:
            raise _Truncated(f"item header cut short at byte {pos}")
        group, elem = struct.unpack_from(order + "HH", buf, pos)
        (length,) = struct.unpack_from(order + "L", buf, pos + 4)
        tag = (group << 16) | elem
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Truncated(f"expected a sequence item at byte {pos - 8}")
        if length == _UNDEFINED and not encapsulated:
            pos = _walk(buf, pos, end, syn, depth + 1, until=_ITEM_END)
            continue
        if pos + length > end:
            raise _Truncated(f"sequence item declares {length} bytes but only {end - pos} remain")
        if not encapsulated:
            _walk(buf, pos, pos + length, syn, depth + 1, until=None)
        pos += length
    raise _Truncated("data set ends inside an undefined-length sequence")


def _meta_end(buf: memoryview) -> int:
    """Offset after the File Meta Information (PS3.10 7.1); explicit VR little endian."""
    return _meta(buf)[0]


def _meta(buf: memoryview) -> tuple[int, str]:
    """Offset after the File Meta Information and its Transfer Syntax UID ("" if none)."""
    if len(buf) < 132 or bytes(buf[128:132]) != b"DICM":
        raise CannotUnderstand("not a DICOM Part 10 file (no DICM prefix)")
    pos = 132
    ts = ""
    while pos + 8 <= len(buf):
        group, elem = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        vr = bytes(buf[pos + 4:pos + 6])
        if vr in _LONG_VRS:
            if pos + 12 > len(buf):
                break
            (length,) = struct.unpack_from("<L", buf, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", buf, pos + 6)
            start = pos + 8
        if elem == 0x0010:
            ts = bytes(buf[start:start + length]).decode("ascii", "replace").strip("\0 ")
        pos = start + length
    if pos > len(buf):
        raise CannotUnderstand("file meta information is cut short")
    return pos, ts


def transfer_syntax(data: bytes) -> UID:
    """The Transfer Syntax UID of a Part 10 object, read from its file meta bytes."""
    ts = _meta(memoryview(data))[1]
    if not ts:
        raise CannotUnderstand("the file meta information has no Transfer Syntax UID")
    return UID(ts)


_INFLATE_CHUNK = 1 << 20


def inflate(deflated: bytes | memoryview, *, limit: int, keep: bool = True) -> bytes:
    """A deflated data set (PS3.5 A.5), inflated a chunk at a time; TooLarge as soon as it
    passes `limit` bytes. With keep=False only its size is checked (memory: one chunk)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out: list[bytes] = []
    size = 0
    pending = bytes(deflated)
    try:
        while True:
            chunk = inflater.decompress(pending, _INFLATE_CHUNK)
            pending = inflater.unconsumed_tail
            last = inflater.eof or not (pending or chunk)
            if last:
                chunk += inflater.flush()
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"Deflated data set inflates past {limit} bytes; refused")
            if keep:
                out.append(chunk)
            if last:
                break
    except zlib.error as exc:
        raise CannotUnderstand(f"deflated data set cannot be inflated: {exc}") from exc
    if not inflater.eof:
        raise CannotUnderstand("deflated data set cannot be inflated: the stream is cut short")
    return b"".join(out)


def check_inflatable(data: bytes) -> None:
    """For a Deflated Explicit VR Little Endian object: refuse it (TooLarge) before anything
    inflates it whole if it inflates past RV_DICOM_MAX_INFLATED, or if it does not inflate."""
    buf = memoryview(data)
    start, ts = _meta(buf)
    if ts == DeflatedExplicitVRLittleEndian:
        inflate(buf[start:], limit=settings.RV_DICOM_MAX_INFLATED, keep=False)


def _syntax_of(ts: UID) -> _Syntax:
    if ts == ImplicitVRLittleEndian:
        return _Syntax(True, True)
    if ts == ExplicitVRBigEndian:
        return _Syntax(False, False)
    return _Syntax(False, True)  # every other transfer syntax encodes the data set this way


def check_complete(data: bytes, transfer_syntax: UID) -> None:
    """Raise CannotUnderstand unless every element of the data set is whole."""
    buf = memoryview(data)
    start = _meta_end(buf)
    body = buf[start:]
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        body = memoryview(inflate(body, limit=settings.RV_DICOM_MAX_INFLATED))
    if not len(body):
        raise CannotUnderstand("the data set is empty")
    try:
        _walk(body, 0, len(body), _syntax_of(transfer_syntax), 0, until=None)
    except (_Truncated, struct.error) as exc:
        raise CannotUnderstand(f"Data set truncated or malformed: {exc}") from exc


def ensure_part10(raw: bytes) -> bytes:
    """Return raw unchanged when it is a Part 10 file; else frame it with a File Meta header.

    Files written without a preamble (some older systems do) keep their data set bytes as
    they are; only the 128-byte preamble, "DICM" and the file meta are put in front.
    """
    if len(raw) >= 132 and raw[128:132] == b"DICM":
        return raw
    try:
        ds = dcmread(io.BytesIO(raw), force=True, stop_before_pixels=True,
                     specific_tags=["SOPClassUID", "SOPInstanceUID"])
    except Exception as exc:
        raise CannotUnderstand(f"not a DICOM file: {exc}") from exc
    sop_class = ds.get("SOPClassUID")
    sop_instance = ds.get("SOPInstanceUID")
    if not sop_class or not sop_instance:
        raise CannotUnderstand("not a DICOM file (no SOP Class or Instance UID found)")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if ds.original_encoding[0] else ExplicitVRLittleEndian
    )
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out = DicomBytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)  # type: ignore[arg-type]
    out.write(raw)
    return out.getvalue()


@dataclass(frozen=True)
class IndexAttrs:
    """What the Patient/Study/Series/Instance index stores (PS3.4 C.6 keys)."""

    transfer_syntax_uid: str
    sop_class_uid: str
    sop_instance_uid: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_birth_date: date | None
    patient_sex: str
    study_instance_uid: str
    study_date: date | None
    study_time: str
    accession_number: str
    study_id: str
    study_description: str
    referring_physician_name: str
    series_instance_uid: str
    modality: str
    series_number: int | None
    series_description: str
    series_date: date | None
    series_time: str
    instance_number: int | None
    content_date: date | None
    content_time: str


def dataset_part10(ds: Dataset) -> bytes:
    """Encode a data set as a DICOM Part 10 file, Explicit VR Little Endian (its file meta
    made from its SOP Class and Instance UIDs)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def parse_da(value: object) -> date | None:
    """A DICOM DA value (YYYYMMDD, or the old YYYY.MM.DD) as a date; None when unusable."""
    text = str(value or "").strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _int(value: object) -> int | None:
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _text(ds: Dataset, keyword: str, limit: int = 64) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or getattr(value, "VM", 1) > 1:
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:limit]


# PS3.5 9.1: components of digits without a leading zero (but "0"), joined by dots.
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def uid_problem(value: str) -> str | None:
    """Why value is not a valid UI value (PS3.5 9.1, 6.2), or None when it is one."""
    if len(value) > 64:
        return "longer than 64 characters"
    if not _UID.fullmatch(value):
        return "not digits and dots (no leading zeros)"
    return None


def _uid(ds: Dataset, keyword: str, name: str) -> str:
    """A UID the index keys on: the value as sent, or DatasetMismatch (0xA900) unless it
    follows the UI rules; "" when absent."""
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    text = str(value).rstrip("\0 ")
    problem = uid_problem(text)
    if problem:
        raise DatasetMismatch(f"Invalid {name} (PS3.5 9.1: {problem}): {text!r}")
    return text


def read_index(data: bytes, *, inflatable: bool = False) -> tuple[Dataset, IndexAttrs]:
    """Decode the header (no pixel data) and return it with the attributes the index keeps.

    A deflated data set is checked against RV_DICOM_MAX_INFLATED first (pydicom inflates it
    whole), unless the caller says it did (`inflatable`)."""
    if not inflatable:
        check_inflatable(data)
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    except MemoryError:
        raise
    except Exception as exc:  # whatever pydicom trips on in garbled bytes: cannot understand
        raise CannotUnderstand(f"cannot parse the data set: {exc}") from exc
    meta = ds.file_meta
    ts = meta.get("TransferSyntaxUID")
    if not ts:
        raise CannotUnderstand("the file meta information has no Transfer Syntax UID")
    try:
        sop_class = _text(ds, "SOPClassUID")
        sop_instance = _uid(ds, "SOPInstanceUID", "SOP Instance UID")
        study_uid = _uid(ds, "StudyInstanceUID", "Study Instance UID")
        series_uid = _uid(ds, "SeriesInstanceUID", "Series Instance UID")
        missing = [name for name, value in (
            ("SOP Class UID", sop_class), ("SOP Instance UID", sop_instance),
            ("Study Instance UID", study_uid), ("Series Instance UID", series_uid),
        ) if not value]
        if missing:
            raise DatasetMismatch("Missing " + ", ".join(missing) + " in the data set")
        attrs = IndexAttrs(
            transfer_syntax_uid=str(ts),
            sop_class_uid=sop_class,
            sop_instance_uid=sop_instance,
            patient_id=_text(ds, "PatientID"),
            issuer_of_patient_id=_text(ds, "IssuerOfPatientID"),
            patient_name=_text(ds, "PatientName", 324),
            patient_birth_date=parse_da(ds.get("PatientBirthDate")),
            patient_sex=_text(ds, "PatientSex", 16),
            study_instance_uid=study_uid,
            study_date=parse_da(ds.get("StudyDate")),
            study_time=_text(ds, "StudyTime", 16),
            accession_number=_text(ds, "AccessionNumber", 16),
            study_id=_text(ds, "StudyID", 16),
            study_description=_text(ds, "StudyDescription"),
            referring_physician_name=_text(ds, "ReferringPhysicianName", 324),
            series_instance_uid=series_uid,
            modality=_text(ds, "Modality", 16),
            series_number=_int(ds.get("SeriesNumber")),
            series_description=_text(ds, "SeriesDescription"),
            series_date=parse_da(ds.get("SeriesDate")),
            series_time=_text(ds, "SeriesTime", 16),
            instance_number=_int(ds.get("InstanceNumber")),
            content_date=parse_da(ds.get("ContentDate")),
            content_time=_text(ds, "ContentTime", 16),
        )
    except DatasetMismatch:
        raise
    except Exception as exc:  # a value pydicom cannot convert: the sender's data is garbled
        raise CannotUnderstand(f"cannot read the identifying attributes: {exc}") from exc
    return ds, attrs


def _without_group_lengths(ds: Dataset) -> Dataset:
    for elem in list(ds):
        if elem.tag.element == 0x0000:  # group lengths depend on the encoding only
            del ds[elem.tag]
        elif elem.VR == "SQ":
            for item in elem.value:
                _without_group_lengths(item)
    return ds


def same_content(held: bytes, offered: bytes) -> bool:
    """Whether two Part 10 objects hold the same data elements, pixel data included, whatever
    their encoding (transfer syntax, sequence and item lengths, group lengths); file meta
    aside."""
    try:
        a = _without_group_lengths(dcmread(io.BytesIO(held)))
        b = _without_group_lengths(dcmread(io.BytesIO(offered)))
        return bool(a == b)
    except Exception:  # noqa: BLE001  an unreadable copy is never "the same"
        return False
