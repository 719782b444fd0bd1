"""The Storage and Verification SCP over real associations, pynetdicom as the peer."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import CTImageStorage, RTPlanStorage, Verification

from archive import storage
from archive.dicomio import ensure_part10
from archive.models import Instance
from dicom_net.models import AssociationLog
from dicom_net.services import node_add
from tests.helpers import dataset_bytes, eventually, make_ct, sample, to_bytes


def _assoc(addr: tuple[str, int], *contexts: str, calling: str = "TESTSCU",  # type: ignore[no-untyped-def]
           syntaxes: list[str] | None = None):
    ae = AE(ae_title=calling)
    for ctx in contexts or (CTImageStorage,):
        ae.add_requested_context(ctx, syntaxes or [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(addr[0], addr[1], ae_title="RV_SCP")
    return assoc


def _send_file(addr: tuple[str, int], path: Path, sop_class: str) -> tuple[int, str]:
    # Offer only the file's own transfer syntax, so nothing is transcoded on the way.
    syntax = dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    assoc = _assoc(addr, sop_class, syntaxes=[syntax])
    assert assoc.is_established
    try:
        status = assoc.send_c_store(path)  # a path: pynetdicom sends the bytes as they are
    finally:
        assoc.release()
    return int(status.Status), str(status.get("ErrorComment", ""))


def test_echo(live_scp: tuple[str, int]) -> None:
    assoc = _assoc(live_scp, Verification)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


@pytest.mark.parametrize(("name", "sop_class"), [
    ("rtplan.dcm", RTPlanStorage), ("CT_small.dcm", CTImageStorage),
])
def test_stored_file_is_the_sent_data_set_byte_for_byte(
        live_scp: tuple[str, int], tmp_path: Path, name: str, sop_class: str) -> None:
    path = tmp_path / name
    path.write_bytes(ensure_part10(sample(name).read_bytes()))
    assert _send_file(live_scp, path, sop_class) == (0x0000, "")
    inst = Instance.objects.select_related("series__study__patient").get()
    stored = storage.absolute_path(inst.path).read_bytes()
    assert dataset_bytes(stored) == dataset_bytes(path.read_bytes())
    assert inst.calling_ae == "TESTSCU"
    assert inst.sop_class_uid == sop_class


def test_index_rows_from_a_network_store(live_scp: tuple[str, int], tmp_path: Path) -> None:
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(make_ct(patient_id="NET1", patient_name="Net^Work")))
    assert _send_file(live_scp, path, CTImageStorage)[0] == 0
    inst = Instance.objects.select_related("series__study__patient").get()
    assert inst.series.study.patient.patient_name == "Net^Work"
    assert (inst.series.series_number, inst.instance_number) == (3, 7)


def test_resend_is_success_and_stores_nothing_new(live_scp: tuple[str, int],
                                                 tmp_path: Path) -> None:
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(make_ct()))
    assert _send_file(live_scp, path, CTImageStorage)[0] == 0
    assert _send_file(live_scp, path, CTImageStorage)[0] == 0
    assert Instance.objects.count() == 1

    def logged() -> None:
        logs = list(AssociationLog.objects.order_by("started_at"))
        assert [(log.stored, log.duplicates, log.outcome) for log in logs] == [
            (1, 0, "released"), (0, 1, "released")]

    eventually(logged)


def _send_raw(addr: tuple[str, int], part10: bytes, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Send a file's data set bytes exactly as they are, naming the SOP class and instance
    from its file meta (pynetdicom's chunked mode: no decoding, no checks on the way)."""
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)
    path = tmp_path / "raw.dcm"
    path.write_bytes(part10)
    return _send_file(addr, path, str(dcmread(path, stop_before_pixels=True)
                                       .file_meta.MediaStorageSOPClassUID))


def test_truncated_file_gets_cannot_understand(live_scp: tuple[str, int], data_dir: Path,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    raw = sample("rtplan_truncated.dcm").read_bytes()
    status, comment = _send_raw(live_scp, raw, tmp_path, monkeypatch)
    assert 0xC000 <= status <= 0xCFFF
    assert "truncated" in comment
    assert Instance.objects.count() == 0
    assert not [p for p in (data_dir / "dicom").rglob("*.dcm")]

    def logged() -> None:
        log = AssociationLog.objects.get()
        assert log.failed == 1 and "truncated" in log.failures[0]["comment"]

    eventually(logged)


def test_sop_class_not_matching_its_context(live_scp: tuple[str, int], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ct = make_ct()
    ct.SOPClassUID = RTPlanStorage  # the data set says RT Plan, offered as a CT Image
    buf = io.BytesIO()
    ct.preamble = b"\x00" * 128
    ct.save_as(buf, enforce_file_format=False)  # keeps the file meta's CT Image class
    assert dcmread(io.BytesIO(buf.getvalue())).file_meta.MediaStorageSOPClassUID == \
        CTImageStorage
    status, comment = _send_raw(live_scp, buf.getvalue(), tmp_path, monkeypatch)
    assert status == 0xA900
    assert "SOP Class mismatch" in comment
    assert Instance.objects.count() == 0


def test_missing_sop_instance_uid(live_scp: tuple[str, int], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ct = make_ct()
    del ct.SOPInstanceUID  # the file meta still names one, so it can be sent
    status, comment = _send_raw(live_scp, to_bytes(ct), tmp_path, monkeypatch)
    assert status == 0xA900 and "SOP Instance UID" in comment
    assert Instance.objects.count() == 0


def test_unwritable_storage_is_a700_with_no_row_and_no_file(
        live_scp: tuple[str, int], settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    settings.RV_DATA_DIR = blocker
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(make_ct()))
    status, comment = _send_file(live_scp, path, CTImageStorage)
    assert status == 0xA700 and "cannot write" in comment
    assert Instance.objects.count() == 0
    assert blocker.read_text() == "x"


def test_different_object_under_held_uid_refused_original_kept(
        live_scp: tuple[str, int], tmp_path: Path) -> None:
    uid = generate_uid()
    first, second = tmp_path / "a.dcm", tmp_path / "b.dcm"
    first.write_bytes(to_bytes(make_ct(sop_uid=uid, patient_name="Kept^Original")))
    second.write_bytes(to_bytes(make_ct(sop_uid=uid, patient_name="Other^Content")))
    assert _send_file(live_scp, first, CTImageStorage)[0] == 0
    status, comment = _send_file(live_scp, second, CTImageStorage)
    assert status == 0x0111 and "original kept" in comment
    inst = Instance.objects.get()
    kept = storage.absolute_path(inst.path).read_bytes()
    assert dataset_bytes(kept) == dataset_bytes(first.read_bytes())


def test_unknown_calling_ae_is_rejected_when_not_allowed(
        live_scp: tuple[str, int], settings) -> None:  # type: ignore[no-untyped-def]
    settings.RV_ACCEPT_UNKNOWN_AE = False
    assoc = _assoc(live_scp, Verification, calling="STRANGER")
    assert assoc.is_rejected
    log = eventually(lambda: AssociationLog.objects.get())
    assert (log.calling_ae, log.outcome) == ("STRANGER", "rejected")


def test_registered_node_is_accepted_and_roles_are_enforced(
        live_scp: tuple[str, int], settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.RV_ACCEPT_UNKNOWN_AE = False
    node_add(name="tps", ae_title="TPS", host="127.0.0.1", port=104)
    node_add(name="viewer", ae_title="VIEWER", host="127.0.0.1", port=105, can_store=False)
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(make_ct()))
    assoc = _assoc(live_scp, CTImageStorage, calling="TPS")
    assert assoc.is_established
    assert assoc.send_c_store(path).Status == 0
    assoc.release()
    assoc = _assoc(live_scp, CTImageStorage, calling="VIEWER")
    assert assoc.is_established  # it may query, but not store
    rsp = assoc.send_c_store(path)
    assoc.release()
    assert rsp.Status == 0x0124 and "not registered to send" in rsp.ErrorComment
    assert Instance.objects.count() == 1


def test_unsupported_sop_class_gets_no_context(live_scp: tuple[str, int]) -> None:
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context("1.2.246.352.70.1.70")  # a vendor-private plan class
    assoc = ae.associate(*live_scp, ae_title="RV_SCP")
    assert not assoc.is_established or not assoc.accepted_contexts
    if assoc.is_established:
        assoc.release()
