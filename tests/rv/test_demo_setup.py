"""make run's demo data: pydicom's rtplan.dcm becomes a plan."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from rv.models import Plan

pytestmark = pytest.mark.django_db


def test_demo_setup_imports_the_sample_plan(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.BASE_DIR = tmp_path
    call_command("demo_setup", stdout=io.StringIO(), stderr=io.StringIO())
    plan = Plan.objects.get()
    assert (plan.label, plan.fractions_planned, plan.course.code) == ("Plan1", 30, "C1")
