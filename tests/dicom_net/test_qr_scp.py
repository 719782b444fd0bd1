"""Query/Retrieve statuses checked precisely with pynetdicom as the peer: partial C-MOVE
failures (0xB000), roles (0x0124), bad identifiers (0xA900), and a destination that accepts
only another transfer syntax."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from archive.models import Patient
from dicom_net.services import node_add
from tests.conftest import free_port
from tests.helpers import qr_identifier, seed_qr_archive


def _assoc(addr: tuple[str, int], context: str, calling: str = "QRSCU"):  # type: ignore[no-untyped-def]
    ae = AE(ae_title=calling)
    ae.add_requested_context(context)
    assoc = ae.associate(addr[0], addr[1], ae_title="RV_SCP")
    assert assoc.is_established
    return assoc


def _destination(handler, syntaxes=None):  # type: ignore[no-untyped-def]
    ae = AE(ae_title="DEST")
    if syntaxes:
        ae.add_supported_context(CTImageStorage, syntaxes)
    else:
        ae.add_supported_context(CTImageStorage)
    port = free_port()
    ae.start_server(("127.0.0.1", port), block=False,
                    evt_handlers=[(evt.EVT_C_STORE, handler)])
    node_add(name="dest", ae_title="DEST", host="127.0.0.1", port=port, move_destination=True)
    return ae


def _move(addr: tuple[str, int], identifier: Dataset, calling: str = "QRSCU") -> list:  # type: ignore[type-arg]
    assoc = _assoc(addr, StudyRootQueryRetrieveInformationModelMove, calling)
    try:
        return list(assoc.send_c_move(identifier, "DEST",
                                      StudyRootQueryRetrieveInformationModelMove))
    finally:
        assoc.release()


def test_move_with_a_refused_sub_operation_ends_in_warning(live_scp: tuple[str, int]) -> None:
    uids = seed_qr_archive()
    refused_uid = uids["sop"]["ct-2"]  # type: ignore[index]
    got: list[str] = []

    def store(event):  # type: ignore[no-untyped-def]
        uid = event.request.AffectedSOPInstanceUID
        got.append(uid)
        return 0xA700 if uid == refused_uid else 0x0000

    dest = _destination(store)
    try:
        responses = _move(live_scp, qr_identifier("STUDY", StudyInstanceUID=uids["study"]["A"]))  # type: ignore[index]
    finally:
        dest.shutdown()
    final, identifier = responses[-1]
    assert [r[0].Status for r in responses[:-1]] == [0xFF00] * 3
    assert final.Status == 0xB000
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (2, 1)
    assert identifier.FailedSOPInstanceUIDList == refused_uid
    assert len(got) == 3


def test_destination_taking_only_implicit_vr_gets_the_object_converted(
        live_scp: tuple[str, int]) -> None:
    uids = seed_qr_archive()
    got: list[Dataset] = []

    def store(event):  # type: ignore[no-untyped-def]
        got.append(event.dataset)
        return 0x0000

    dest = _destination(store, [ImplicitVRLittleEndian])
    try:
        responses = _move(live_scp, qr_identifier("IMAGE", StudyInstanceUID=uids["study"]["B"],  # type: ignore[index]
                                                SeriesInstanceUID=uids["series"]["ct2"],  # type: ignore[index]
                                                SOPInstanceUID=uids["sop"]["ct2-1"]))  # type: ignore[index]
    finally:
        dest.shutdown()
    assert responses[-1][0].Status == 0x0000
    (ds,) = got
    assert ds.SOPInstanceUID == uids["sop"]["ct2-1"]  # type: ignore[index]
    assert ds.PatientName == "Smith^John"


def test_nodes_without_the_query_role_are_refused(live_scp: tuple[str, int],
                                                  settings) -> None:  # type: ignore[no-untyped-def]
    uids = seed_qr_archive()
    settings.RV_ACCEPT_UNKNOWN_AE = False
    node_add(name="modality", ae_title="QRSCU", host="127.0.0.1", port=104, can_query=False)
    dest = _destination(lambda event: 0x0000)
    try:
        assoc = _assoc(live_scp, StudyRootQueryRetrieveInformationModelFind)
        ((status, _),) = list(assoc.send_c_find(qr_identifier("STUDY", StudyInstanceUID=""),
                                                StudyRootQueryRetrieveInformationModelFind))
        assoc.release()
        assert status.Status == 0x0124
        assert "may not query" in status.ErrorComment
        final = _move(live_scp, qr_identifier("STUDY", StudyInstanceUID=uids["study"]["A"]))[-1]  # type: ignore[index]
        assert final[0].Status == 0x0124
        assoc = _assoc(live_scp, PatientRootQueryRetrieveInformationModelGet)
        responses = list(assoc.send_c_get(qr_identifier("PATIENT", PatientID="PQR1"),
                                          PatientRootQueryRetrieveInformationModelGet))
        assoc.release()
        assert responses[-1][0].Status == 0x0124
    finally:
        dest.shutdown()


def test_bad_identifiers_get_a900_with_a_comment(live_scp: tuple[str, int]) -> None:
    assoc = _assoc(live_scp, StudyRootQueryRetrieveInformationModelFind)
    try:
        for identifier, words in [
            (qr_identifier("PATIENT", PatientID=""), "no PATIENT level"),
            (qr_identifier("STUDY", StudyDate="2026-01-01"), "not a DICOM date"),
            (qr_identifier("SERIES", Modality=["CT", "MR"]), "list matching"),
        ]:
            ((status, _),) = list(assoc.send_c_find(
                identifier, StudyRootQueryRetrieveInformationModelFind))
            assert status.Status == 0xA900
            assert words in status.ErrorComment
    finally:
        assoc.release()
    final = _move(live_scp, qr_identifier("STUDY", StudyInstanceUID=""))
    assert final == [] or final[-1][0].Status in (0xA801, 0xA900)


def test_c_cancel_stops_a_long_find(live_scp: tuple[str, int]) -> None:
    find_model = PatientRootQueryRetrieveInformationModelFind
    Patient.objects.bulk_create(Patient(patient_id=f"C{i:05d}", patient_name=f"Many^{i}")
                                for i in range(20000))  # long enough under load
    assoc = _assoc(live_scp, find_model)
    try:
        responses = assoc.send_c_find(qr_identifier("PATIENT", PatientID=""), find_model, msg_id=7)
        statuses = []
        for status, _ in responses:
            statuses.append(status.Status)
            if len(statuses) == 1:
                assoc.send_c_cancel(7, query_model=find_model)
    finally:
        assoc.release()
    assert statuses[-1] == 0xFE00
    assert len(statuses) < 20000
