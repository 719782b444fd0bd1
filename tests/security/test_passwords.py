"""Password validators on every path that sets a password (issue 12)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from rv.errors import ValidationError
from rv.services.users import user_create, user_password_set
from tests.rv.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("weak", ["password", "12345678", "short", "newbie12"])
def test_users_page_refuses_weak_passwords(client: Client, weak: str) -> None:
    make_user("root", "admin")
    client.login(username="root", password=PASSWORD)
    got = client.post("/users/", {"username": "newbie", "password": weak,
                                  "role": ["therapist"]}, follow=True)
    assert got.status_code == 200
    assert b"Password refused" in got.content
    assert not User.objects.filter(username="newbie").exists()


def test_users_page_accepts_a_strong_password(client: Client) -> None:
    make_user("root", "admin")
    client.login(username="root", password=PASSWORD)
    client.post("/users/", {"username": "newbie", "password": "plum-orbit-cactus-41",
                            "role": ["therapist"]})
    assert User.objects.get(username="newbie").check_password("plum-orbit-cactus-41")


@pytest.mark.parametrize("weak", ["password", "12345678"])
def test_services_refuse_weak_passwords(weak: str) -> None:
    admin = make_user("root", "admin")
    with pytest.raises(ValidationError, match="Password refused"):
        user_create(by=admin, username="x", password=weak, roles=["therapist"])
    target = make_user("tess", "therapist")
    with pytest.raises(ValidationError, match="Password refused"):
        user_password_set(by=admin, user=target, password=weak)
    target.refresh_from_db()
    assert target.check_password(PASSWORD)


def test_demo_setup_passwords_pass_the_validators(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    import io
    import json

    from django.contrib.auth.password_validation import validate_password
    from django.core.management import call_command

    settings.BASE_DIR = tmp_path
    call_command("demo_setup", stdout=io.StringIO(), stderr=io.StringIO())
    words = json.loads((tmp_path / "var" / "demo_accounts.json").read_text())
    for role, word in words.items():
        validate_password(word, user=User.objects.get(username=role))
