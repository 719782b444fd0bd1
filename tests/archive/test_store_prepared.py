"""The one-statement index path on PostgreSQL runs as a prepared statement with typed
parameters (issue 16): the values stored are the values given, and one too long for its
column still fails instead of being cut short by a cast."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import DataError, connection

from archive import services
from archive.dicomio import IndexAttrs, read_index
from archive.models import Instance
from archive.services import instance_store
from tests.factories import ct_image, part10

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the prepared statement is PostgreSQL's path")


def _held_series(data_dir) -> tuple[bytes, IndexAttrs]:  # type: ignore[no-untyped-def]
    first = ct_image(patient_id="PREP-1", instance_number=1)
    assert instance_store(data=part10(first)).outcome == "stored"
    second = ct_image(patient_id="PREP-1", instance_number=7,
                      study_instance_uid=first.StudyInstanceUID,
                      series_instance_uid=first.SeriesInstanceUID)
    data = part10(second)
    return data, read_index(data)[1]


def test_the_prepared_insert_stores_the_values_given(data_dir) -> None:  # type: ignore[no-untyped-def]
    data, attrs = _held_series(data_dir)
    for _ in range(3):  # prepared on first use, reused after
        result = instance_store(data=data)
    instance = Instance.objects.get(sop_instance_uid=attrs.sop_instance_uid)
    assert result.outcome == "duplicate" and result.instance.pk == instance.pk
    assert (instance.instance_number, instance.content_date, instance.size) == (
        7, attrs.content_date, len(data))
    assert instance.series.series_instance_uid == attrs.series_instance_uid
    assert instance.received_at is not None and instance.received_at.tzinfo is not None


def test_a_value_too_long_for_its_column_fails_rather_than_being_cut(data_dir) -> None:  # type: ignore[no-untyped-def]
    _, attrs = _held_series(data_dir)
    long_syntax = dataclasses.replace(attrs, transfer_syntax_uid="1.2." + "3" * 70)
    fields = services._instance_fields(long_syntax, sha256="0" * 64, size=1, rel="x/y",
                                       calling_ae="PREP", source="c-store")
    with pytest.raises(DataError):
        services._insert_into_held_series(long_syntax, fields)
    assert not Instance.objects.filter(sop_instance_uid=attrs.sop_instance_uid).exists()
