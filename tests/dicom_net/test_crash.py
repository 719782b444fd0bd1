"""kill -9 of the SCP in the middle of a transfer (DESIGN.md: durable before success).

`manage.py runscp` runs as a child process on the test database; a pynetdicom sender
streams CT objects to it and notes every 0x0000; the child is killed with SIGKILL while
objects are in flight, several times at different moments. Afterwards:

- every Instance row has its file, with the size and SHA-256 the row records;
- every object the sender saw acknowledged with 0x0000 has its row;
- no row points into the temporary folder, and the `.part` files a killed writer leaves
  there hold nothing that is indexed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from archive import storage
from archive.models import Instance
from tests.conftest import free_port
from tests.dicom_net.runscp_process import start_runscp
from tests.factories import ct_image

KILLS = 4
OBJECTS_PER_RUN = 400  # more than a run can send before its kill


class _Sender(threading.Thread):
    """Sends objects on one association until it breaks; notes what was acknowledged."""

    def __init__(self, port: int, run: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.run_no = run
        self.acknowledged: list[str] = []
        self.sent = threading.Event()  # set once the first object is acknowledged
        self.study, self.series = generate_uid(), generate_uid()

    def run(self) -> None:
        ae = AE(ae_title="CRASH_SCU")
        ae.add_requested_context(CTImageStorage)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
        assoc = ae.associate("127.0.0.1", self.port, ae_title="RV_SCP")
        if not assoc.is_established:
            return
        try:
            for i in range(OBJECTS_PER_RUN):
                ds = ct_image(rows=256, cols=256, study_instance_uid=self.study,
                              series_instance_uid=self.series, instance_number=i + 1,
                              patient_id=f"CRASH-{self.run_no}", seed=i)
                try:
                    status = assoc.send_c_store(ds)
                except Exception:
                    return
                if not assoc.is_established or status is None or "Status" not in status:
                    return
                if status.Status == 0x0000:
                    self.acknowledged.append(str(ds.SOPInstanceUID))
                    self.sent.set()
        finally:
            if assoc.is_established:
                assoc.abort()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.django_db(transaction=True)
def test_kill_9_mid_transfer_leaves_no_row_without_its_file(data_dir: Path,
                                                             tmp_path: Path) -> None:
    acknowledged: list[str] = []
    log_path = tmp_path / "runscp.log"
    for run in range(KILLS):
        port = free_port()
        proc = start_runscp(port, data_dir, log_path)
        sender = _Sender(port, run)
        try:
            sender.start()
            assert sender.sent.wait(60), f"nothing was acknowledged:\n{log_path.read_text()}"
            # Kill at a different moment in the object stream each run: the object in flight
            # may be arriving, being written, being fsynced or being indexed.
            time.sleep(0.05 + 0.037 * run)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            sender.join(timeout=60)
            assert not sender.is_alive(), "the sender did not notice the SCP died"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        acknowledged += sender.acknowledged
        assert len(sender.acknowledged) < OBJECTS_PER_RUN, "the kill came after the transfer"

    rows = list(Instance.objects.all())
    assert rows, "nothing was stored"
    for row in rows:
        path = storage.absolute_path(row.path)
        assert path.is_file(), f"row {row.sop_instance_uid} has no file at {path}"
        assert path.stat().st_size == row.size, f"{path} is not the size its row records"
        assert _sha256(path) == row.sha256, f"{path} does not hold the bytes its row records"
        assert ".tmp" not in Path(row.path).parts

    indexed = {row.sop_instance_uid for row in rows}
    missing = [uid for uid in acknowledged if uid not in indexed]
    assert not missing, f"acknowledged with 0x0000 but not indexed: {missing}"

    hashes = {row.sha256 for row in rows}
    for part in (storage.root() / ".tmp").glob("*.part"):
        assert _sha256(part) not in hashes, f"{part} is a leftover yet its bytes are indexed"
