"""C-FIND matching over the index, called directly (archive/query.py, PS3.4 C.2.2.2)."""

from __future__ import annotations

from datetime import date

import pytest
from django.db.models import Q
from pydicom.dataset import Dataset

from archive.query import (
    KEYS,
    InvalidQuery,
    find,
    prefix,
    retrieve_instances,
    value_q,
    wildcard_regex,
)
from tests.helpers import qr_identifier, seed_qr_archive


def results(level: str, root: str = "study", **keys: object) -> list[Dataset]:
    return list(find(qr_identifier(level, **keys), root=root, retrieve_ae="RV_SCP"))  # type: ignore[arg-type]


def values(level: str, keyword: str, root: str = "study", **keys: object) -> list[str]:
    keys.setdefault(keyword, "")
    return sorted(str(ds.get(keyword)) for ds in results(level, root, **keys))


# --- pure: no database -------------------------------------------------------------------

def test_wildcards_become_anchored_regexes_with_the_rest_literal() -> None:
    assert wildcard_regex("Doe*") == "^Doe.*$"
    assert wildcard_regex("D?e") == "^D.e$"
    assert wildcard_regex("a.b^c*") == r"^a\.b\^c.*$"


def test_paths_climb_the_hierarchy() -> None:
    assert prefix(level="IMAGE", of="PATIENT") == "series__study__patient__"
    assert prefix(level="SERIES", of="STUDY") == "study__"
    assert prefix(level="STUDY", of="STUDY") == ""


@pytest.mark.parametrize(("keyword", "value", "expected"), [
    ("PatientID", "", Q()),
    ("PatientID", "*", Q()),
    ("PatientID", "P1", Q(patient_id__exact="P1")),
    ("PatientID", "P*", Q(patient_id__regex="^P.*$")),
    ("PatientName", "doe^jane", Q(patient_name__iexact="doe^jane")),
    ("PatientName", "DOE*", Q(patient_name__iregex="^DOE.*$")),
    ("StudyInstanceUID", ["1.2", "1.3"], Q(study_instance_uid__in=["1.2", "1.3"])),
    ("StudyDate", "20260101", Q(study_date=date(2026, 1, 1))),
    ("StudyDate", "20260101-20260131",
     Q(study_date__gte=date(2026, 1, 1)) & Q(study_date__lte=date(2026, 1, 31))),
    ("StudyDate", "-20260131", Q(study_date__lte=date(2026, 1, 31))),
    ("StudyDate", "20260101-", Q(study_date__gte=date(2026, 1, 1))),
    ("StudyTime", "1000-1100",
     ~Q(study_time="") & Q(study_time__gte="1000") & Q(study_time__lte="110059.999999")),
    ("SeriesNumber", "3", Q(series_number=3)),
    ("SeriesNumber", "*", Q()),
    ("StudyDate", "*", Q()),
])
def test_value_q(keyword: str, value: object, expected: Q) -> None:
    key = KEYS[keyword]
    assert value_q(key, value, key.field) == expected


@pytest.mark.parametrize(("keyword", "value"), [
    ("StudyDate", "2026-01"), ("StudyDate", "2026013"), ("StudyDate", "-"),
    ("StudyTime", "25x"), ("SeriesNumber", "three"), ("PatientID", ["A", "B"]),
    ("StudyInstanceUID", "1.2.*"),
])
def test_invalid_values_raise(keyword: str, value: object) -> None:
    with pytest.raises(InvalidQuery):
        value_q(KEYS[keyword], value, KEYS[keyword].field)


def test_bad_levels_are_refused() -> None:
    with pytest.raises(InvalidQuery, match="Level"):
        results("WARD")
    with pytest.raises(InvalidQuery, match="no PATIENT level"):
        results("PATIENT", root="study")


# --- over the index ----------------------------------------------------------------------

@pytest.fixture
def seeded(db) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return seed_qr_archive()


def test_each_level_and_kind_of_matching(seeded: dict[str, dict[str, str]]) -> None:
    study, series, sop = seeded["study"], seeded["series"], seeded["sop"]
    assert values("PATIENT", "PatientID", root="patient") == ["PQR1", "PQR2", "PQR3"]
    assert values("PATIENT", "PatientID", root="patient", PatientName="doe*") == ["PQR1",
                                                                                    "PQR3"]
    assert values("PATIENT", "PatientID", root="patient",
                  PatientBirthDate="19650101-") == ["PQR2", "PQR3"]
    assert values("STUDY", "AccessionNumber", StudyDate="20260101-20260131") == ["ACC1"]
    assert values("STUDY", "AccessionNumber", StudyDate="-20260131") == ["ACC1", "XYZ9"]
    assert values("STUDY", "AccessionNumber", AccessionNumber="ACC?") == ["ACC1", "ACC2"]
    assert values("STUDY", "AccessionNumber", AccessionNumber="acc*") == []  # case-sensitive
    assert values("STUDY", "AccessionNumber",
                  StudyInstanceUID=[study["A"], study["C"]]) == ["ACC1", "XYZ9"]
    assert values("STUDY", "AccessionNumber", StudyTime="1500-") == ["ACC2"]
    assert values("SERIES", "SeriesInstanceUID", Modality="MR") == [series["mr"]]
    assert values("SERIES", "Modality", StudyInstanceUID=study["A"]) == ["CT", "MR"]
    assert values("IMAGE", "SOPInstanceUID", SeriesInstanceUID=series["ct"],
                  InstanceNumber="2") == [sop["ct-2"]]
    assert values("IMAGE", "SOPInstanceUID", ContentDate="20260116") == [sop["mr-1"]]


def test_exactly_the_requested_keys_with_counts(seeded: dict[str, dict[str, str]]) -> None:
    (match,) = results("STUDY", StudyInstanceUID=seeded["study"]["A"],
                       NumberOfStudyRelatedInstances="", NumberOfStudyRelatedSeries="",
                       ModalitiesInStudy="", PatientName="", OtherPatientIDs="")
    assert {e.keyword for e in match} == {
        "StudyInstanceUID", "NumberOfStudyRelatedInstances", "NumberOfStudyRelatedSeries",
        "ModalitiesInStudy", "PatientName", "OtherPatientIDs", "QueryRetrieveLevel",
        "RetrieveAETitle"}
    assert match.NumberOfStudyRelatedInstances == 3
    assert match.NumberOfStudyRelatedSeries == 2
    assert list(match.ModalitiesInStudy) == ["CT", "MR"]
    assert match.PatientName == "Doe^Jane"
    assert match.OtherPatientIDs in ("", None)  # not in the index: returned empty


def test_private_keys_come_back_empty(seeded: dict[str, dict[str, str]]) -> None:
    identifier = qr_identifier("STUDY", StudyInstanceUID=seeded["study"]["B"])
    identifier.add_new(0x00091010, "LO", "anything")
    (match,) = find(identifier, root="study", retrieve_ae="RV_SCP")
    assert match[0x00091010].value in ("", None)


def test_modalities_in_study_matches_without_changing_the_counts(
        seeded: dict[str, dict[str, str]]) -> None:
    (match,) = results("STUDY", ModalitiesInStudy="MR", NumberOfStudyRelatedSeries="")
    assert match.NumberOfStudyRelatedSeries == 2


def test_non_ascii_names_come_back_as_utf8(db) -> None:  # type: ignore[no-untyped-def]
    from archive.services import instance_store
    from tests.helpers import make_ct, to_bytes

    ds = make_ct(patient_id="U1", patient_name="Müller^Jürgen")
    ds.SpecificCharacterSet = "ISO_IR 100"
    instance_store(data=to_bytes(ds), source="import")
    (match,) = results("PATIENT", root="patient", PatientName="müller*")
    assert match.SpecificCharacterSet == "ISO_IR 192"
    assert match.PatientName == "Müller^Jürgen"


def test_retrieve_needs_the_unique_key(seeded: dict[str, dict[str, str]]) -> None:
    with pytest.raises(InvalidQuery, match="needs StudyInstanceUID"):
        retrieve_instances(qr_identifier("STUDY", StudyInstanceUID=""), root="study")
    found = retrieve_instances(qr_identifier("SERIES", SeriesInstanceUID=[
        seeded["series"]["ct"], seeded["series"]["mr"]]), root="study")
    assert found.count() == 3
    one = retrieve_instances(qr_identifier("PATIENT", PatientID="PQR2"), root="patient")
    assert one.count() == 1
