"""instance_store: the one-statement path for a known series and the full path agree."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from django.utils import timezone
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from archive import storage
from archive.errors import DatasetMismatch, DuplicateConflict
from archive.models import Instance, Series
from archive.services import instance_store
from tests.factories import ct_image, part10


def _series_objects(n: int) -> list[bytes]:
    study, series = generate_uid(), generate_uid()
    return [part10(ct_image(study_instance_uid=study, series_instance_uid=series,
                            instance_number=i + 1, seed=i)) for i in range(n)]


def _files() -> list[str]:
    return sorted(p.name for p in storage.root().rglob("*.dcm"))


@pytest.mark.django_db(transaction=True)
def test_objects_of_one_series_are_stored_and_indexed_under_it() -> None:
    data = _series_objects(3)
    results = [instance_store(data=d, calling_ae="SENDER") for d in data]
    assert [r.outcome for r in results] == ["stored"] * 3
    assert Series.objects.count() == 1
    for d, row in zip(data, Instance.objects.order_by("instance_number"), strict=True):
        assert row.sha256 == hashlib.sha256(d).hexdigest()
        assert row.size == len(d) and row.calling_ae == "SENDER"
        assert storage.absolute_path(row.path).read_bytes() == d
        assert abs((timezone.now() - row.received_at).total_seconds()) < 120
        assert row.content_date == date(2026, 1, 1) and row.content_time == "120000"
        assert row.transfer_syntax_uid == ExplicitVRLittleEndian
        assert row.series.study.patient.patient_id == "TEST-0001"
    assert {r.instance.pk for r in results} == set(Instance.objects.values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
def test_the_same_object_again_is_a_duplicate_that_writes_nothing() -> None:
    first, second = _series_objects(2)
    instance_store(data=first)
    instance_store(data=second)
    files = _files()
    assert instance_store(data=second).outcome == "duplicate"
    assert Instance.objects.count() == 2 and _files() == files


@pytest.mark.django_db(transaction=True)
def test_a_different_object_under_a_held_uid_is_refused_and_leaves_no_file() -> None:
    study, series, uid = generate_uid(), generate_uid(), generate_uid()
    instance_store(data=part10(ct_image(study_instance_uid=study, series_instance_uid=series,
                                        sop_instance_uid=generate_uid())))
    original = part10(ct_image(study_instance_uid=study, series_instance_uid=series,
                               sop_instance_uid=uid, seed=1))
    instance_store(data=original)
    files = _files()
    changed = part10(ct_image(study_instance_uid=study, series_instance_uid=series,
                              sop_instance_uid=uid, seed=2))
    with pytest.raises(DuplicateConflict):
        instance_store(data=changed)
    row = Instance.objects.get(sop_instance_uid=uid)
    assert row.sha256 == hashlib.sha256(original).hexdigest()
    assert _files() == files


@pytest.mark.django_db(transaction=True)
def test_a_known_series_under_another_patient_is_refused() -> None:
    study, series = generate_uid(), generate_uid()
    instance_store(data=part10(ct_image(study_instance_uid=study, series_instance_uid=series,
                                        patient_id="P1")))
    files = _files()
    with pytest.raises(DatasetMismatch):
        instance_store(data=part10(ct_image(study_instance_uid=study,
                                            series_instance_uid=series, patient_id="P2",
                                            seed=3)))
    with pytest.raises(DatasetMismatch):
        instance_store(data=part10(ct_image(study_instance_uid=generate_uid(),
                                            series_instance_uid=series, patient_id="P1",
                                            seed=4)))
    assert Instance.objects.count() == 1 and _files() == files


@pytest.mark.django_db
def test_inside_a_callers_transaction_too() -> None:
    data = _series_objects(2)
    assert [instance_store(data=d).outcome for d in data] == ["stored", "stored"]
    assert instance_store(data=data[1]).outcome == "duplicate"
    assert Instance.objects.count() == 2


@pytest.mark.django_db
def test_hook_runs_only_for_its_sop_classes() -> None:
    """A CT of a known series takes the one-statement path even when a plan hook is given."""
    from pynetdicom.sop_class import RTPlanStorage

    from archive.services import instance_store as store
    from tests.helpers import make_ct, to_bytes

    calls: list[str] = []

    def hook(instance, ds):  # type: ignore[no-untyped-def]
        calls.append(instance.sop_class_uid)

    series = "1.2.826.0.1.3680043.8.498.77"
    for _ in range(2):
        result = store(data=to_bytes(make_ct(series_uid=series, study_uid=series + ".1")),
                       on_indexed=hook, on_indexed_sop_classes=frozenset({RTPlanStorage}))
        assert result.outcome == "stored"
    assert calls == []
