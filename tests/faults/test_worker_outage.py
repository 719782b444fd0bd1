"""export_worker rides out a database outage: its backends terminated and new connections
refused for seconds, it stays up and delivers a job queued meanwhile (real PostgreSQL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import CTImageStorage

from archive.services import instance_store
from dicom_net.exports import export_enqueue
from dicom_net.models import ExportJob
from dicom_net.services import node_add
from tests.conftest import REPO, free_port
from tests.faults.procs import needs_postgresql, other_backends, terminate_backends, wait_for
from tests.helpers import child_env, make_ct, to_bytes

pytestmark = [needs_postgresql, pytest.mark.django_db(transaction=True)]


class Peer:
    """A pynetdicom Storage SCP in this process; notes each SOP Instance UID it receives."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.port = free_port()
        ae = AE(ae_title="OUTAGE_PEER")
        ae.add_supported_context(CTImageStorage)
        self.ae = ae

    def on_store(self, event: Event) -> int:
        ds: Dataset = event.dataset
        self.received.append(str(ds.SOPInstanceUID))
        return 0x0000

    def __enter__(self) -> Peer:
        self.ae.start_server(("127.0.0.1", self.port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, self.on_store)])
        return self

    def __exit__(self, *exc: object) -> None:
        self.ae.shutdown()


class Output:
    """A child's combined output, read by a thread as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def __str__(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def refusing_connections() -> Iterator[object]:
    """Call it to refuse new connections to the test database; restored at teardown."""
    name = connection.settings_dict["NAME"]
    quoted = connection.ops.quote_name(name)
    state = {"refusing": False}

    def refuse(on: bool) -> None:
        # From the maintenance database: PostgreSQL refuses this for the current one.
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS {'false' if on else 'true'}")
        state["refusing"] = on

    try:
        yield refuse
    finally:
        if state["refusing"]:
            refuse(False)


def test_the_worker_survives_a_database_outage_and_delivers_afterwards(
        data_dir: Path, refusing_connections) -> None:  # type: ignore[no-untyped-def]
    with Peer() as peer:
        node = node_add(name="outage-peer", ae_title="OUTAGE_PEER", host="127.0.0.1",
                        port=peer.port, receives_exports=True, can_store=False,
                        can_query=False)
        first = instance_store(data=to_bytes(make_ct(patient_id="OUT-1"))).instance
        export_enqueue(instance=first, nodes=[node])
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "export_worker"],
            env=child_env(data_dir, RV_EXPORT_POLL="0.1"), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        out = Output(proc)
        try:
            wait_for(lambda: peer.received == [first.sop_instance_uid], "the first export")
            # The outage: no new connections, and the worker's are cut.
            refusing_connections(True)
            wait_for(other_backends, "the worker's backend")
            terminate_backends(other_backends())
            wait_for(lambda: out.count("database unavailable") >= 3 or proc.poll() is not None,
                     "the worker to notice the outage and retry", timeout=60)
            # A job queued while the database refuses the worker.
            second = instance_store(data=to_bytes(make_ct(patient_id="OUT-2"))).instance
            (job,) = export_enqueue(instance=second, nodes=[node])
            assert proc.poll() is None, f"the worker exited:\n{out}"
            refusing_connections(False)
            wait_for(lambda: second.sop_instance_uid in peer.received,
                     f"the export queued during the outage:\n{out}", timeout=60)
            wait_for(lambda: ExportJob.objects.get(pk=job.pk).status == ExportJob.Status.DONE,
                     "the job to be recorded DONE")
            assert proc.poll() is None, f"the worker exited:\n{out}"
            # Where the outage struck decides who told of it: between jobs the worker's loop
            # ("export worker ...: database unavailable", then "database back", written
            # after the job's outcome is committed: it may reach us a moment later); while
            # recording an export's outcome, export_process ("cannot record the outcome").
            if any("export worker " in line and ": database unavailable (" in line
                   for line in list(out.lines)):
                wait_for(lambda: out.count("database back") >= 1, f"'database back':\n{out}")
            else:
                assert out.count("cannot record the outcome, database unavailable") >= 1
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, str(out)
            assert peer.received == [first.sop_instance_uid, second.sop_instance_uid]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
