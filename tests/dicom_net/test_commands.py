"""The management commands of CONTRACT.md: dicom_node, import_dicom, runscp."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from archive.dicomio import ensure_part10
from archive.models import Instance
from dicom_net.models import Node
from tests.conftest import REPO, free_port
from tests.helpers import child_env, make_ct, sample, to_bytes


def _call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_dicom_node_add_list_remove() -> None:
    out = _call("dicom_node", "add", "tps", "--ae", "ECLIPSE", "--host", "10.0.0.5",
                "--port", "104", "--roles", "store,query,exports")
    assert "ECLIPSE" in out and "exports" in out
    node = Node.objects.get(name="tps")
    assert (node.can_store, node.can_query, node.receives_exports, node.move_destination) == (
        True, True, True, False)
    listing = _call("dicom_node", "list")
    assert "tps" in listing and "10.0.0.5:104" in listing
    _call("dicom_node", "remove", "tps")
    assert not Node.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), [
    (["--ae", "THIS_AE_TITLE_IS_TOO_LONG", "--host", "h", "--port", "104"], "AE title"),
    (["--ae", "OK", "--host", "h", "--port", "70000"], "65535"),
    (["--ae", "OK", "--host", "h", "--port", "104", "--roles", "store,fly"], "unknown role"),
])
def test_dicom_node_add_refuses_bad_input(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _call("dicom_node", "add", "bad", *args)
    assert not Node.objects.exists()


@pytest.mark.django_db
def test_dicom_node_add_twice_and_remove_unknown() -> None:
    _call("dicom_node", "add", "a", "--ae", "A", "--host", "h", "--port", "1")
    with pytest.raises(CommandError, match="already exists"):
        _call("dicom_node", "add", "a", "--ae", "B", "--host", "h", "--port", "1")
    with pytest.raises(CommandError, match="no node named"):
        _call("dicom_node", "remove", "nobody")


def test_dicom_node_echo(live_scp: tuple[str, int]) -> None:
    _call("dicom_node", "add", "self", "--ae", "RV_SCP", "--host", live_scp[0],
          "--port", str(live_scp[1]))
    assert "answered C-ECHO" in _call("dicom_node", "echo", "self")
    _call("dicom_node", "add", "down", "--ae", "X", "--host", "127.0.0.1",
          "--port", str(free_port()))
    with pytest.raises(CommandError, match="no association"):
        _call("dicom_node", "echo", "down")


@pytest.mark.django_db
def test_import_dicom_summary(tmp_path: Path) -> None:
    good = tmp_path / "in" / "nested"
    good.mkdir(parents=True)
    (good / "plan.dcm").write_bytes(ensure_part10(sample("rtplan.dcm").read_bytes()))
    (good / "struct.dcm").write_bytes(sample("rtstruct.dcm").read_bytes())  # no preamble
    (tmp_path / "in" / "cut.dcm").write_bytes(sample("rtplan_truncated.dcm").read_bytes())
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    out = StringIO()
    with pytest.raises(CommandError, match="2 file"):
        call_command("import_dicom", str(tmp_path / "in"), "--no-progress", stdout=out,
                     stderr=StringIO())
    text = out.getvalue()
    assert "stored: 2, already present: 0, rejected: 2" in text
    assert "cut.dcm: Data set truncated" in text
    assert "notes.txt: not a DICOM file" in text
    assert Instance.objects.count() == 2
    # again: nothing new
    out = StringIO()
    call_command("import_dicom", str(good), "--no-progress", stdout=out, stderr=StringIO())
    assert "stored: 0, already present: 2, rejected: 0" in out.getvalue()


@pytest.mark.django_db
def test_import_dicom_refuses_sop_classes_we_do_not_store(tmp_path: Path) -> None:
    ct = make_ct()
    ct.SOPClassUID = ct.file_meta.MediaStorageSOPClassUID = "1.2.246.352.70.1.70"  # type: ignore[assignment]
    path = tmp_path / "private.dcm"
    path.write_bytes(to_bytes(ct))
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("import_dicom", str(path), "--no-progress", stdout=out, stderr=StringIO())
    assert "is not one this archive stores" in out.getvalue()


@pytest.mark.django_db
def test_import_dicom_missing_path() -> None:
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_dicom", "/nonexistent/path", stdout=StringIO())


def _wait_for_echo(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ae = AE(ae_title="PROBE")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP")
        if assoc.is_established:
            assoc.release()
            return
        time.sleep(0.2)
    raise AssertionError(f"runscp did not answer on port {port}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("processes", [1, 2])
def test_runscp_stores_and_stops_cleanly_on_sigterm(data_dir: Path, processes: int) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "runscp", "--port", str(port),
         "--processes", str(processes)],
        env=child_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_echo(port)
        ae = AE(ae_title="SENDER")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP")
        assert assoc.is_established
        assert assoc.send_c_store(make_ct()).Status == 0
        # SIGTERM while the association is still open: it must be let finish.
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert assoc.is_established
        assert assoc.send_c_store(make_ct()).Status == 0
        assoc.release()
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stopped" in output
    assert Instance.objects.count() == 2
    ae = AE(ae_title="LATE")
    ae.add_requested_context(Verification)
    assert not ae.associate("127.0.0.1", port, ae_title="RV_SCP").is_established
