"""dicom_net.assoc_setup: the association set-up's PDUs with less work, the same bytes and
answers as pynetdicom's (issue 16)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config, build_role, evt
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_items import UserInformationItem
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import PresentationContext, StoragePresentationContexts
from pynetdicom.sop_class import CTImageStorage, RTPlanStorage, Verification

from dicom_net import assoc_setup

_AE_TITLE = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=1, max_size=16)
_UID = st.from_regex(r"\A1\.2(\.(0|[1-9][0-9]{0,8})){1,10}\Z").filter(lambda u: len(u) <= 64)
_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, "1.2.840.10008.1.2.4.50",
             "1.2.840.10008.1.2.5"]


@st.composite
def _accepting(draw: st.DrawFn) -> A_ASSOCIATE:
    """An accepting A-ASSOCIATE primitive as pynetdicom's ACSE makes one."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.called_ae_title = draw(_AE_TITLE)
    primitive.calling_ae_title = draw(_AE_TITLE)
    primitive.result = 0x00
    contexts = []
    for context_id in draw(st.lists(st.integers(0, 127), max_size=130, unique=True)):
        cx = PresentationContext()
        cx.context_id = 2 * context_id + 1
        cx.result = draw(st.sampled_from([0, 1, 2, 3, 4]))
        cx.add_transfer_syntax(draw(st.sampled_from(_SYNTAXES)))
        contexts.append(cx)
    primitive.presentation_context_definition_results_list = contexts
    user: list[Any] = []
    length = MaximumLengthNotification()
    length.maximum_length_received = draw(st.integers(0, 2**32 - 1))
    user.append(length)
    uid = ImplementationClassUIDNotification()
    uid.implementation_class_uid = draw(_UID)
    user.append(uid)
    if draw(st.booleans()):
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = draw(_AE_TITLE)
        user.append(version)
    if draw(st.booleans()):
        window = AsynchronousOperationsWindowNegotiation()
        window.maximum_number_operations_invoked = draw(st.integers(0, 65535))
        window.maximum_number_operations_performed = draw(st.integers(0, 65535))
        user.append(window)
    for sop_class in draw(st.lists(_UID, max_size=4, unique=True)):
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = sop_class
        role.scu_role = draw(st.sampled_from([None, False, True]))
        role.scp_role = draw(st.sampled_from([None, False, True]))
        user.append(role)
    primitive.user_information = user
    return primitive


@given(_accepting())
def test_the_acceptance_is_encoded_to_pynetdicoms_bytes(primitive: A_ASSOCIATE) -> None:
    try:
        expected = A_ASSOCIATE_AC(primitive).encode()
    except ValueError:  # a role item with neither role: left to pynetdicom, which refuses
        expected = None
    assert assoc_setup.encode_ac(primitive) == expected


def _simple_acceptance() -> A_ASSOCIATE:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.called_ae_title = "VERITY"
    primitive.calling_ae_title = "SENDER"
    primitive.result = 0x00
    cx = PresentationContext()
    cx.context_id = 1
    cx.result = 0
    cx.add_transfer_syntax(ImplicitVRLittleEndian)
    primitive.presentation_context_definition_results_list = [cx]
    length = MaximumLengthNotification()
    length.maximum_length_received = 16384
    uid = ImplementationClassUIDNotification()
    uid.implementation_class_uid = "1.2.826.0.1.3680043.9.7433.1.1"
    primitive.user_information = [length, uid]
    assert assoc_setup.encode_ac(primitive) == A_ASSOCIATE_AC(primitive).encode()
    return primitive


def test_a_user_identity_answer_is_left_to_pynetdicom() -> None:
    primitive = _simple_acceptance()
    identity = UserIdentityNegotiation()
    identity.server_response = b"welcome"
    primitive.user_information.append(identity)
    assert assoc_setup.encode_ac(primitive) is None
    assert A_ASSOCIATE_AC(primitive).encode()  # which encodes it, as before


def test_a_context_without_a_transfer_syntax_is_left_to_pynetdicom() -> None:
    primitive = _simple_acceptance()
    cx = PresentationContext()
    cx.context_id = 255
    cx.result = 0x03
    primitive.presentation_context_definition_results_list.append(cx)
    assert assoc_setup.encode_ac(primitive) is None


def _request(contexts: int, calling: str = "SENDER", password: bytes = b"") -> bytes:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = "VERITY"
    listed = []
    for k, cx in enumerate(StoragePresentationContexts[:contexts]):
        copy = PresentationContext()
        copy.context_id = 2 * k + 1
        copy.abstract_syntax = cx.abstract_syntax
        for syntax in cx.transfer_syntax:
            copy.add_transfer_syntax(syntax)
        listed.append(copy)
    primitive.presentation_context_definition_list = listed
    length = MaximumLengthNotification()
    length.maximum_length_received = 16384
    uid = ImplementationClassUIDNotification()
    uid.implementation_class_uid = "1.2.276.0.7230010.3.0.3.6.7"
    primitive.user_information = [length, uid]
    if password:
        identity = UserIdentityNegotiation()
        identity.user_identity_type = 2
        identity.primary_field = b"physicist"
        identity.secondary_field = password
        primitive.user_information.append(identity)
    return bytes(A_ASSOCIATE_RQ(primitive).encode())


@pytest.fixture
def fresh_cache() -> None:
    assoc_setup.requests.clear()


def _fields(pdu: A_ASSOCIATE_RQ) -> tuple[object, ...]:
    primitive = pdu.to_primitive()
    return (primitive.calling_ae_title, primitive.called_ae_title,
            primitive.application_context_name,
            [(cx.context_id, cx.abstract_syntax, cx.transfer_syntax)
             for cx in primitive.presentation_context_definition_list],
            [type(item).__name__ for item in primitive.user_information])


@pytest.mark.usefixtures("fresh_cache")
def test_a_request_is_decoded_once_and_each_association_gets_its_own_primitive() -> None:
    data = _request(120)
    first = assoc_setup.decoded_rq(data)
    assert assoc_setup.decoded_rq(data) is not first  # not kept until accepted
    assoc_setup.remember_rq(data, first)
    fresh = A_ASSOCIATE_RQ()
    fresh.decode(data)
    assert _fields(first) == _fields(fresh)
    assert assoc_setup.decoded_rq(data) is first
    assert assoc_setup.requests.hits == 1
    # What one association does to its primitive is not seen by the next.
    mine = first.to_primitive()
    mine.presentation_context_definition_list[0].add_transfer_syntax("1.2.3")
    mine.presentation_context_definition_list.clear()
    mine.user_information.clear()
    assert _fields(assoc_setup.decoded_rq(data)) == _fields(fresh)


@pytest.mark.usefixtures("fresh_cache")
def test_the_cache_is_bounded_in_entries_and_in_size() -> None:
    for k in range(3 * assoc_setup.RQ_CACHE_ENTRIES):
        data = _request(3, calling=f"S{k}")
        assoc_setup.remember_rq(data, assoc_setup.decoded_rq(data))
    assert len(assoc_setup.requests) == assoc_setup.RQ_CACHE_ENTRIES
    big = _request(120)
    big_primitive = A_ASSOCIATE_RQ()
    big_primitive.decode(big)
    assoc_setup.requests.clear()
    old, assoc_setup.RQ_CACHE_MAX_BYTES = assoc_setup.RQ_CACHE_MAX_BYTES, len(big) - 1
    try:
        pdu = assoc_setup.decoded_rq(big)
        assoc_setup.remember_rq(big, pdu)
        assert _fields(pdu) == _fields(big_primitive)
        assert len(assoc_setup.requests) == 0
    finally:
        assoc_setup.RQ_CACHE_MAX_BYTES = old


@pytest.mark.usefixtures("fresh_cache")
def test_a_request_of_many_items_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _request(5)
    pdu = assoc_setup.decoded_rq(data)
    monkeypatch.setattr(assoc_setup, "RQ_CACHE_MAX_ITEMS", 12)
    assoc_setup.remember_rq(data, pdu)
    assert len(assoc_setup.requests) == 0
    monkeypatch.setattr(assoc_setup, "RQ_CACHE_MAX_ITEMS", 1024)
    assoc_setup.remember_rq(data, pdu)
    assert len(assoc_setup.requests) == 1


@pytest.mark.usefixtures("fresh_cache")
def test_a_remembered_request_is_decoded_again_under_another_uid_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = _request(3)
    pdu = assoc_setup.decoded_rq(data)
    assoc_setup.remember_rq(data, pdu)
    assert assoc_setup.decoded_rq(data) is pdu
    monkeypatch.setattr(_config, "ENFORCE_UID_CONFORMANCE",
                        not _config.ENFORCE_UID_CONFORMANCE)
    assert assoc_setup.decoded_rq(data) is not pdu


@pytest.mark.usefixtures("fresh_cache")
def test_a_request_carrying_a_password_is_not_kept() -> None:
    data = _request(3, password=b"s3cret")
    pdu = assoc_setup.decoded_rq(data)
    assoc_setup.remember_rq(data, pdu)
    assert pdu.to_primitive().user_information[-1].secondary_field == b"s3cret"
    assert len(assoc_setup.requests) == 0
    assert assoc_setup.decoded_rq(data) is not pdu
    # Nor with the identity in a second user information item (pynetdicom takes the last).
    plain = _request(3)
    second = _request(3, password=b"s3cret")
    items = A_ASSOCIATE_RQ()
    items.decode(second)
    with_identity = [i for i in items.variable_items if isinstance(i, UserInformationItem)][0]
    doubled = bytearray(plain) + with_identity.encode()
    doubled[2:6] = (len(doubled) - 6).to_bytes(4, "big")
    pdu = assoc_setup.decoded_rq(bytes(doubled))
    assert pdu.to_primitive().user_information[-1].secondary_field == b"s3cret"
    assoc_setup.remember_rq(bytes(doubled), pdu)
    assert len(assoc_setup.requests) == 0


@pytest.mark.usefixtures("fresh_cache")
def test_bytes_pynetdicom_cannot_decode_raise_alike_and_are_not_kept() -> None:
    data = bytearray(_request(3))
    data[74:76] = b"\xff\xff"  # the first item's length runs past the PDU
    with pytest.raises(Exception) as ours:
        assoc_setup.decoded_rq(bytes(data))
    with pytest.raises(Exception) as theirs:
        A_ASSOCIATE_RQ().decode(bytes(data))
    assert type(ours.value) is type(theirs.value)
    assert len(assoc_setup.requests) == 0


def _sender(contexts: list[PresentationContext] | None = None) -> AE:
    """A requestor proposing these contexts and Verification."""
    ae = AE(ae_title="SENDER")
    ae.requested_contexts = contexts or []
    ae.add_requested_context(Verification)
    return ae


@pytest.mark.usefixtures("fresh_cache")
@pytest.mark.django_db(transaction=True)
def test_associations_over_a_real_socket_take_the_short_path_and_negotiate_alike(
        live_scp: tuple[str, int]) -> None:
    host, port = live_scp
    ae = _sender(StoragePresentationContexts[:120])
    roles = [build_role(CTImageStorage, scu_role=True, scp_role=True),
             build_role(RTPlanStorage, scu_role=True)]
    direct = assoc_setup.sent_direct
    accepted = []
    for _ in range(3):
        assoc = ae.associate(host, port, ae_title="RV_SCP", ext_neg=roles)
        assert assoc.is_established
        accepted.append(sorted((cx.abstract_syntax, cx.transfer_syntax[0], cx.as_scu, cx.as_scp)
                               for cx in assoc.accepted_contexts))
        assert assoc.send_c_echo().Status == 0x0000
        assoc.release()
    assert accepted[0] == accepted[1] == accepted[2]
    assert any(uid == CTImageStorage for uid, *_ in accepted[0])
    assert assoc_setup.requests.hits >= 2  # the same request, decoded once
    assert assoc_setup.sent_direct - direct == 3


@pytest.mark.usefixtures("fresh_cache")
@pytest.mark.django_db(transaction=True)
def test_a_rejected_association_leaves_nothing_in_the_cache(
        live_scp: tuple[str, int]) -> None:
    host, port = live_scp
    ae = _sender()
    for _ in range(2):
        assoc = ae.associate(host, port, ae_title="NOT_VERITY")
        assert assoc.is_rejected
    assert len(assoc_setup.requests) == 0 and assoc_setup.requests.hits == 0


@pytest.mark.usefixtures("fresh_cache")
@pytest.mark.django_db(transaction=True)
def test_with_pdu_handlers_bound_on_the_scp_pynetdicoms_path_runs(settings) -> None:  # type: ignore[no-untyped-def]
    from dicom_net.ae import build_ae, start_server
    from dicom_net.handlers import HANDLERS
    from tests.conftest import free_port

    settings.RV_ACCEPT_UNKNOWN_AE = True
    received: list[object] = []
    sent: list[object] = []
    scp = build_ae()
    server = start_server(ae=scp, host="127.0.0.1", port=free_port(), handlers=[
        *HANDLERS, (evt.EVT_PDU_RECV, lambda e: received.append(e.pdu)),
        (evt.EVT_PDU_SENT, lambda e: sent.append(e.pdu))])
    try:
        ae = _sender()
        direct = assoc_setup.sent_direct
        for _ in range(2):
            assoc = ae.associate("127.0.0.1", int(server.server_address[1]), ae_title="RV_SCP")
            assert assoc.is_established
            assoc.release()
    finally:
        scp.shutdown()
    assert assoc_setup.sent_direct == direct
    assert len(assoc_setup.requests) == 0 and assoc_setup.requests.hits == 0
    assert [type(p).__name__ for p in received].count("A_ASSOCIATE_RQ") == 2
    assert [type(p).__name__ for p in sent].count("A_ASSOCIATE_AC") == 2
