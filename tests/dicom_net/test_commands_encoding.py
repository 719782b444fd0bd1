"""dicom_net.commands: command sets written directly are the bytes pydicom writes."""

from __future__ import annotations

from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pynetdicom import dimse_messages
from pynetdicom.dimse_messages import (
    C_ECHO_RQ,
    C_ECHO_RSP,
    C_FIND_RSP,
    C_MOVE_RSP,
    C_STORE_RQ,
    C_STORE_RSP,
    N_ACTION_RSP,
    N_EVENT_REPORT_RQ,
)
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_MOVE, C_STORE, N_ACTION, N_EVENT_REPORT
from pynetdicom.dsutils import encode as pydicom_encode

from dicom_net import commands

UIDS = st.from_regex(r"[1-9][0-9]{0,5}(\.[1-9][0-9]{0,8}){1,6}", fullmatch=True)
US = st.integers(0, 0xFFFF)


def _command(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


@settings(max_examples=200, deadline=None)
@given(sop_class=UIDS, sop_instance=UIDS, message_id=US, status=US,
       data_set_type=st.sampled_from([0x0101, 0x0000, 0x0102]), length=st.integers(0, 2**32 - 1))
def test_a_command_set_is_the_bytes_pydicom_writes(
        sop_class: str, sop_instance: str, message_id: int, status: int, data_set_type: int,
        length: int) -> None:
    ds = _command(CommandGroupLength=length, AffectedSOPClassUID=sop_class,
                  CommandField=0x8001, MessageIDBeingRespondedTo=message_id,
                  CommandDataSetType=data_set_type, Status=status,
                  AffectedSOPInstanceUID=sop_instance)
    fast = commands.encode_command(ds)
    assert fast is not None
    assert fast == pydicom_encode(ds, True, True)


@pytest.mark.parametrize("ds", [
    _command(Status=0xC000, ErrorComment="not this one"),      # LO: pydicom's
    _command(MoveDestination="STORE_SCP"),                      # AE: pydicom's
    _command(AffectedSOPClassUID=""),                           # empty UI
    _command(MessageID=None),                                   # no value
    _command(PatientID="1234"),                                 # not a command element
    _command(AffectedSOPClassUID="1.2.é"),                      # not ASCII
], ids=["error comment", "AE title", "empty UID", "no value", "group 0010", "non-ASCII UID"])
def test_anything_else_goes_to_pydicom_with_the_same_result(ds: Dataset) -> None:
    assert commands.encode_command(ds) is None
    assert commands.encode(ds, True, True) == pydicom_encode(ds, True, True)


def test_a_data_set_in_explicit_vr_is_pydicoms() -> None:
    ds = _command(MessageID=3)
    assert commands.encode(ds, False, True) == pydicom_encode(ds, False, True)


def _primitive(kind: type, **values: object) -> object:
    """A DIMSE primitive of `kind` with these parameters set, in this order."""
    primitive = kind()
    for name, value in values.items():
        setattr(primitive, name, value)
    return primitive


CT = "1.2.840.10008.5.1.4.1.1.2"


def _messages() -> list[tuple[str, object]]:
    return [
        ("C-STORE-RQ", (C_STORE_RQ, _primitive(
            C_STORE, MessageID=12, AffectedSOPClassUID=CT,
            AffectedSOPInstanceUID="1.2.3.4.5.6.7", Priority=2,
            DataSet=BytesIO(b"\x08\x00\x16\x00\x02\x00\x00\x001\x00")))),
        ("C-STORE-RSP", (C_STORE_RSP, _primitive(
            C_STORE, MessageIDBeingRespondedTo=12, AffectedSOPClassUID=CT,
            AffectedSOPInstanceUID="1.2.3.4.5.6.7", Status=0x0000))),
        ("C-STORE-RSP refused", (C_STORE_RSP, _primitive(
            C_STORE, MessageIDBeingRespondedTo=13, AffectedSOPClassUID=CT,
            AffectedSOPInstanceUID="1.2.3.4.5.6.8", Status=0xC210,
            ErrorComment="cannot understand the data set"))),
        ("C-ECHO-RQ", (C_ECHO_RQ, _primitive(
            C_ECHO, MessageID=1, AffectedSOPClassUID="1.2.840.10008.1.1"))),
        ("C-ECHO-RSP", (C_ECHO_RSP, _primitive(
            C_ECHO, MessageIDBeingRespondedTo=1, AffectedSOPClassUID="1.2.840.10008.1.1",
            Status=0x0000))),
        ("C-FIND-RSP", (C_FIND_RSP, _primitive(
            C_FIND, MessageIDBeingRespondedTo=5,
            AffectedSOPClassUID="1.2.840.10008.5.1.4.1.2.2.1", Status=0xFF00,
            Identifier=BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")))),
        ("C-MOVE-RSP", (C_MOVE_RSP, _primitive(
            C_MOVE, MessageIDBeingRespondedTo=6,
            AffectedSOPClassUID="1.2.840.10008.5.1.4.1.2.2.2", Status=0xFF00,
            NumberOfRemainingSuboperations=3, NumberOfCompletedSuboperations=1,
            NumberOfFailedSuboperations=0, NumberOfWarningSuboperations=0))),
        ("N-ACTION-RSP", (N_ACTION_RSP, _primitive(
            N_ACTION, MessageIDBeingRespondedTo=9, AffectedSOPClassUID="1.2.840.10008.1.20.1",
            AffectedSOPInstanceUID="1.2.840.10008.1.20.1.1", ActionTypeID=1,
            Status=0x0000))),
        ("N-EVENT-REPORT-RQ", (N_EVENT_REPORT_RQ, _primitive(
            N_EVENT_REPORT, MessageID=10, AffectedSOPClassUID="1.2.840.10008.5.1.4.34.6.4",
            AffectedSOPInstanceUID="1.2.3.4", EventTypeID=1,
            EventInformation=BytesIO(b"\x00\x00\x00\x00")))),
    ]


@pytest.mark.parametrize("message_class,primitive", [m for _, m in _messages()],
                         ids=[name for name, _ in _messages()])
def test_pynetdicoms_messages_encode_as_before(message_class, primitive,  # type: ignore[no-untyped-def]
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each message pynetdicom would send: the same P-DATA, our encoder or pydicom's."""
    def fragments() -> list[tuple[int, bytes]]:
        message = message_class()
        message.primitive_to_message(primitive)
        return [item for p in message.encode_msg(1, 16384)
                for item in p.presentation_data_value_list]

    message = message_class()
    message.primitive_to_message(primitive)
    written_here = commands.encode_command(message.command_set) is not None
    assert written_here == (getattr(primitive, "ErrorComment", None) is None)
    monkeypatch.setattr(dimse_messages, "encode", pydicom_encode)
    before = fragments()
    monkeypatch.setattr(dimse_messages, "encode", commands.encode)
    assert fragments() == before
