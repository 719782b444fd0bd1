"""dicom_net.streaming: a C-STORE data set written and hashed as it arrives (issue 16),
over real associations to the SCP: the same bytes as before, and no file left behind."""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta, encode, encode_file_meta
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT
from pynetdicom.sop_class import CTImageStorage

from archive import storage
from archive.models import Instance
from dicom_net import streaming
from tests.factories import ct_image


def _associate(port: int) -> Association:
    ae = AE(ae_title="STREAM_SCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.maximum_pdu_size = 16384  # many fragments per object
    assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP")
    assert assoc.is_established
    return assoc


def _expected_file(ds: Dataset) -> bytes:
    """What the SCP stored before issue 16 (pynetdicom's event.encoded_dataset())."""
    meta = create_file_meta(sop_class_uid=ds.SOPClassUID, sop_instance_uid=ds.SOPInstanceUID,
                            transfer_syntax=ExplicitVRLittleEndian)
    dataset = encode(ds, False, True)
    assert dataset is not None
    return b"\0" * 128 + b"DICM" + encode_file_meta(meta) + dataset


def _store_message(ds: Dataset) -> C_STORE_RQ:
    """A C-STORE-RQ for ds (Explicit VR Little Endian), ready to be encoded by hand."""
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = ds.SOPClassUID
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 2
    request.DataSet = BytesIO(encode(ds, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    return message


def _parts() -> list[Path]:
    tmp = storage.root() / ".tmp"
    return sorted(tmp.glob("in-*.part")) if tmp.is_dir() else []


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("written_ahead", [True, False])
def test_the_stored_file_is_the_bytes_the_old_path_stored(
        live_scp: tuple[str, int], written_ahead: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if not written_ahead:
        monkeypatch.setattr(streaming, "_STREAMABLE", False)
    assoc = _associate(live_scp[1])
    try:
        ds = ct_image(rows=256, cols=256, patient_id="STREAM-1")
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert status.Status == 0x0000
    row = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    stored = storage.absolute_path(row.path).read_bytes()
    assert stored == _expected_file(ds)
    assert row.sha256 == hashlib.sha256(stored).hexdigest() and row.size == len(stored)
    assert _parts() == []


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_and_a_refused_object_leave_no_part_file(
        live_scp: tuple[str, int]) -> None:
    ds = ct_image(rows=128, cols=128, patient_id="STREAM-2")
    broken = ct_image(rows=128, cols=128, patient_id="STREAM-2")
    del broken.StudyInstanceUID  # refused: the index keys on it (0xA900)
    assoc = _associate(live_scp[1])
    try:
        statuses = [int(assoc.send_c_store(x).Status) for x in (ds, ds, broken)]
    finally:
        assoc.release()
    assert statuses == [0x0000, 0x0000, 0xA900]
    assert Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).count() == 1
    assert not Instance.objects.filter(sop_instance_uid=broken.SOPInstanceUID).exists()
    assert _parts() == []
    files = [p for p in storage.root().rglob("*.dcm") if ".tmp" not in p.parts]
    assert len(files) == 1


@pytest.mark.django_db(transaction=True)
def test_a_transfer_cut_short_by_an_abort_leaves_no_part_file(
        live_scp: tuple[str, int]) -> None:
    assoc = _associate(live_scp[1])
    ds = ct_image(rows=512, cols=512, patient_id="STREAM-3")
    message = _store_message(ds)
    context = assoc.accepted_contexts[0]
    fragments = list(message.encode_msg(context.context_id, 16384))
    assert len(fragments) > 10
    try:
        for fragment in fragments[:len(fragments) // 2]:  # half the data set, then nothing
            assoc.dul.send_pdu(fragment)
        _wait_for(lambda: bool(_parts()), "the SCP to write the data set ahead")
    finally:
        assoc.abort()
    _wait_for(lambda: not _parts(), "the part file of the aborted transfer to go")
    assert not Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()


def test_a_part_is_hashed_as_written_and_committed_or_discarded(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.RV_DATA_DIR = str(tmp_path)
    data = b"\x01" * 70_000 + b"tail"
    part = storage.Part.begin()
    part.append(data[:1000])
    part.append(memoryview(data)[1000:])
    assert part.size == len(data) and part.sha256 == hashlib.sha256(data).hexdigest()
    placed = storage.place(data, part.sha256, part)
    assert placed.created and storage.absolute_path(placed.rel).read_bytes() == data
    part.discard()  # once in place: nothing to do
    assert storage.absolute_path(placed.rel).exists() and _parts() == []
    other = storage.Part.begin()
    other.append(b"never stored")
    assert len(_parts()) == 1
    other.discard()
    assert _parts() == []
    with pytest.raises(OSError):
        other.append(b"after discard")


def test_a_part_synced_ahead_makes_its_folders_once(settings, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """sync_ahead (the receiving thread) makes the part's folders; place (the handler's
    thread) then only renames and fsyncs the leaf: the two threads used to make and fsync
    the same new folders at the same time (seen in an strace of the ingest benchmark)."""
    settings.RV_DATA_DIR = str(tmp_path)
    made: list[Path] = []
    synced_fsyncs: list[int] = []
    real_ensure, real_fsync = storage._ensure_dir, os.fsync

    def ensure_dir(path: Path) -> None:
        made.append(path)
        real_ensure(path)

    def fsync(fd: int) -> None:
        synced_fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(storage, "_ensure_dir", ensure_dir)
    monkeypatch.setattr(storage.os, "fsync", fsync)
    data = b"ahead" * 1000
    part = storage.Part.begin()
    part.append(data)
    made.clear()
    part.sync_ahead()
    leaf = storage.absolute_path(storage.relative_path(part.sha256)).parent
    assert made == [leaf] and leaf.is_dir()
    made.clear()
    synced_fsyncs.clear()
    placed = storage.place(data, part.sha256, part)
    assert storage.absolute_path(placed.rel).read_bytes() == data and _parts() == []
    assert made == []  # the folder is not made (nor its parents fsynced) a second time
    assert len(synced_fsyncs) == 1  # the leaf's, after the rename; the part's was ahead

    # The handler first (its place() while the receiving thread still fsyncs the part):
    # sync_ahead then only fsyncs.
    first = b"handler first" * 1000
    part = storage.Part.begin()
    part.append(first)
    leaf = storage.absolute_path(storage.relative_path(part.sha256)).parent
    made.clear()
    part.make_folder(leaf)
    part.sync_ahead()
    placed = storage.place(first, part.sha256, part)
    assert made == [leaf] and storage.absolute_path(placed.rel).read_bytes() == first

    # Without sync_ahead, the commit makes the folders itself.
    other = b"not ahead" * 1000
    part = storage.Part.begin()
    part.append(other)
    made.clear()
    placed = storage.place(other, part.sha256, part)
    assert made == [storage.absolute_path(placed.rel).parent]
    assert storage.absolute_path(placed.rel).read_bytes() == other and _parts() == []


def test_a_part_that_does_not_hold_the_bytes_is_not_used(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings.RV_DATA_DIR = str(tmp_path)
    data = b"the object"
    part = storage.Part.begin()
    part.append(b"something else")
    placed = storage.place(data, hashlib.sha256(data).hexdigest(), part)
    assert storage.absolute_path(placed.rel).read_bytes() == data
    part.discard()
    assert _parts() == []


@given(st.from_regex(r"\A[1-9][0-9]{0,20}(\.(0|[1-9][0-9]{0,10})){0,8}\Z"),
       st.sampled_from([ExplicitVRLittleEndian, "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.50",
                        "1.2.840.10008.1.2.1.99"]))
def test_the_file_meta_is_the_one_pydicom_writes(instance: str, syntax: str) -> None:
    for sop_class in (str(CTImageStorage), "1.2.840.10008.5.1.4.1.1.481.5"):
        expected = encode_file_meta(create_file_meta(
            sop_class_uid=UID(sop_class), sop_instance_uid=UID(instance),
            transfer_syntax=UID(syntax)))
        assert streaming.file_meta(sop_class, instance, syntax) == expected


def test_an_odd_uid_takes_pydicoms_own_writer() -> None:
    for odd in ("1.2.3 ", "1." + "2" * 70, "1.2.\u00e9"):
        expected = encode_file_meta(create_file_meta(
            sop_class_uid=UID(str(CTImageStorage)), sop_instance_uid=UID(odd),
            transfer_syntax=UID(ExplicitVRLittleEndian)))
        assert streaming.file_meta(str(CTImageStorage), odd, ExplicitVRLittleEndian) == expected


# --- P-DATA-TF PDUs taken straight into the buffer (StreamingDIMSE.take_data_pdu) ----------

def _pdvs(assoc: Association, ds: Dataset, pdv: int) -> tuple[int, list[tuple[int, bytes]]]:
    """A C-STORE request for ds as (context ID, PDV value) pairs, `pdv` bytes at most."""
    message = _store_message(ds)
    context_id = assoc.accepted_contexts[0].context_id
    assert context_id is not None
    pdvs = [item for p in message.encode_msg(context_id, pdv)
            for item in p.presentation_data_value_list]
    return context_id, pdvs


def _p_data(items: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack(">LB", len(value) + 1, cid) + value for cid, value in items)
    return struct.pack(">BBL", 0x04, 0, len(body)) + body


def _send_grouped(assoc: Association, groups: list[list[tuple[int, bytes]]]) -> str:
    """Send each group of PDVs as one P-DATA-TF, raw; the SCP's answer as a word."""
    sock = assoc.dul.socket.socket
    assoc._reactor_checkpoint.clear()  # the answer is ours to read, as send_c_store's is
    try:
        for group in groups:
            sock.sendall(_p_data(group))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (not assoc.is_established or assoc.dul.state_machine.current_state == "Sta1"
                    or isinstance(assoc.dul.peek_next_pdu(), (A_ABORT, A_P_ABORT))):
                return "aborted"
            _, answer = assoc.dimse.get_msg(block=False)
            if answer is not None:
                return f"0x{int(answer.Status):04X}"
            time.sleep(0.01)
    finally:
        assoc._reactor_checkpoint.set()
    pytest.fail("no answer from the SCP")


def _grouping(name: str, context_id: int, pdvs: list[tuple[int, bytes]]
              ) -> list[list[tuple[int, bytes]]]:
    command, data = pdvs[:1], pdvs[1:]
    middle, last = data[:-1], data[-1:]
    if name == "one per PDU":
        return [[item] for item in pdvs]
    if name == "three per PDU":
        return [command] + [data[k:k + 3] for k in range(0, len(data), 3)]
    if name == "command with the first fragments":
        return [command + data[:2]] + [[item] for item in data[2:]]
    if name == "a fragment on another context":
        other = (context_id + 2, middle[1][1])
        return [command] + [[item] for item in middle[:1]] + [[other]] + \
            [[item] for item in middle[2:]] + [last]
    if name == "an item too short":
        return [command] + [[item] for item in middle[:2]] + [[(context_id, b"")]] + \
            [[item] for item in middle[2:]] + [last]
    if name == "the data set ends early":  # the last fragment flagged too soon
        cut = (context_id, bytes([middle[2][1][0] | 2]) + middle[2][1][1:])
        return [command] + [[item] for item in middle[:2]] + [[cut]]
    raise AssertionError(name)


GROUPINGS = ["one per PDU", "three per PDU", "command with the first fragments",
             "a fragment on another context", "an item too short", "the data set ends early"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("grouping", GROUPINGS)
def test_pdus_taken_straight_end_as_pynetdicoms_path_does(
        live_scp: tuple[str, int], grouping: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """However the peer packs its fragments, well-formed or not, the answer and what is
    stored are the same whether middle fragments go straight to the buffer or through
    pynetdicom's decoding (the fast path off)."""
    taken = []
    real = streaming.StreamingDIMSE.take_data_pdu

    def counted(self, dul, body):  # type: ignore[no-untyped-def]
        took = real(self, dul, body)
        taken.append(took)
        return took

    outcomes = []
    for fast in (True, False):
        monkeypatch.setattr(streaming.StreamingDIMSE, "take_data_pdu",
                            counted if fast else (lambda self, dul, body: False))
        ds = ct_image(rows=128, cols=128, patient_id="STREAM-PDU")
        assoc = _associate(live_scp[1])
        try:
            context_id, pdvs = _pdvs(assoc, ds, 4096)
            assert len(pdvs) > 8
            answer = _send_grouped(assoc, _grouping(grouping, context_id, pdvs))
        finally:
            if assoc.is_established:
                assoc.release()
        row = Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).first()
        stored = storage.absolute_path(row.path).read_bytes() if row else None
        if grouping in ("one per PDU", "three per PDU", "command with the first fragments",
                        "a fragment on another context"):
            assert answer == "0x0000" and stored == _expected_file(ds)
        _wait_for(lambda: not _parts(), "no part file left")
        outcomes.append((answer, stored is not None, stored == _expected_file(ds)))
    assert outcomes[0] == outcomes[1]
    if grouping == "an item too short":  # pynetdicom fails on it: the association ends
        assert outcomes[0] == ("aborted", False, False)
    if grouping == "the data set ends early":  # whole by the flags, not by its bytes
        assert outcomes[0] == ("0xC210", False, False)
    if grouping in ("one per PDU", "three per PDU", "command with the first fragments"):
        assert any(taken)  # the PDUs did go straight to the buffer
