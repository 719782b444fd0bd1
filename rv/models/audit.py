"""The audit trail: who did what to which clinical object, written in the same transaction
as the change (DESIGN.md). Rows are append-only; on PostgreSQL triggers refuse UPDATE, DELETE
and TRUNCATE. Each row is chained to the one before it (seq, prev_hash, hash: see
rv.services.audit), so `manage.py audit_verify` finds an edited or missing row."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    # Set by audit_record before the hash is computed (so not auto_now_add).
    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.PROTECT, related_name="+")
    username = models.CharField(max_length=150, blank=True,
                                help_text="kept as written, also when no user (C-STORE)")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, db_index=True)
    object_id = models.CharField(max_length=64, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    # The hash chain (issue 12): position, the previous event's hash, and this one's:
    # sha256(prev_hash + canonical content), written once under the audit lock.
    seq = models.BigIntegerField(unique=True, null=True, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    hash = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username or '-'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("audit events are append-only")
