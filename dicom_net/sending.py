"""Sending archived files by C-STORE, bytes as stored (DESIGN.md: bytes as received).

pynetdicom sends a file given by path without decoding it when the association has a
presentation context for the file's own SOP Class and Transfer Syntax
(STORE_SEND_CHUNKED_DATASET). When the peer accepted only another transfer syntax, the file
is decoded and pynetdicom converts it between the uncompressed syntaxes; a compressed file
the peer cannot take fails that one sub-operation.

The C-MOVE / C-GET loops of pynetdicom only accept a Dataset per sub-operation; a
`StoredFile` is that Dataset (it carries just the UIDs) and `install_file_sender` makes the
association send the file it names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import _config as pynetdicom_config
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context

from archive import storage
from archive.models import Instance

log = logging.getLogger(__name__)

pynetdicom_config.STORE_SEND_CHUNKED_DATASET = True
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: odd context IDs 1..255


class StoredFile(Dataset):
    """A retrieve sub-operation: the archived file of one instance."""

    def __init__(self, instance: Instance) -> None:
        super().__init__()
        self.SOPClassUID = instance.sop_class_uid
        self.SOPInstanceUID = instance.sop_instance_uid
        self.__dict__["stored_path"] = storage.absolute_path(instance.path)


def send_file(assoc: Association, path: Path, **kwargs: Any) -> Dataset:
    """C-STORE one archived file; returns the peer's status data set (empty if none)."""
    send = getattr(assoc, "_verity_send_c_store", assoc.send_c_store)
    try:
        return send(path, **kwargs)
    except ValueError as exc:
        # No context for the file's own transfer syntax: decode and let pynetdicom convert.
        log.info("sending %s decoded: %s", path.name, exc)
        return send(dcmread(path), **kwargs)


def install_file_sender(assoc: Association) -> Association:
    """Make assoc.send_c_store(StoredFile) send the archived file it names."""
    if hasattr(assoc, "_verity_send_c_store"):
        return assoc
    original = assoc.send_c_store
    assoc._verity_send_c_store = original  # type: ignore[attr-defined]

    def send_c_store(dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
        if isinstance(dataset, StoredFile):
            return send_file(assoc, dataset.__dict__["stored_path"], *args, **kwargs)
        return original(dataset, *args, **kwargs)

    assoc.send_c_store = send_c_store  # type: ignore[method-assign]
    return assoc


def storage_contexts(pairs: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """Contexts to propose for (SOP Class, Transfer Syntax) pairs: one per stored pair, so
    each file can go as it is, then one per class offering the uncompressed fallbacks."""
    pairs = sorted(set(pairs))
    exact = [build_context(UID(cls), [UID(ts)]) for cls, ts in pairs]
    classes = sorted({cls for cls, _ in pairs})
    fallback = [build_context(UID(cls), [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
                for cls in classes]
    contexts = exact + fallback
    if len(contexts) > MAX_CONTEXTS:
        # Too many pairs: keep what each class needs at least (decoded sending).
        contexts = fallback[:MAX_CONTEXTS]
    return contexts
