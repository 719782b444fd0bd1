"""dicom_net.negotiation: the lighter association set-up gives the same answers (issue 16)."""

from __future__ import annotations

import copy
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import valuerep
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import _config, presentation, utils
from pynetdicom._validators import validate_ui
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import CTImageStorage, RTPlanStorage

from dicom_net import negotiation
from dicom_net.ae import STORAGE_SOP_CLASSES, build_ae

# Non-conformant UIDs are warned about by pydicom, as they were before.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom.valuerep")

_UID_TEXT = st.one_of(
    st.from_regex(r"\A(0|[1-9][0-9]{0,5})(\.(0|[1-9][0-9]{0,8})){0,12}\Z"),  # valid ones
    st.text(alphabet="0123456789. a\x00", max_size=80),  # and anything like one
)


def test_install_is_idempotent_and_wraps_each_check_once() -> None:
    assert negotiation.install()
    first = (valuerep.VALIDATORS["UI"], _config.VALIDATORS["UI"], presentation.set_uid)
    assert negotiation.install()
    assert (valuerep.VALIDATORS["UI"], _config.VALIDATORS["UI"], presentation.set_uid) == first
    assert all(getattr(check, "_verity_memo", False) for check in first)


@given(_UID_TEXT)
def test_the_remembered_uid_checks_answer_as_pydicom_and_pynetdicom_do(text: str) -> None:
    negotiation.install()
    stock_pydicom = valuerep.validate_length_and_type_and_regex("UI", text)
    assert valuerep.VALIDATORS["UI"]("UI", text) == stock_pydicom
    assert valuerep.VALIDATORS["UI"]("UI", text) == stock_pydicom  # from the cache
    assert _config.VALIDATORS["UI"](text) == validate_ui(text)
    assert UID(text).is_valid == negotiation._STOCK_IS_VALID(UID(text))


@given(_UID_TEXT)
def test_the_remembered_set_uid_returns_what_pynetdicom_returns_or_raises_alike(
        text: str) -> None:
    negotiation.install()
    try:
        expected: object = utils.set_uid(text, "x", True, True, True)
    except (ValueError, TypeError) as exc:
        expected = type(exc)
    for value in (text, text.encode("latin-1")):
        try:
            got: object = presentation.set_uid(value, "x", True, True, True)
        except (ValueError, TypeError) as exc:
            got = type(exc)
        if isinstance(expected, type):
            assert got is expected
        else:
            assert got == expected and isinstance(got, UID)


def test_a_non_string_goes_to_pynetdicom_as_before() -> None:
    negotiation.install()
    assert presentation.set_uid(None, "x") is None
    assert valuerep.VALIDATORS["UI"]("UI", 5) == valuerep.validate_length_and_type_and_regex(
        "UI", 5)


def test_a_copied_context_equals_a_deep_copy_and_shares_nothing_mutable() -> None:
    cx = build_context(RTPlanStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    cx.context_id = 3
    cx.scu_role, cx.scp_role = True, True
    copied, deep = negotiation.copy_context(cx), copy.deepcopy(cx)
    assert vars(copied) == vars(deep)
    assert copied.as_tuple == cx.as_tuple
    assert copied._transfer_syntax is not cx._transfer_syntax
    copied.add_transfer_syntax("1.2.840.10008.1.2.2")
    assert len(cx.transfer_syntax) == 2


def test_the_server_hands_each_association_copies_of_its_contexts() -> None:
    ae = build_ae()
    contexts = negotiation.fast_copied(ae.supported_contexts)
    assert isinstance(contexts, negotiation.ContextList)
    assert len(contexts) == len(ae.supported_contexts) >= len(STORAGE_SOP_CLASSES)
    copies = copy.deepcopy(contexts)
    assert type(copies) is list
    for original, copied in zip(contexts, copies, strict=True):
        assert copied is not original and vars(copied) == vars(copy.deepcopy(original))
        assert copied._transfer_syntax is not original._transfer_syntax


def test_a_context_holding_something_else_is_deep_copied_as_before() -> None:
    cx = build_context(CTImageStorage)
    cx.odd = {"mutable": []}  # type: ignore[attr-defined]  # not a shape copy_context knows: the stock path stays
    assert type(negotiation.fast_copied([cx])) is list


def test_pynetdicom_logging_handlers_stay_only_when_its_logger_prints_debug() -> None:
    logger = logging.getLogger("pynetdicom")
    level = logger.level
    try:
        logger.setLevel(logging.DEBUG)
        assert negotiation.handler_level() == "standard"
        logger.setLevel(logging.WARNING)
        assert negotiation.handler_level() == "none"
    finally:
        logger.setLevel(level)
