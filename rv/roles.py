"""The four roles of CONTRACT.md, as Django groups created by a migration."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

THERAPIST = "therapist"
PHYSICIST = "physicist"
PHYSICIAN = "physician"
ADMIN = "admin"
ALL_ROLES = (THERAPIST, PHYSICIST, PHYSICIAN, ADMIN)


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    if not user.is_authenticated:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return user.groups.filter(name__in=roles).exists()  # type: ignore[union-attr]
