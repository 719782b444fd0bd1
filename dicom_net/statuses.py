"""DIMSE status codes Verity answers with, and the status data set with its Error Comment."""

from __future__ import annotations

from pydicom.dataset import Dataset

SUCCESS = 0x0000
PENDING = 0xFF00  # PS3.4 C.4.1.1.4: Pending, matches are continuing
CANCEL = 0xFE00  # PS3.4 C.4.1.1.4: Cancel, matching terminated on C-CANCEL
# PS3.7 C.4: 0x0124 Refused: not authorized (a registered peer without the role).
NOT_AUTHORIZED = 0x0124
IDENTIFIER_MISMATCH = 0xA900  # PS3.4 C.4.1.1.4: Identifier does not match SOP Class
CANNOT_UNDERSTAND = 0xC210  # PS3.4 B.2.3: Error, cannot understand
UNABLE_TO_PROCESS = 0xC000  # PS3.4 C.4.1.1.4: Unable to process (0xC000-0xCFFF)
MOVE_DESTINATION_UNKNOWN = 0xA801  # PS3.4 C.4.2.1.5
OUT_OF_RESOURCES_SUBOPS = 0xA702  # PS3.4 C.4.2.1.5: unable to perform sub-operations
SUBOPS_WARNING = 0xB000  # PS3.4 C.4.2.1.5: sub-operations complete, one or more failures


def status_dataset(code: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]  # (0000,0902) is LO: 64 characters at most
    return ds
