"""Orphan files: a store that reuses a file keeps a failing store from removing it, and
`archive_check --repair` clears orphans older than its grace period, nothing younger."""

from __future__ import annotations

import hashlib
import os
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from archive import storage
from archive.services import instance_store
from tests.helpers import make_ct, to_bytes

pytestmark = pytest.mark.django_db


def _orphan(content: bytes, *, age: float) -> Path:
    rel = storage.relative_path(hashlib.sha256(content).hexdigest())
    path = storage.absolute_path(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_a_file_reused_meanwhile_is_not_removed_by_a_failed_store() -> None:
    data = b"the same bytes, stored twice at once"
    sha = hashlib.sha256(data).hexdigest()
    first = storage.place(data, sha)
    second = storage.place(data, sha)  # another store of the same object finds the file
    assert first.created and not second.created and second.mtime_ns > first.mtime_ns
    # The first store's commit fails: it removes its file only if nobody reused it.
    assert not storage.remove_unless_reused(
        first.rel, lambda st: st.st_mtime_ns != first.mtime_ns)
    assert storage.absolute_path(first.rel).read_bytes() == data
    assert not list((storage.root() / ".tmp").glob("rm-*"))
    # Not reused: removed.
    third = storage.place(b"other bytes", hashlib.sha256(b"other bytes").hexdigest())
    assert storage.remove_unless_reused(third.rel, lambda st: st.st_mtime_ns != third.mtime_ns)
    assert not storage.absolute_path(third.rel).exists()


def test_archive_check_repair_removes_old_orphans_only() -> None:
    held = instance_store(data=to_bytes(make_ct())).instance
    held_path = storage.absolute_path(held.path)
    os.utime(held_path, (time.time() - 7200, time.time() - 7200))
    old = _orphan(b"left by a failed store long ago", age=7200)
    young = _orphan(b"a store in flight", age=5)
    tmp = storage.root() / ".tmp"
    partial = tmp / "in-crashed.part"
    partial.write_bytes(b"half")
    os.utime(partial, (time.time() - 7200, time.time() - 7200))
    # A removal a crash interrupted left an indexed file aside: it is put back.
    aside = tmp / f"rm-0123-{held_path.name}"
    os.rename(held_path, aside)
    os.link(aside, aside.with_name("copy"))  # keep the bytes for the check below
    out = StringIO()
    with pytest.raises(Exception, match="disagree"):  # the held file is missing until put back
        call_command("archive_check", "--repair", "--grace", "600", stdout=out)
    text = out.getvalue()
    assert f"REMOVED  {old}" in text and f"REMOVED  {partial}" in text
    assert f"KEPT     {young}" in text
    assert f"RESTORED {held_path}" in text
    assert "repair: removed 2 orphan or partial file(s), kept 1 younger than 600 s" in text
    assert not old.exists() and not partial.exists() and young.exists()
    assert held_path.read_bytes() == aside.with_name("copy").read_bytes()
    assert not aside.exists()
    # Now the archive is whole again, and the young orphan is still listed.
    out = StringIO()
    call_command("archive_check", stdout=out)
    assert "0 missing, 0 damaged, 1 orphan file(s), 0 partial write(s)" in out.getvalue()
