"""Objects arriving from outside (C-STORE, import_dicom) enter the archive through here, so
the clinical domain can take what it understands in the same transaction as the store."""

from __future__ import annotations

from archive.services import StoreResult, instance_store


def object_receive(*, data: bytes, calling_ae: str = "", source: str = "c-store",
                   expected_sop_class: str | None = None,
                   allowed_sop_classes: frozenset[str] | None = None) -> StoreResult:
    """Store one received DICOM Part 10 object; raises archive.errors.StoreError if refused."""
    return instance_store(data=data, calling_ae=calling_ae, source=source,
                          expected_sop_class=expected_sop_class,
                          allowed_sop_classes=allowed_sop_classes)
