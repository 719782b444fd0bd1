"""audit_record: the one helper every service function calls inside its transaction."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models, transaction

from rv.models import AuditEvent


def audit_record(*, action: str, obj: models.Model | None, user: AbstractBaseUser |
                 AnonymousUser | None = None, username: str = "",
                 details: dict[str, Any] | None = None, object_type: str = "",
                 object_id: str = "") -> AuditEvent:
    """Append one audit event; must run inside the caller's transaction. Without an object
    (a failed login for an unknown name) give object_type / object_id as text."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the service's transaction")
    real_user = user if user is not None and user.is_authenticated else None
    return AuditEvent.objects.create(
        user=cast(Any, real_user),
        username=username or (real_user.get_username() if real_user else ""),
        action=action, object_type=obj._meta.label_lower if obj is not None else object_type,
        object_id=str(obj.pk) if obj is not None else object_id,
        details=details or {})
