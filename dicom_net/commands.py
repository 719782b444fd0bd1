"""DIMSE command sets encoded directly (issue 16).

pynetdicom encodes every command set it sends twice with pydicom's writer, once to learn
the Command Group Length and once to send it (dimse_messages.encode): about 8 % of the
Python time of a C-STORE of a CT image, most of it for the C-STORE-RSP. A command set is
a handful of group 0000 elements in Implicit VR Little Endian (PS3.7 6.3.1, PS3.5 7.1.3):
those of the VRs a success response carries (UL, US, UI, each with one value) are written
here; a command set with anything else (an Error Comment, an AE title, an empty value, a
data set rather than a command set) goes to pydicom's writer, as before. Either way the
bytes are the same: tests/dicom_net/test_commands_encoding.py holds the two to that.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages

log = logging.getLogger(__name__)

_ELEMENT = struct.Struct("<HHL")
_US = struct.Struct("<H")
_UL = struct.Struct("<L")


def encode_command(ds: Dataset) -> bytes | None:
    """ds encoded in Implicit VR Little Endian when every element is a group 0000 UL, US
    or UI with one plain value; None otherwise (the caller then uses pydicom)."""
    out: list[bytes] = []
    for elem in ds:
        tag = elem.tag
        if tag >> 16:
            return None
        vr, value = elem.VR, elem.value
        if vr == "US" and type(value) is int and 0 <= value <= 0xFFFF:
            raw = _US.pack(value)
        elif vr == "UL" and type(value) is int and 0 <= value <= 0xFFFFFFFF:
            raw = _UL.pack(value)
        elif vr == "UI" and isinstance(value, str) and value and value.isascii() \
                and "\\" not in value and "\0" not in value:
            raw = value.encode("ascii")
            if len(raw) % 2:
                raw += b"\0"
        else:
            return None
        out.append(_ELEMENT.pack(0, tag & 0xFFFF, len(raw)))
        out.append(raw)
    return b"".join(out)


_pydicom_encode = dimse_messages.encode


def encode(ds: Dataset, is_implicit_vr: bool, is_little_endian: bool,
           deflated: bool = False) -> bytes | None:
    """pynetdicom's dsutils.encode, with command sets written by encode_command."""
    if is_implicit_vr and is_little_endian and not deflated and type(ds) is Dataset:
        fast = encode_command(ds)
        if fast is not None:
            return fast
    return _pydicom_encode(ds, is_implicit_vr, is_little_endian, deflated)


def install() -> bool:
    """Let pynetdicom's DIMSE messages encode their command sets with `encode`."""
    current: Any = getattr(dimse_messages, "encode", None)
    if current is encode:
        return True
    if current is not _pydicom_encode:
        log.warning("pynetdicom's dimse_messages.encode is not the one expected; command "
                    "sets keep pydicom's writer")
        return False
    dimse_messages.encode = encode  # type: ignore[assignment]
    return True
