"""RT Images (PS3.3 A.17: portal, kV, DRR) tied to patient, plan, beam and fraction, and
their review by a therapist or physician (issue 8)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone
from pydicom.dataset import Dataset

import archive.models
from rv.errors import ValidationError
from rv.models import Patient, Plan, RTImageLink, Task
from rv.roles import REVIEW_IMAGE, require
from rv.services.audit import audit_record
from rv.services.tasks import tasks_after_image, tasks_close, tasks_image_tied

User = AbstractBaseUser | AnonymousUser
K = RTImageLink.Kind


def image_kind(ds: Dataset) -> str:
    """PS3.3 C.8.8.2.1: Image Type value 3 says DRR, PORTAL, SIMULATOR, RADIOGRAPH ...; a
    kV exposure (KVP in the Exposure Sequence) without it is a kV image."""
    types = [str(t).upper() for t in (ds.get("ImageType") or [])]
    third = types[2] if len(types) > 2 else ""
    if third == "DRR":
        return K.DRR
    if third in ("SIMULATOR", "RADIOGRAPH"):
        return K.KV
    if third == "PORTAL":
        return K.PORTAL
    for exposure in ds.get("ExposureSequence", []) or []:
        if exposure.get("KVP"):
            return K.KV
    return K.PORTAL


def _int(value: object) -> int | None:
    try:
        return None if value in (None, "") else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _tie(link: RTImageLink, plan: Plan) -> None:
    link.plan = plan
    link.patient = plan.patient
    link.beam = plan.beams.filter(number=link.beam_number).first() \
        if link.beam_number is not None else None


@transaction.atomic(savepoint=False)  # called inside the store's transaction: no savepoint
def rt_image_link(*, instance: archive.models.Instance, dataset: Dataset,
                  calling_ae: str = "") -> RTImageLink:
    """The on_indexed hook for RT Images: link through Referenced RT Plan, Referenced Beam
    Number, Fraction Number and RT Image Label. A plan not (yet) held leaves the link
    open; `rt_images_link_plan` closes it when the plan arrives."""
    plan_uid = ""
    for ref in dataset.get("ReferencedRTPlanSequence", []) or []:
        plan_uid = str(ref.get("ReferencedSOPInstanceUID", "") or "")
        break
    link = RTImageLink(
        instance=instance, referenced_plan_uid=plan_uid[:64],
        beam_number=_int(dataset.get("ReferencedBeamNumber")),
        fraction_number=_int(dataset.get("FractionNumber")),
        label=str(dataset.get("RTImageLabel", "") or "")[:64], kind=image_kind(dataset),
        rows=_int(dataset.get("Rows")), columns=_int(dataset.get("Columns")),
        patient=Patient.objects.filter(
            archive_patient_id=instance.series.study.patient_id).first())
    plan = Plan.objects.filter(sop_instance_uid=plan_uid).first() if plan_uid else None
    if plan is not None:
        _tie(link, plan)
    link.save()
    event = audit_record(action="rt_image.link", obj=link, username=calling_ae, details={
        "sop_instance_uid": instance.sop_instance_uid, "plan": link.plan_id,
        "beam": link.beam_number, "fraction": link.fraction_number, "kind": link.kind})
    tasks_after_image(image=link, event=event)  # a portal or kV image to review
    return link


def rt_images_link_plan(*, plan: Plan) -> int:
    """Tie images received before their plan to it (called in the plan's import)."""
    count = 0
    for link in RTImageLink.objects.filter(plan=None, referenced_plan_uid=plan.sop_instance_uid):
        _tie(link, plan)
        link.save(update_fields=["plan", "patient", "beam"])
        tasks_image_tied(image=link)
        count += 1
    return count


@transaction.atomic
def rt_image_review(*, image: RTImageLink, user: User, approve: bool,
                    comment: str = "") -> RTImageLink:
    """A therapist or physician approves or rejects an image (a rejection says why)."""
    require(user, REVIEW_IMAGE)
    image = RTImageLink.objects.select_for_update().get(pk=image.pk)
    comment = comment.strip()
    if not approve and not comment:
        raise ValidationError("Say why the image is rejected.")
    before = image.review_status
    image.review_status = RTImageLink.Review.APPROVED if approve else RTImageLink.Review.REJECTED
    image.reviewed_by = user  # type: ignore[assignment]
    image.reviewed_at = timezone.now()
    image.comment = comment
    image.save(update_fields=["review_status", "reviewed_by", "reviewed_at", "comment"])
    audit_record(action="rt_image.approve" if approve else "rt_image.reject", obj=image,
                 user=user, details={"from": before, "comment": comment,
                                     "sop_instance_uid": image.instance.sop_instance_uid})
    tasks_close(kind=Task.Kind.IMAGE_REVIEW, image=image, user=user,
                action="rt_image.approve" if approve else "rt_image.reject")
    return image
