"""Helpers for the fault tests: child processes, event waits, DICOM senders, PostgreSQL."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from django.db import connection
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from archive import storage
from archive.models import Instance
from tests.factories import ct_image

T = TypeVar("T")

needs_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (CI runs the suite on it)")


def wait_for(condition: Callable[[], T | None], what: str, timeout: float = 60.0,
             every: float = 0.05) -> T:
    """Poll condition until it returns something truthy; fail after timeout saying what."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def children_of(pid: int) -> set[int]:
    """The live (not zombie) child processes of pid, from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2:].split()[0] != "Z"


def echo_and_store(port: int, calling: str = "FAULT_SCU") -> tuple[int, int, str]:
    """One association: C-ECHO then one C-STORE; (echo status, store status, SOP UID)."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP")
    assert assoc.is_established, "association refused or failed"
    try:
        echo = assoc.send_c_echo()
        ds = ct_image(patient_id="FAULT-ECHO")
        store = assoc.send_c_store(ds)
        return (int(echo.Status) if echo else -1, int(store.Status) if store else -1,
                str(ds.SOPInstanceUID))
    finally:
        if assoc.is_established:
            assoc.release()


class Sender(threading.Thread):
    """Streams CT objects on one association until `stop` is set, `count` are sent or the
    association breaks; notes the SOP Instance UID of every object answered 0x0000."""

    def __init__(self, port: int, calling: str, *, count: int = 10_000) -> None:
        super().__init__(daemon=True)
        self.port, self.calling, self.count = port, calling, count
        self.acknowledged: list[str] = []
        self.statuses: list[int] = []
        self.broken = False
        self.first = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        ae = AE(ae_title=self.calling)
        ae.add_requested_context(CTImageStorage)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        assoc = ae.associate("127.0.0.1", self.port, ae_title="RV_SCP")
        if not assoc.is_established:
            self.broken = True
            return
        study, series = generate_uid(), generate_uid()
        try:
            for i in range(self.count):
                if self.stop.is_set():
                    break
                ds = ct_image(study_instance_uid=study, series_instance_uid=series,
                              patient_id=self.calling, instance_number=i + 1, seed=i)
                try:
                    status = assoc.send_c_store(ds)
                except Exception:
                    self.broken = True
                    return
                if not assoc.is_established or not status or "Status" not in status:
                    self.broken = True
                    return
                self.statuses.append(int(status.Status))
                if status.Status == 0x0000:
                    self.acknowledged.append(str(ds.SOPInstanceUID))
                    self.first.set()
        finally:
            if assoc.is_established:
                assoc.release()


def assert_acknowledged_archived(acknowledged: list[str]) -> None:
    """Every acknowledged object has its row, and every row its file with the right hash."""
    rows = {row.sop_instance_uid: row for row in Instance.objects.all()}
    missing = [uid for uid in acknowledged if uid not in rows]
    assert not missing, f"acknowledged with 0x0000 but not in the archive: {missing}"
    for row in rows.values():
        path = storage.absolute_path(row.path)
        assert path.is_file(), f"{row.sop_instance_uid} has no file"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256


def other_backends() -> list[int]:
    """PostgreSQL backend pids on the test database other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        return [row[0] for row in cursor.fetchall()]


def terminate_backends(pids: list[int]) -> None:
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children_of(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a child process and everything under it (a failed test leaves no orphans)."""
    if proc.poll() is not None:
        return
    pids = descendants(proc.pid)
    proc.kill()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
