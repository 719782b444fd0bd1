"""manage.py demo_setup: the demo accounts and sample objects that `make run` shows.

Passwords are made once per installation, kept in var/demo_accounts.json (mode 0600) and
printed at every start. Never run this on a clinical installation.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.management.base import BaseCommand
from pydicom import dcmread
from pydicom.data import get_testdata_file

from archive.dicomio import ensure_part10
from archive.errors import StoreError
from archive.models import Instance
from rv.ingest import object_receive
from rv.roles import ADMIN, ALL_ROLES

SAMPLES = ["rtplan.dcm", "rtstruct.dcm", "rtdose.dcm", "CT_small.dcm"]


def _sample_bytes(path: Path) -> bytes:
    """pydicom's rtplan.dcm names another SOP Instance UID in its file meta than in its data
    set, which the archive refuses; the demo copy gets consistent file meta."""
    data = ensure_part10(path.read_bytes())
    ds = dcmread(io.BytesIO(data))
    if ds.file_meta.get("MediaStorageSOPInstanceUID") == ds.get("SOPInstanceUID"):
        return data
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _passwords(path: Path) -> dict[str, str]:
    if path.exists():
        return dict(json.loads(path.read_text()))
    words = {role: f"{role}-{secrets.token_urlsafe(9)}" for role in ALL_ROLES}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(words, fh)
    return words


class Command(BaseCommand):
    help = "Create the demo accounts and sample archive objects (make run only)."

    def handle(self, *args: Any, **options: Any) -> None:
        passwords = _passwords(Path(settings.BASE_DIR) / "var" / "demo_accounts.json")
        for role in ALL_ROLES:
            user, _ = User.objects.get_or_create(username=role)
            validate_password(passwords[role], user=user)  # the validators hold here too
            user.set_password(passwords[role])
            user.is_staff = user.is_superuser = role == ADMIN
            user.save()
            user.groups.set([Group.objects.get(name=role)])
        if not Instance.objects.exists():
            for name in SAMPLES:
                path = get_testdata_file(name)
                if path is None:
                    continue
                try:
                    object_receive(data=_sample_bytes(Path(path)), source="import")
                except StoreError as exc:
                    self.stderr.write(f"sample {name} not imported: {exc.comment}")
        http = settings.RV_HTTP_PORT
        self.stdout.write("\nDemo accounts (make run only):")
        for role in ALL_ROLES:
            self.stdout.write(f"  {role:10} {passwords[role]}")
        self.stdout.write(f"\nWeb UI  http://127.0.0.1:{http}/   API  http://127.0.0.1:{http}"
                          f"/api/v1/   DICOM  {settings.RV_AE_TITLE}@{settings.RV_DICOM_HOST}:"
                          f"{settings.RV_DICOM_PORT}\n")
