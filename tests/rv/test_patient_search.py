"""Patient search as people type (issue 15): "Smith John", "smith, j", "SMITH^JOHN",
accent-free spellings ("muller" finds MÜLLER), and the ID, on the patients page, the API
and rv.selectors.patient_list, over the search column the importer writes."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.test import Client
from rest_framework.test import APIClient

from rv.models import Patient
from rv.names import search_key
from rv.selectors import patient_list
from tests.rv.test_banner import named_patient

pytestmark = pytest.mark.django_db

PEOPLE = {
    "S1": "SMITH^John^Alan",
    "S2": "Smith^Johanna",
    "S3": "SMITH^Jonathan^^Dr",
    "S4": "SMITHERS^Waylon",
    "J1": "JOHNSON^Mary",
    "M1": "MÜLLER^Hans-Peter",
    "M2": "Mueller^Anna",
    "O1": "O'BRIEN^Siobhán",
    "Y1": "Yamada^Tarou=山田^太郎=やまだ^たろう",
}


@pytest.fixture
def clinic() -> dict[str, Patient]:
    return {pid: named_patient(pid, name) for pid, name in PEOPLE.items()}


def ids(search: str) -> set[str]:
    return set(patient_list(search=search).values_list("patient_id", flat=True))


@pytest.mark.parametrize(("query", "found"), [
    ("Smith John", {"S1"}),
    ("smith, j", {"S1", "S2", "S3"}),
    ("SMITH^JOHN", {"S1"}),
    ("SMITH^JO", {"S1", "S2", "S3"}),
    ("john smith", {"S1"}),
    ("smith", {"S1", "S2", "S3", "S4"}),
    ("smith alan", {"S1"}),
    ("Smith, John A.", {"S1"}),
    ("smith jonathan", {"S3"}),
    ("dr smith", {"S3"}),
    ("john", {"S1", "J1"}),
    ("muller", {"M1"}),
    ("Muller", {"M1"}),
    ("MÜLLER", {"M1"}),
    ("mueller", {"M1", "M2"}),
    ("muller hans-peter", {"M1"}),
    ("muller peter", {"M1"}),
    ("obrien", {"O1"}),
    ("o'brien siobhan", {"O1"}),
    ("山田", {"Y1"}),
    ("yamada tarou", {"Y1"}),
    ("S4", {"S4"}),          # the ID still finds its patient
    ("m1", {"M1"}),
    ("jones", set()),
    ("smith x", set()),
])
def test_patient_list(clinic: dict[str, Patient], query: str, found: set[str]) -> None:
    assert ids(query) == found


def test_the_importer_writes_the_search_column(clinic: dict[str, Patient]) -> None:
    assert Patient.objects.get(patient_id="M1").search_name == \
        " MULLER MUELLER HANS PETER HANSPETER "


def test_the_data_migration_backfills_it(clinic: dict[str, Patient]) -> None:
    Patient.objects.update(search_name="")
    assert ids("muller") == set()
    migration = importlib.import_module("rv.migrations.0012_banner_search_name_backfill")
    migration.backfill(apps, None)
    assert ids("muller") == {"M1"}
    assert all(p.search_name == search_key(p.patient_name) for p in Patient.objects.all())


def test_patients_page_and_api(client: Client, clinic: dict[str, Patient], therapist) -> None:  # type: ignore[no-untyped-def]
    client.force_login(therapist)
    page = client.get("/patients/", {"q": "smith, j"}).content.decode()
    assert "SMITH, John A." in page and "SMITH, Dr Jonathan" in page and "SMITH, Johanna" in page
    assert "SMITHERS" not in page and "SMITH^John" in page  # the DICOM value as a tooltip
    assert "MÜLLER, Hans-Peter" in client.get("/patients/", {"q": "muller"}).content.decode()
    api = APIClient()
    api.force_authenticate(therapist)
    by_name = api.get("/api/v1/patients/", {"name": "Smith John"}).json()
    assert [p["patient_id"] for p in by_name["results"]] == ["S1"]
    assert by_name["results"][0]["display_name"] == "SMITH, John A."
    assert by_name["results"][0]["patient_name"] == "SMITH^John^Alan"
    q = api.get("/api/v1/patients/", {"q": "muller"}).json()
    assert [p["patient_id"] for p in q["results"]] == ["M1"]
    assert api.get("/api/v1/patients/", {"q": "S4"}).json()["count"] == 1
