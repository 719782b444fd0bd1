"""Objects arriving from outside (C-STORE, import_dicom) enter the archive through here, so
the clinical domain can take what it understands in the same transaction as the store."""

from __future__ import annotations

from functools import partial

from pydicom.dataset import Dataset
from pydicom.uid import RTImageStorage, RTIonPlanStorage, RTPlanStorage

from archive.models import Instance
from archive.services import StoreResult, instance_store
from archive.storage import Part
from rv.services.images import rt_image_link, rt_images_link_plan
from rv.services.machine import TREATMENT_RECORD_SOP_CLASSES, device_record_receive
from rv.services.plan_import import plan_import

# PS3.4 B.5: the plan SOP classes that become clinical data (brachy plans are RT Plans)
PLAN_SOP_CLASSES = frozenset({RTPlanStorage, RTIonPlanStorage})
# What rv takes in with the store: plans, treatment records a machine sends, RT Images.
HOOKED_SOP_CLASSES = PLAN_SOP_CLASSES | TREATMENT_RECORD_SOP_CLASSES | {RTImageStorage}


def _on_indexed(instance: Instance, dataset: Dataset, *, calling_ae: str) -> None:
    sop_class = instance.sop_class_uid
    if sop_class in PLAN_SOP_CLASSES:
        plan = plan_import(instance=instance, dataset=dataset, calling_ae=calling_ae)
        rt_images_link_plan(plan=plan)
    elif sop_class in TREATMENT_RECORD_SOP_CLASSES:
        device_record_receive(instance=instance, dataset=dataset, calling_ae=calling_ae)
    elif sop_class == RTImageStorage:
        rt_image_link(instance=instance, dataset=dataset, calling_ae=calling_ae)


def object_receive(*, data: bytes, calling_ae: str = "", source: str = "c-store",
                   expected_sop_class: str | None = None,
                   allowed_sop_classes: frozenset[str] | None = None,
                   part: Part | None = None) -> StoreResult:
    """Store one received DICOM Part 10 object; raises archive.errors.StoreError if refused
    (an RT Plan that cannot become clinical data is refused whole: rv.errors.PlanRejected).
    A treatment record or RT Image is never refused for a clinical reason. `part`: the
    bytes already written ahead (archive.services.instance_store)."""
    return instance_store(data=data, calling_ae=calling_ae, source=source,
                          expected_sop_class=expected_sop_class,
                          allowed_sop_classes=allowed_sop_classes,
                          on_indexed=partial(_on_indexed, calling_ae=calling_ae),
                          on_indexed_sop_classes=HOOKED_SOP_CLASSES, part=part)
