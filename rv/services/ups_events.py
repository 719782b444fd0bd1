"""UPS Watch (issue 14; PS3.4 CC.2.3): subscribe an AE to one step, to every step (global),
or to every step matching Matching Keys (filtered global), with or without a deletion lock;
unsubscribe; suspend a global subscription. Subscriptions are rows (rv.models.UpsSubscription)
and so survive restarts. The DICOM door is dicom_net.ups; events go out as rows
(rv.services.ups_outbox) sent by `manage.py ups_event_worker`.

Table CC.2.3-2, as kept here: subscribing to a step sets the AE's row for it and sends the
step's current state at once (CC.2.4.3). Subscribing globally records the AE's global
subscription and subscribes it to every open step (SCHEDULED or IN PROGRESS: a COMPLETED or
CANCELED step reports nothing more) not yet subscribed, and to each step made afterwards;
with a deletion lock it is sent the current state of each of them. Unsubscribing globally
removes all the AE's subscriptions; suspending keeps the steps subscribed so far and stops
new ones. Verity never deletes a step, so every deletion lock is granted (never B301).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from pydicom.dataset import Dataset

from rv import ups_events as ev
from rv.models import UpsSubscription, Workitem
from rv.services import ups_outbox
from rv.services.audit import audit_record
from rv.services.workitem_actions import UpsAnswer
from rv.services.workitems import readiness_refresh, workitem_ds

S = UpsSubscription
W = Workitem
OPEN = (W.State.SCHEDULED, W.State.IN_PROGRESS)


def ups_watch(*, action: int, uid: str, info: Dataset, calling_ae: str,
              receiver_known: Callable[[str], bool], now: datetime | None = None) -> UpsAnswer:
    """N-ACTION 3 (subscribe), 4 (unsubscribe), 5 (suspend global subscription) of UPS
    Watch, as Table CC.2.3-3 answers. `receiver_known(ae_title)`: whether the Receiving AE
    is a node Verity can open an association to (the door knows the node registry); a
    subscription for any other AE is refused 0xC308 (nothing could ever reach it)."""
    uid = uid.strip()
    request = ev.subscription_request(action=action, uid=uid, info=info)
    if isinstance(request, ev.Refusal):
        return UpsAnswer(request.status, request.comment)
    ae = request.receiving_ae
    if action == ev.SUBSCRIBE:
        if not receiver_known(ae):
            return UpsAnswer(ev.RECEIVING_AE_UNKNOWN, f"{ae} is not a registered DICOM node "
                             "Verity can connect to (dicom_node add)")
        return ups_subscribe(receiving_ae=ae, uid=uid, deletion_lock=request.deletion_lock,
                             keys=request.keys, calling_ae=calling_ae, now=now)
    if action == ev.UNSUBSCRIBE:
        return ups_unsubscribe(receiving_ae=ae, uid=uid, calling_ae=calling_ae)
    return ups_subscription_suspend(receiving_ae=ae, uid=uid, calling_ae=calling_ae, now=now)


def _step(uid: str) -> Workitem | None:
    return Workitem.objects.filter(sop_instance_uid=uid).first()


def _no_step(uid: str) -> UpsAnswer:
    return UpsAnswer(ev.NO_SUCH_UPS, f"No worklist step {uid[:64]} here.")


@transaction.atomic
def ups_subscribe(*, receiving_ae: str, uid: str, deletion_lock: bool, keys: Dataset | None,
                  calling_ae: str, now: datetime | None = None) -> UpsAnswer:
    """Subscribe `receiving_ae` to the step `uid`, or globally (the well-known UID; the
    filtered one with `keys`). Answers 0x0000, or 0xC307 for no such step."""
    now = now or timezone.now()
    if uid in ev.WELL_KNOWN_UIDS:
        return _subscribe_global(ae=receiving_ae, filtered=uid == ev.FILTERED_UID,
                                 lock=deletion_lock, keys=keys, calling_ae=calling_ae, now=now)
    wi = _step(uid)
    if wi is None:
        return _no_step(uid)
    wi = readiness_refresh(wi=wi, now=now)  # the current state, as C-FIND would say it
    sub, created = S.objects.update_or_create(
        ae_title=receiving_ae, workitem=wi,
        defaults={"kind": S.Kind.WORKITEM, "deletion_lock": deletion_lock,
                  "requested_by": calling_ae[:16]})
    ups_outbox.queue([receiving_ae], uid=wi.sop_instance_uid,
                     event=ev.EventType.STATE_REPORT, info=ev.state_report(workitem_ds(wi)),
                     now=now)
    audit_record(action="ups.subscribe", obj=sub, username=calling_ae, details={
        "receiving_ae": receiving_ae, "workitem": wi.sop_instance_uid,
        "deletion_lock": deletion_lock, "new": created})
    return UpsAnswer(0x0000)


def _subscribe_global(*, ae: str, filtered: bool, lock: bool, keys: Dataset | None,
                      calling_ae: str, now: datetime) -> UpsAnswer:
    keys_json = keys.to_json_dict() if keys is not None else {}
    sub, _ = S.objects.update_or_create(
        ae_title=ae, workitem=None,
        defaults={"kind": S.Kind.FILTERED if filtered else S.Kind.GLOBAL,
                  "deletion_lock": lock, "filter": keys_json, "suspended": False,
                  "suspended_at": None, "requested_by": calling_ae[:16]})
    already = set(S.objects.filter(ae_title=ae, workitem__isnull=False)
                  .values_list("workitem_id", flat=True))
    covered: list[Workitem] = []
    for wi in Workitem.objects.filter(state__in=OPEN).order_by("scheduled_start", "id"):
        if filtered and not ups_outbox.filter_matches(keys_json, workitem_ds(wi)):
            continue
        covered.append(wi)
    S.objects.bulk_create([S(ae_title=ae, kind=S.Kind.WORKITEM, workitem=wi,
                             deletion_lock=lock, requested_by=calling_ae[:16])
                           for wi in covered if wi.pk not in already])
    if lock:  # CC.2.4.3: a global subscription with lock hears every step's current state
        for wi in covered:
            ups_outbox.queue([ae], uid=wi.sop_instance_uid, event=ev.EventType.STATE_REPORT,
                             info=ev.state_report(workitem_ds(wi)), now=now)
    audit_record(action="ups.subscribe", obj=sub, username=calling_ae, details={
        "receiving_ae": ae, "kind": sub.kind, "deletion_lock": lock,
        "filter": sorted(e.keyword or str(e.tag) for e in keys) if keys is not None else [],
        "steps": len(covered)})
    return UpsAnswer(0x0000)


@transaction.atomic
def ups_unsubscribe(*, receiving_ae: str, uid: str, calling_ae: str) -> UpsAnswer:
    """Unsubscribe `receiving_ae` from the step `uid`, or, with a well-known UID, from
    everything (its global subscription and every step's: Table CC.2.3-2)."""
    if uid in ev.WELL_KNOWN_UIDS:
        rows = S.objects.filter(ae_title=receiving_ae)
        what = "all"
    else:
        wi = _step(uid)
        if wi is None:
            return _no_step(uid)
        rows = S.objects.filter(ae_title=receiving_ae, workitem=wi)
        what = wi.sop_instance_uid
    removed, _ = rows.delete()
    audit_record(action="ups.unsubscribe", obj=None, username=calling_ae,
                 object_type="rv.upssubscription", object_id=receiving_ae, details={
                     "receiving_ae": receiving_ae, "from": what, "removed": removed})
    return UpsAnswer(0x0000)


@transaction.atomic
def ups_subscription_suspend(*, receiving_ae: str, uid: str, calling_ae: str,
                             now: datetime | None = None) -> UpsAnswer:
    """Suspend Global Subscription (N-ACTION 5): no new steps for the AE; the steps it is
    subscribed to so far still report. Only the well-known UIDs (else 0xC314)."""
    if uid not in ev.WELL_KNOWN_UIDS:
        return UpsAnswer(ev.ACTION_NOT_APPROPRIATE, "Suspend Global Subscription takes the "
                         "global subscription UID, not a step's")
    sub = S.objects.select_for_update().filter(ae_title=receiving_ae,
                                               workitem__isnull=True).first()
    if sub is not None and not sub.suspended:
        sub.suspended, sub.suspended_at = True, now or timezone.now()
        sub.save(update_fields=["suspended", "suspended_at", "updated_at"])
        audit_record(action="ups.suspend", obj=sub, username=calling_ae,
                     details={"receiving_ae": receiving_ae})
    return UpsAnswer(0x0000)


@transaction.atomic
def scp_status_announce(*, status: str, now: datetime | None = None) -> list[str]:
    """SCP Status Change (CC.2.4.3): RESTARTED at start-up (subscriptions and worklist kept:
    WARM START), GOING DOWN before a shutdown, to every AE with a subscription (they are the
    fallback list: kept in the database, they survive any restart). Returns the AE titles."""
    titles = ups_outbox.subscribed_anywhere()
    ups_outbox.queue(titles, uid=ev.GLOBAL_UID, event=ev.EventType.SCP_STATUS_CHANGE,
                     info=ev.scp_status(status), now=now or timezone.now())
    return titles
