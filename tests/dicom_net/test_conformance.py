"""docs/CONFORMANCE.md says what build_ae() really supports: its tables are parsed and
compared with the AE's presentation contexts."""

from __future__ import annotations

import re

from pydicom.uid import UID
from pynetdicom.sop_class import Verification

from dicom_net.ae import (
    COMMITMENT_SOP_CLASSES,
    QR_SOP_CLASSES,
    STORAGE_SOP_CLASSES,
    STORAGE_TRANSFER_SYNTAXES,
    UPS_EVENT_SOP_CLASSES,
    UPS_SOP_CLASSES,
    build_ae,
)
from tests.conftest import REPO

DOC = REPO / "docs" / "CONFORMANCE.md"


def table(section: str) -> list[dict[str, str]]:
    """The first table under the '## <n>. <section>' heading, as dicts by column name."""
    text = DOC.read_text()
    match = re.search(rf"^## \d+\. {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section {section!r} in {DOC}"
    lines = [ln for ln in match.group(1).splitlines() if ln.startswith("|")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    header, rows = cells[0], cells[2:]
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_sop_classes_and_roles_match_the_ae() -> None:
    ae = build_ae()
    rows = table("SOP classes")
    documented_scp = {r["UID"] for r in rows if r["SCP"] == "yes"}
    documented_scu = {r["UID"] for r in rows if r["SCU"] == "yes"}
    supported = {cx.abstract_syntax for cx in ae.supported_contexts}
    # UPS Event: Verity is the SCP (it reports the events) on associations it opens itself,
    # proposing that context (dicom_net.ups_events); it never accepts it from a peer.
    assert documented_scp == supported | set(UPS_EVENT_SOP_CLASSES)
    assert not supported & set(UPS_EVENT_SOP_CLASSES)
    assert set(UPS_SOP_CLASSES) <= supported
    # SCU: storage (exports, C-MOVE, and C-GET through role selection), Verification
    # (dicom_node echo) and Storage Commitment (committed exports, whose reports a node may
    # send on an association it opens, proposing the SCP role).
    scu = {cx.abstract_syntax for cx in ae.supported_contexts if cx.scu_role}
    assert documented_scu == scu | {Verification}
    assert scu == set(STORAGE_SOP_CLASSES) | set(COMMITMENT_SOP_CLASSES)
    assert set(QR_SOP_CLASSES) <= documented_scp
    for row in rows:  # names are the standard's, as pydicom knows them
        assert row["SOP Class"] == UID(row["UID"]).name


def test_transfer_syntaxes_match_the_ae() -> None:
    ae = build_ae()
    rows = table("Transfer syntaxes")
    storage = {ts for cx in ae.supported_contexts if cx.abstract_syntax in STORAGE_SOP_CLASSES
               for ts in cx.transfer_syntax}
    qr = {ts for cx in ae.supported_contexts if cx.abstract_syntax in QR_SOP_CLASSES
          for ts in cx.transfer_syntax}
    assert {r["UID"] for r in rows if r["Storage"] == "yes"} == storage
    assert storage == set(STORAGE_TRANSFER_SYNTAXES)
    assert {r["UID"] for r in rows if r["Query/Retrieve"] == "yes"} == qr
    assert {r["UID"] for r in rows} == storage | qr


def test_every_status_the_code_answers_is_documented() -> None:
    from archive import errors
    from dicom_net import statuses

    documented = {int(r["Code"], 16) for r in table("Status codes")}
    codes = {cls.status for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.StoreError)
             and cls is not errors.StoreError}
    codes |= {v for k, v in vars(statuses).items() if k.isupper() and isinstance(v, int)}
    assert codes <= documented, sorted(hex(c) for c in codes - documented)


def test_every_ups_status_verity_answers_is_documented() -> None:
    """The UPS answers (rv.ups's state table and N-SET gate, rv.services.workitem_actions,
    dicom_net.ups) are in the status table with a UPS service named."""
    from dicom_net import ups as handlers
    from rv import ups, ups_events
    from rv.services import workitem_actions

    answered = {ups.NO_SUCH_ATTRIBUTE, ups.INVALID_ATTRIBUTE_VALUE, ups.PROCESSING_FAILURE,
                ups.INVALID_ARGUMENT_VALUE, ups.ALREADY_CANCELED,
                ups.ALREADY_COMPLETED_WARNING, ups.MAY_NO_LONGER_BE_UPDATED,
                ups.WRONG_TRANSACTION_UID, ups.ALREADY_IN_PROGRESS,
                ups.MAY_ONLY_BECOME_SCHEDULED_BY_CREATE, ups.FINAL_STATE_NOT_MET,
                ups.NO_SUCH_UPS, ups.NOT_IN_PROGRESS, ups.ALREADY_COMPLETED,
                ups.PERFORMER_UNREACHABLE, ups.IDENTIFIER_DOES_NOT_MATCH,
                handlers.NO_SUCH_ACTION, handlers.NO_SUCH_SOP_CLASS,
                handlers.PROCESSING_FAILURE, workitem_actions.NOT_AUTHORIZED,
                # UPS Watch (issue 14): rv.ups_events' answers to N-ACTION 3/4/5
                ups_events.MISSING_ATTRIBUTE, ups_events.INVALID_ATTRIBUTE_VALUE,
                ups_events.NO_SUCH_UPS, ups_events.RECEIVING_AE_UNKNOWN,
                ups_events.ACTION_NOT_APPROPRIATE}
    rows = table("Status codes")
    documented = {int(r["Code"], 16) for r in rows
                  if "N-" in r["Service"] or "UPS" in r["Meaning"]}
    assert answered <= documented, sorted(hex(c) for c in answered - documented)


def test_every_storage_commitment_status_and_failure_reason_is_documented() -> None:
    from dicom_net import commitment

    rows = table("Status codes")
    for service, codes in commitment.ANSWERED.items():
        documented = {int(r["Code"], 16) for r in rows
                      if service in r["Service"] and "Storage Commitment" in r["Service"]}
        assert set(codes) - {0x0000} <= documented, (service, sorted(
            hex(c) for c in set(codes) - {0x0000} - documented))
    reported = {commitment.PROCESSING_FAILURE, commitment.NO_SUCH_OBJECT_INSTANCE,
                commitment.CLASS_INSTANCE_CONFLICT, commitment.SOP_CLASS_NOT_SUPPORTED,
                commitment.DUPLICATE_TRANSACTION_UID}
    assert {int(r["Failure Reason"], 16) for r in table("Storage Commitment")} == reported
