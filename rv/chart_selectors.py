"""Reads of the patient chart in bulk (issue 15, "fast at a large clinic"): what the chart
shows of each of a patient's plans, for all of them in a fixed number of queries, whatever
the number of courses and plans (rv.selectors has the one-plan forms)."""

from __future__ import annotations

from collections.abc import Iterable

from rv.models import DeviceRecord, Plan, RTImageLink, Session


def plans_fractions_delivered(*, plans: Iterable[Plan]) -> dict[int, int]:
    """plan_fractions_delivered for many plans of one patient at once (the chart): {plan id:
    fractions completed over its revision chain}, in one query. The chains are walked
    over the given plans (a patient's plans hold each other's revisions); a revision not
    among them is read as plan_fractions_delivered does."""
    from collections import defaultdict

    given = {p.pk: p for p in plans}
    chains: dict[int, list[int]] = {}
    for pk, plan in given.items():
        chain = [pk]
        while (prev := given[chain[-1]].previous_revision_id) is not None and prev in given:
            chain.append(prev)
        if prev is not None:  # an earlier revision elsewhere: walk it as the plan does
            chain = [p.pk for p in plan.revision_chain()]
        chains[pk] = chain
    done: dict[int, set[int]] = defaultdict(set)
    for plan_id, fraction in (Session.objects.filter(
            plan_id__in={c for chain in chains.values() for c in chain},
            fraction_complete=True).order_by().values_list("plan_id", "fraction_number")
            .distinct()):
        done[plan_id].add(fraction)
    return {pk: len(set().union(*(done[c] for c in chain))) for pk, chain in chains.items()}


def plans_review_flags(*, plan_ids: Iterable[int]) -> dict[int, int]:
    """plan_review_flags for many plans at once (the chart): {plan id: machine records to
    review + images pending}, in two queries."""
    from django.db.models import Count, Q

    ids = set(plan_ids)
    out = dict.fromkeys(ids, 0)
    for qs in (DeviceRecord.objects.filter(plan_id__in=ids, reviewed_at=None)
               .filter(~Q(differences=[]) | ~Q(violations=[])),
               RTImageLink.objects.filter(plan_id__in=ids,
                                          review_status=RTImageLink.Review.PENDING)
               .exclude(kind=RTImageLink.Kind.DRR)):
        for plan_id, n in qs.order_by().values("plan_id").annotate(n=Count("id")).values_list(
                "plan_id", "n"):
            out[plan_id] += n
    return out
