"""runscp --processes N: the processes share one listening socket, store what two senders
send at once, and stop cleanly on SIGTERM."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from archive.models import Instance
from tests.conftest import free_port
from tests.dicom_net.runscp_process import runscp, stop_runscp
from tests.factories import ct_image

PER_SENDER = 15


def _send_series(port: int, patient_id: str, acknowledged: list[str]) -> None:
    ae = AE(ae_title="TWO_SCU")
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP")
    assert assoc.is_established
    study, series = generate_uid(), generate_uid()
    try:
        for i in range(PER_SENDER):
            ds = ct_image(study_instance_uid=study, series_instance_uid=series,
                          patient_id=patient_id, instance_number=i + 1, seed=i)
            status = assoc.send_c_store(ds)
            if status is not None and status.get("Status") == 0x0000:
                acknowledged.append(str(ds.SOPInstanceUID))
    finally:
        assoc.release()


@pytest.mark.django_db(transaction=True)
def test_two_processes_store_two_senders_and_stop_on_sigterm(data_dir: Path,
                                                              tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "runscp.log"
    with runscp(port, data_dir, log_path, processes=2) as proc:
        acknowledged: list[str] = []
        senders = [threading.Thread(target=_send_series, args=(port, f"TWO-{k}", acknowledged))
                   for k in range(2)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=120)
        assert len(acknowledged) == 2 * PER_SENDER, log_path.read_text()
        assert set(Instance.objects.values_list("sop_instance_uid", flat=True)) == set(
            acknowledged)
        stop_runscp(proc, log_path)
