"""A fast path for the thousands of control points of a VMAT or TomoTherapy beam.

pydicom builds a Dataset per sequence item, which costs far more than the plan's bytes
warrant. Here the still-raw Control Point Sequence value is walked once (PS3.5 section 7:
element headers; 7.5: items and delimiters), keeping only the attributes rv stores.
Anything unexpected (big endian, a foreign item, a truncated value) raises NotRaw and the
caller falls back to pydicom, so this path can only be faster, never different.
"""

from __future__ import annotations

import struct

from archive.dicomio import ITEM as _ITEM
from archive.dicomio import ITEM_END as _ITEM_END
from archive.dicomio import LONG_VRS as _LONG_VRS
from archive.dicomio import SEQ_END as _SEQ_END
from archive.dicomio import UNDEFINED_LENGTH as _UNDEFINED

_HEAD = struct.Struct("<HHI")
_HH = struct.Struct("<HH")
_H = struct.Struct("<H")
_I = struct.Struct("<I")

Item = dict[int, "bytes | list[Item]"]


class NotRaw(Exception):
    """The raw bytes are not what the fast path reads; use pydicom instead."""


def items(raw: bytes, *, implicit: bool, keep: frozenset[int],
          keep_seq: frozenset[int]) -> list[Item]:
    """The items of a raw little-endian sequence value: per item, the raw value bytes of
    the tags in `keep` and, recursively, the items of the sequences in `keep_seq`."""
    found, _ = _sequence(memoryview(raw), 0, len(raw), implicit, keep, keep_seq, False)
    return found


def _sequence(mv: memoryview, pos: int, end: int, implicit: bool, keep: frozenset[int],
              keep_seq: frozenset[int], delimited: bool) -> tuple[list[Item], int]:
    found: list[Item] = []
    while pos + 8 <= end:
        group, elem, length = _HEAD.unpack_from(mv, pos)
        tag = (group << 16) | elem
        pos += 8
        if tag == _SEQ_END:
            return found, pos
        if tag != _ITEM:
            raise NotRaw(f"expected an item at byte {pos - 8}")
        if length == _UNDEFINED:
            item, pos = _elements(mv, pos, end, implicit, keep, keep_seq, True)
        else:
            if pos + length > end:
                raise NotRaw("item runs past its sequence")
            item, _ = _elements(mv, pos, pos + length, implicit, keep, keep_seq, False)
            pos += length
        found.append(item)
    if delimited or pos != end:
        raise NotRaw("sequence ends without its delimiter")
    return found, pos


def _elements(mv: memoryview, pos: int, end: int, implicit: bool, keep: frozenset[int],
              keep_seq: frozenset[int], delimited: bool) -> tuple[Item, int]:
    item: Item = {}
    while pos + 8 <= end:
        group, elem = _HH.unpack_from(mv, pos)
        tag = (group << 16) | elem
        if tag == _ITEM_END:
            return item, pos + 8
        if implicit:
            (length,) = _I.unpack_from(mv, pos + 4)
            pos += 8
        else:
            vr = bytes(mv[pos + 4:pos + 6])
            if vr in _LONG_VRS:
                (length,) = _I.unpack_from(mv, pos + 8)
                pos += 12
            else:
                (length,) = _H.unpack_from(mv, pos + 6)
                pos += 8
        if length == _UNDEFINED:  # a sequence of undefined length: walk to its delimiter
            found, pos = _sequence(mv, pos, end, implicit, keep, keep_seq, True)
            if tag in keep_seq:
                item[tag] = found
            continue
        if pos + length > end:
            raise NotRaw("value runs past its item")
        if tag in keep_seq:
            item[tag] = _sequence(mv, pos, pos + length, implicit, keep, keep_seq, False)[0]
        elif tag in keep:
            item[tag] = bytes(mv[pos:pos + length])
        pos += length
    if delimited or pos != end:
        raise NotRaw("item ends without its delimiter")
    return item, pos
