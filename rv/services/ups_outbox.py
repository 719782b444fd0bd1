"""UPS events as rows (issue 14; PS3.4 CC.2.4.3): the worklist's services call these inside
their own transaction, so an N-EVENT-REPORT exists if and only if the change it reports was
committed (DESIGN.md: side effects as rows of the same transaction). The rows are sent by
`manage.py ups_event_worker` (dicom_net.ups_events), never from an association's thread.

Who hears of a step: the AEs with a subscription row for it (rv.models.UpsSubscription).
A step is made with the global subscriptions' AEs subscribed to it (Table CC.2.3-2 "A UPS is
created"), a filtered one's only when the step matches its Matching Keys (CC.2.3.3.1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from pydicom.dataset import Dataset

from rv import ups
from rv import ups_events as ev
from rv.models import UpsEvent, UpsSubscription, Workitem

log = logging.getLogger(__name__)
S = UpsSubscription


def queue(ae_titles: Iterable[str], *, uid: str, event: ev.EventType, info: Dataset,
          now: datetime) -> list[UpsEvent]:
    """One pending event per AE title (each once), in the caller's transaction."""
    titles = list(dict.fromkeys(t for t in ae_titles if t))
    if not titles:
        return []
    data = info.to_json_dict()
    return UpsEvent.objects.bulk_create([
        UpsEvent(ae_title=t, workitem_uid=uid, event_type=int(event), event_info=data,
                 next_attempt_at=now) for t in titles])


def subscribers(wi: Workitem) -> list[str]:
    """The AEs subscribed to the step ("Subscribed with/w/o Lock")."""
    return list(S.objects.filter(workitem=wi).order_by("ae_title")
                .values_list("ae_title", flat=True))


def filter_matches(keys_json: dict[str, object], item: Dataset) -> bool:
    """A filtered global subscription's Matching Keys against a step, as C-FIND matches
    (rv.ups.matches). Keys were checked when the subscription was made; a key that still
    cannot be read matches nothing (logged), it never stops the change being reported."""
    try:
        return ups.matches(Dataset.from_json(keys_json), item)
    except Exception as exc:
        log.warning("filtered UPS subscription keys cannot be matched: %s", exc)
        return False


def step_made(*, wi: Workitem, item: Dataset, now: datetime) -> list[str]:
    """A new step (CC.2.3-2 "A UPS is created", CC.2.4.3): every AE with a global
    subscription not suspended, or a filtered one whose keys match the step, is subscribed
    to it (with the global subscription's deletion lock) and told: a UPS State Report
    (SCHEDULED, its readiness), then UPS Assigned (the machine it is scheduled on)."""
    made = [S(ae_title=g.ae_title, kind=S.Kind.WORKITEM, workitem=wi,
              deletion_lock=g.deletion_lock, requested_by=g.requested_by)
            for g in S.objects.filter(workitem__isnull=True, suspended=False)
            if g.kind == S.Kind.GLOBAL or filter_matches(g.filter, item)]
    S.objects.bulk_create(made)
    titles = subscribers(wi)
    queue(titles, uid=wi.sop_instance_uid, event=ev.EventType.STATE_REPORT,
          info=ev.state_report(item), now=now)
    assignment = ev.assigned(item)
    if assignment is not None:
        queue(titles, uid=wi.sop_instance_uid, event=ev.EventType.ASSIGNED, info=assignment,
              now=now)
    return titles


def state_changed(*, wi: Workitem, item: Dataset, now: datetime,
                  through_in_progress: bool = False) -> list[str]:
    """The step's Procedure Step State or Input Readiness State changed: a UPS State Report
    to its subscribers. A SCHEDULED step Verity cancels passes through IN PROGRESS (Table
    CC.1.1-2, the Request Cancel row): two reports, IN PROGRESS then CANCELED."""
    titles = subscribers(wi)
    if through_in_progress:
        queue(titles, uid=wi.sop_instance_uid, event=ev.EventType.STATE_REPORT,
              info=ev.state_with(item, ups.IN_PROGRESS), now=now)
    queue(titles, uid=wi.sop_instance_uid, event=ev.EventType.STATE_REPORT,
          info=ev.state_report(item), now=now)
    return titles


def progress_reported(*, wi: Workitem, item: Dataset, now: datetime) -> list[str]:
    """The device's N-SET changed the progress: a UPS Progress Report to the subscribers."""
    titles = subscribers(wi)
    queue(titles, uid=wi.sop_instance_uid, event=ev.EventType.PROGRESS_REPORT,
          info=ev.progress_report(item), now=now)
    return titles


def assignment_reported(*, wi: Workitem, item: Dataset, now: datetime) -> list[str]:
    """The scheduled station or human performers changed: UPS Assigned to the subscribers."""
    info = ev.assigned(item) or Dataset()
    titles = subscribers(wi)
    queue(titles, uid=wi.sop_instance_uid, event=ev.EventType.ASSIGNED, info=info, now=now)
    return titles


def cancel_requested(*, wi: Workitem, requesting_ae: str, request: Dataset | None,
                     now: datetime, also: Iterable[str] = ()) -> list[str]:
    """Request UPS Cancel (N-ACTION 2): a UPS Cancel Requested to the subscribers and to
    `also` (the performer, when it is a registered node that did not subscribe)."""
    titles = list(dict.fromkeys([*subscribers(wi), *also]))
    queue(titles, uid=wi.sop_instance_uid, event=ev.EventType.CANCEL_REQUESTED,
          info=ev.cancel_requested(requesting_ae=requesting_ae, request=request), now=now)
    return titles


def subscribed_anywhere() -> list[str]:
    """Every AE with a subscription of any kind (the SCP Status Change goes to them)."""
    return sorted(set(S.objects.values_list("ae_title", flat=True)))
