"""schemathesis against /api/schema/ (issue 7): on a small seeded clinic, every documented
operation, called with generated input by an admin's token, answers no server error and
no response that breaks its schema. Few examples an operation, so CI runs it in a minute."""

from __future__ import annotations

import pytest
import schemathesis
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.rv.conftest import make_user


@pytest.fixture
def admin_token(db) -> str:  # type: ignore[no-untyped-def]
    call_command("seed_clinic", patients=3, machines=2, years=1, seed=5, verbosity=0)
    admin: User = make_user("schema_admin", "admin")
    # every role, so that the clinical endpoints answer with data, not the door's 403
    admin.groups.add(*Group.objects.filter(name__in=("therapist", "physicist", "physician")))
    return AuthToken.objects.create(user=admin)[1]


@pytest.fixture
def api_schema(admin_token: str):  # type: ignore[no-untyped-def]
    # As Django's test client does: the test's transaction must outlive each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # The schema is for signed-in users (issue 12).
    yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(),
                                         headers={"Authorization": f"Token {admin_token}"})
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


# Logging out would revoke the token the run uses (tests/security/test_tokens.py covers it).
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex="/auth/logout")


@schema.parametrize()
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_answers_by_its_schema(case, admin_token: str) -> None:  # type: ignore[no-untyped-def]
    # call_and_validate raises on any failed check; the status is asserted here as well.
    response = case.call_and_validate(headers={"Authorization": f"Token {admin_token}"},
                                      checks=[not_a_server_error, response_schema_conformance])
    assert response.status_code < 500
