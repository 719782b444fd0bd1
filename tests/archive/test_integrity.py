"""archive_check finds missing, damaged and orphan files."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from archive import storage
from archive.services import instance_store
from tests.helpers import make_ct, to_bytes

pytestmark = pytest.mark.django_db


def _check(*args: str) -> str:
    out = StringIO()
    call_command("archive_check", *args, stdout=out)
    return out.getvalue()


def test_clean_archive() -> None:
    for _ in range(3):
        instance_store(data=to_bytes(make_ct()))
    assert "checked 3 indexed object(s): 0 missing, 0 damaged, 0 orphan" in _check()


def test_missing_damaged_and_orphans(data_dir: Path) -> None:
    a = instance_store(data=to_bytes(make_ct())).instance
    b = instance_store(data=to_bytes(make_ct())).instance
    storage.absolute_path(a.path).unlink()
    damaged = storage.absolute_path(b.path)
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x01")
    orphan = storage.root() / "ab" / "cd" / ("ab" * 32 + ".dcm")
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a crash")
    with pytest.raises(CommandError):
        call_command("archive_check", stdout=(out := StringIO()))
    text = out.getvalue()
    assert f"MISSING  {a.sop_instance_uid}" in text
    assert f"DAMAGED  {b.sop_instance_uid}" in text
    assert str(orphan) in text
    with pytest.raises(CommandError):
        call_command("archive_check", "--remove-orphans", stdout=StringIO())
    assert not orphan.exists()
