"""API tokens (issue 12): stored hashed (knox), expiring, revocable, dead after a password
change; the contract stays POST /api/v1/auth/token/ -> {"token"} and "Token <token>"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken

from rv.models import AuditEvent
from rv.services.users import user_password_set
from tests.rv.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


def _token(client: Client, username: str) -> str:
    got = client.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD},
                      content_type="application/json")
    assert got.status_code == 200, got.content
    return str(got.json()["token"])


def _get(client: Client, token: str):  # type: ignore[no-untyped-def]
    return client.get("/api/v1/", HTTP_AUTHORIZATION=f"Token {token}",
                      HTTP_ACCEPT="application/json")


def test_token_works_is_stored_hashed_and_expires_by_setting(client: Client) -> None:
    user = make_user("tara", "therapist")
    token = _token(client, "tara")
    assert _get(client, token).status_code == 200
    row = AuthToken.objects.get(user=user)
    assert token not in (row.digest, row.token_key) and len(row.digest) == 128
    ttl = settings.REST_KNOX["TOKEN_TTL"]
    assert row.expiry is not None
    assert abs((row.expiry - timezone.now()) - ttl) < timedelta(minutes=1)
    assert AuditEvent.objects.filter(username="tara", action="auth.token").exists()


def test_expired_token_is_refused(client: Client) -> None:
    make_user("tara", "therapist")
    token = _token(client, "tara")
    AuthToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))
    refused = _get(client, token)
    assert refused.status_code == 401 and "message" in refused.json()
    assert not AuthToken.objects.exists()  # knox deletes it


def test_logout_revokes_that_token_only(client: Client) -> None:
    make_user("tara", "therapist")
    first, second = _token(client, "tara"), _token(client, "tara")
    out = client.post("/api/v1/auth/logout/", HTTP_AUTHORIZATION=f"Token {first}")
    assert out.status_code == 204
    assert _get(client, first).status_code == 401
    assert _get(client, second).status_code == 200


def test_logout_all_revokes_every_token(client: Client) -> None:
    make_user("tara", "therapist")
    first, second = _token(client, "tara"), _token(client, "tara")
    out = client.post("/api/v1/auth/logout-all/", HTTP_AUTHORIZATION=f"Token {first}")
    assert out.status_code == 204
    assert _get(client, first).status_code == 401
    assert _get(client, second).status_code == 401


def test_password_change_kills_tokens(client: Client) -> None:
    user = make_user("tara", "therapist")
    admin = make_user("root", "admin")
    token = _token(client, "tara")
    user_password_set(by=admin, user=user, password="new-lantern-stone-88")
    assert _get(client, token).status_code == 401
    assert AuditEvent.objects.filter(action="auth.token_revoke_all",
                                     object_id=str(user.pk)).exists()


def test_admin_password_form_kills_tokens(client: Client) -> None:
    user = make_user("tara", "therapist")
    admin = make_user("root", "admin")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    token = _token(client, "tara")
    client.force_login(admin)
    got = client.post(f"/admin/auth/user/{user.pk}/password/",
                      {"password1": "new-lantern-stone-88", "password2": "new-lantern-stone-88",
                       "usable_password": "true"})
    assert got.status_code == 302, got.content[:2000]
    assert _get(Client(), token).status_code == 401


def test_admin_shows_no_token(client: Client) -> None:
    make_user("tara", "therapist")
    token = _token(client, "tara")
    admin = make_user("root", "admin")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    page = client.get("/admin/knox/authtoken/")
    assert page.status_code == 200 and b"tara" in page.content
    assert token.encode() not in page.content
    assert client.get("/admin/knox/authtoken/add/").status_code == 403


def test_wrong_token_and_bad_bodies_are_4xx(client: Client) -> None:
    assert _get(client, "0" * 64).status_code == 401
    for body in ("false", "[]", "[null,null]", '{"username": null}', '"x"'):
        got = client.post("/api/v1/auth/token/", body, content_type="application/json")
        assert got.status_code == 400 and "message" in got.json(), body


@pytest.mark.django_db
def test_logout_without_a_token_is_a_400_not_a_500() -> None:
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(make_user("nora", None))
    got = api.post("/api/v1/auth/logout/")
    assert got.status_code == 400 and "no API token" in got.json()["message"]
