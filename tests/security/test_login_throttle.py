"""Login throttling (issue 12): after RV_LOGIN_FAILURE_LIMIT wrong passwords the right one is
refused while locked out, on the web form and on the token endpoint; failures and lock-outs
are in Verity's audit trail."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from rv.models import AuditEvent
from tests.rv.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def _web_login(client: Client, username: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/login/", {"username": username, "password": password})


def test_web_login_locked_out_after_wrong_passwords(client: Client) -> None:
    make_user("wendy", "therapist")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert _web_login(client, "wendy", "not her password").status_code in (200, 429)
    refused = _web_login(client, "wendy", PASSWORD)
    assert refused.status_code == 429
    assert b"Too many failed logins" in refused.content
    assert "_auth_user_id" not in client.session  # not logged in
    assert client.get("/").status_code == 302  # still sent to the login page
    actions = list(AuditEvent.objects.filter(username="wendy").values_list("action", flat=True))
    assert actions.count("auth.login_failed") >= settings.AXES_FAILURE_LIMIT
    assert "auth.locked_out" in actions
    assert "auth.login" not in actions


def test_api_token_locked_out_after_wrong_passwords(client: Client) -> None:
    make_user("tokyo", "therapist")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        wrong = client.post("/api/v1/auth/token/", {"username": "tokyo", "password": "nope"},
                            content_type="application/json")
        assert wrong.status_code in (400, 429) and "message" in wrong.json()
    refused = client.post("/api/v1/auth/token/", {"username": "tokyo", "password": PASSWORD},
                          content_type="application/json")
    assert refused.status_code == 429
    assert "token" not in refused.json() and "Too many" in refused.json()["message"]
    assert AuditEvent.objects.filter(username="tokyo", action="auth.locked_out").exists()


def test_lockout_is_per_user_name(client: Client) -> None:
    """One user's lock-out does not lock another user out from the same address."""
    make_user("victim", "therapist")
    make_user("bystander", "therapist")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _web_login(client, "victim", "wrong")
    ok = _web_login(client, "bystander", PASSWORD)
    assert ok.status_code == 302 and "_auth_user_id" in client.session


def test_fewer_failures_than_the_limit_still_log_in(client: Client) -> None:
    make_user("careful", "therapist")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _web_login(client, "careful", "typo")
    assert _web_login(client, "careful", PASSWORD).status_code == 302


def test_a_successful_token_login_resets_the_count(client: Client) -> None:
    make_user("resetti", "therapist")

    def token(password: str) -> int:
        return client.post("/api/v1/auth/token/", {"username": "resetti", "password": password},
                           content_type="application/json").status_code

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert token("wrong") == 400
    assert token(PASSWORD) == 200
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert token("wrong") == 400
    assert token(PASSWORD) == 200
