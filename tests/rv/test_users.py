"""Users and roles: the admin's page, the Django admin hooks, each change audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from rv.errors import ValidationError
from rv.models import AuditEvent
from rv.roles import roles_of
from rv.services.users import user_create, user_roles_set
from tests.rv.conftest import make_user

pytestmark = pytest.mark.django_db


def test_create_and_change_roles_are_audited() -> None:
    admin = make_user("ada", "admin")
    user = user_create(by=admin, username="nina", password="long-enough-1",
                       roles=["therapist"], full_name="Nina Ng")
    assert roles_of(user) == ["therapist"] and user.check_password("long-enough-1")
    user_roles_set(by=admin, user=user, roles=["therapist", "physicist"])
    assert roles_of(user) == ["physicist", "therapist"]
    events = AuditEvent.objects.filter(object_type="auth.user", object_id=str(user.pk))
    assert list(events.order_by("id").values_list("action", flat=True)) == [
        "user.create", "user.roles"]
    assert events.get(action="user.roles").details["from"] == ["therapist"]
    with pytest.raises(ValidationError, match="Unknown role"):
        user_roles_set(by=admin, user=user, roles=["wizard"])


def test_users_page(client: Client) -> None:
    admin = make_user("ada", "admin")
    client.force_login(admin)
    client.post("/users/", {"username": "omar", "password": "long-enough-1",
                            "role": ["physician"]})
    omar = User.objects.get(username="omar")
    assert roles_of(omar) == ["physician"]
    client.post("/users/", {"user": omar.pk, "role": ["physician", "physicist"],
                            "active": ["off"]})
    omar.refresh_from_db()
    assert roles_of(omar) == ["physician", "physicist"] and not omar.is_active
    assert AuditEvent.objects.filter(action="user.deactivate").count() == 1


def test_django_admin_user_changes_are_audited(client: Client) -> None:
    admin = make_user("ada", "admin")
    admin.is_staff = True
    admin.save()
    client.force_login(admin)
    response = client.post("/admin/auth/user/add/", {
        "username": "pia", "password1": "a-long-pass-123", "password2": "a-long-pass-123",
        "usable_password": "true"})
    assert response.status_code == 302, response.content.decode()[:2000]
    pia = User.objects.get(username="pia")
    assert AuditEvent.objects.get(action="user.create", object_id=str(pia.pk)).user == admin
    response = client.post(f"/admin/auth/user/{pia.pk}/password/", {
        "password1": "another-long-456", "password2": "another-long-456",
        "usable_password": "true"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="user.password", object_id=str(pia.pk)).exists()
