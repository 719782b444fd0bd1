"""Users and their roles (admins only), and the login trail. Every change is audited in the
same transaction; logins, logouts and failed logins are recorded by `auth_event_record`,
which rv.apps connects to Django's auth signals as a thin door."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.contrib.auth.models import User as AuthUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from rv.errors import ValidationError
from rv.roles import ALL_ROLES, MANAGE_USERS, require, roles_of
from rv.services.audit import audit_record

User = AbstractBaseUser | AnonymousUser


def _clean_roles(roles: Iterable[str]) -> list[str]:
    roles = sorted(set(roles))
    unknown = set(roles) - set(ALL_ROLES)
    if unknown:
        raise ValidationError(f"Unknown role: {', '.join(sorted(unknown))}.")
    return roles


def _groups(roles: list[str]) -> list[Group]:
    return [Group.objects.get_or_create(name=r)[0] for r in roles]


def password_check(*, password: str, user: AuthUser | None) -> None:
    """Django's AUTH_PASSWORD_VALIDATORS, as a DomainError with every reason in one message."""
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationError("Password refused: " + " ".join(exc.messages)) from None


def token_revoke_all(*, user: AbstractBaseUser | AnonymousUser, reason: str) -> int:
    """Delete every API token of `user` (knox); audited. Returns how many there were."""
    from knox.models import AuthToken

    with transaction.atomic():
        count, _ = AuthToken.objects.filter(user_id=user.pk).delete()
        audit_record(action="auth.token_revoke_all", obj=user, user=user,  # type: ignore[arg-type]
                     details={"reason": reason, "tokens": count})
    return count


@transaction.atomic
def user_password_set(*, by: User, user: AuthUser, password: str) -> AuthUser:
    """Set a user's password (admins, or the user themselves): validated, audited, and every
    API token of the user revoked, in one transaction."""
    if getattr(by, "pk", None) != user.pk:
        require(by, MANAGE_USERS)
    password_check(password=password, user=user)
    user.set_password(password)
    user.save(update_fields=["password"])
    token_revoke_all(user=user, reason="password change")
    audit_record(action="user.password", obj=user, user=by, details={"username": user.username})
    return user


@transaction.atomic
def user_create(*, by: User, username: str, password: str, roles: Iterable[str],
                full_name: str = "") -> AuthUser:
    require(by, MANAGE_USERS)
    username = username.strip()
    if not username or AuthUser.objects.filter(username=username).exists():
        raise ValidationError(f"User name {username!r} is empty or taken.")
    first, _, last = full_name.strip().partition(" ")
    password_check(password=password, user=AuthUser(username=username, first_name=first,
                                                    last_name=last))
    role_list = _clean_roles(roles)
    user = AuthUser.objects.create_user(username=username, password=password,
                                        first_name=first[:150], last_name=last[:150])
    user.groups.set(_groups(role_list))
    audit_record(action="user.create", obj=user, user=by,
                 details={"username": username, "roles": role_list})
    return user


@transaction.atomic
def user_roles_set(*, by: User, user: AuthUser, roles: Iterable[str]) -> AuthUser:
    require(by, MANAGE_USERS)
    role_list = _clean_roles(roles)
    before = roles_of(user)
    if before == role_list:
        return user
    other = user.groups.exclude(name__in=ALL_ROLES)
    user.groups.set([*other, *_groups(role_list)])
    audit_record(action="user.roles", obj=user, user=by,
                 details={"username": user.username, "from": before, "to": role_list})
    return user


@transaction.atomic
def user_active_set(*, by: User, user: AuthUser, active: bool) -> AuthUser:
    require(by, MANAGE_USERS)
    if user.pk == getattr(by, "pk", None) and not active:
        raise ValidationError("You cannot deactivate yourself.")
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit_record(action="user.activate" if active else "user.deactivate", obj=user, user=by,
                 details={"username": user.username})
    return user


@transaction.atomic
def user_admin_saved(*, by: User, user: AuthUser, created: bool, changed: list[str],
                     roles_before: list[str]) -> None:
    """The Django admin saved a user (its own forms did the write): check the role and
    audit what changed, in the admin's transaction."""
    require(by, MANAGE_USERS)
    if "password" in changed and not created:
        token_revoke_all(user=user, reason="password change")
    audit_record(action="user.create" if created else "user.change", obj=user, user=by,
                 details={"username": user.username, "fields": sorted(set(changed) -
                                                                     {"password"}),
                          "password_changed": "password" in changed or created,
                          "roles_from": roles_before, "roles_to": roles_of(user)})


@transaction.atomic
def user_admin_password_changed(*, by: User, user: AuthUser) -> None:
    """The Django admin's password form set a user's password: audit it (never the value)."""
    require(by, MANAGE_USERS)
    token_revoke_all(user=user, reason="password change")
    audit_record(action="user.password", obj=user, user=by, details={"username": user.username})


@transaction.atomic
def auth_event_record(*, action: str, user: User | None, username: str = "",
                      ip: str = "") -> None:
    """login, logout, login_failed: one audit event each."""
    if user is not None and user.is_authenticated:
        audit_record(action=f"auth.{action}", obj=user, user=user,  # type: ignore[arg-type]
                     details={"ip": ip})
    else:
        audit_record(action=f"auth.{action}", obj=None, username=username[:150],
                     object_type="auth.user", object_id="", details={"ip": ip})
