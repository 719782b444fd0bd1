"""A Treatment Delivery Device for the tests (IHE-RO TDW-II): a pynetdicom SCU that queries
Verity's UPS worklist, retrieves the plan and the delivery instruction into its own storage
SCP, claims a step, reports progress, stores its RT Beams Treatment Record, gives the final
update and ends the step, the way a machine's console does (TDW-II.md RO-58..RO-65)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RTBeamsTreatmentRecordStorage, generate_uid
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    RTBeamsDeliveryInstructionStorage,
    RTPlanStorage,
    StudyRootQueryRetrieveInformationModelMove,
    UnifiedProcedureStepPull,
    UnifiedProcedureStepPush,
)

from dicom_net.models import Node
from tests.conftest import free_port

WORKITEM_CODE = ("121726", "DCM")


def code(value: str, scheme: str, meaning: str = "") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def dt(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S")


def worklist_query(*, machine: str = "", state: str = "SCHEDULED", start: str = "") -> Dataset:
    """What a real TDD asks (TDW-II.md "The worklist item"): its machine and the RT treatment
    workitem code as keys (empty meaning, empty scheme for the station), and the attributes
    it needs back."""
    q = Dataset()
    q.ScheduledWorkitemCodeSequence = Sequence([code(*WORKITEM_CODE)])
    q.ScheduledStationNameCodeSequence = Sequence([code(machine, "")]) if machine else Sequence()
    q.ProcedureStepState = state
    q.ScheduledProcedureStepStartDateTime = start
    for key in ("SOPInstanceUID", "PatientName", "PatientID", "WorklistLabel",
                "InputReadinessState", "ProcedureStepLabel"):
        setattr(q, key, "")
    q.InputInformationSequence = Sequence()
    q.ScheduledProcessingParametersSequence = Sequence()
    q.TransactionUID = ""  # asked for: never given
    return q


@dataclass
class Tdd:
    """One device: its AE title, Verity's address, and its own storage SCP for retrieval."""

    ae_title: str
    scp: tuple[str, int]
    received: list[Dataset] = field(default_factory=list)
    _server: Any = None
    port: int = 0

    def start_storage(self) -> None:
        """Its storage SCP (a C-MOVE destination registered with Verity)."""
        ae = AE(ae_title=self.ae_title)
        for sop in (RTPlanStorage, RTBeamsDeliveryInstructionStorage,
                    RTBeamsTreatmentRecordStorage):
            ae.add_supported_context(sop)
        lock = threading.Lock()

        def on_store(event: Any) -> int:
            with lock:
                self.received.append(event.dataset)
            return 0x0000

        self.port = free_port()
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_C_STORE, on_store)])
        Node.objects.update_or_create(
            ae_title=self.ae_title, defaults={
                "name": self.ae_title.lower(), "host": "127.0.0.1", "port": self.port,
                "move_destination": True, "can_store": True, "can_query": True,
                "ups_performer": True})

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def associate(self) -> Association:
        ae = AE(ae_title=self.ae_title)
        for sop in (UnifiedProcedureStepPull, UnifiedProcedureStepPush,
                    StudyRootQueryRetrieveInformationModelMove, RTBeamsTreatmentRecordStorage):
            ae.add_requested_context(sop)
        assoc = ae.associate(*self.scp, ae_title="RV_SCP")
        assert assoc.is_established
        return assoc

    # --- RO-58 .. RO-65 --------------------------------------------------------------------
    def find(self, query: Dataset) -> tuple[list[Dataset], int]:
        assoc = self.associate()
        try:
            out: list[Dataset] = []
            final = -1
            for status, ds in assoc.send_c_find(query, UnifiedProcedureStepPull):
                if status.Status in (0xFF00, 0xFF01) and ds is not None:
                    out.append(ds)
                else:
                    final = status.Status
            return out, final
        finally:
            assoc.release()

    def move(self, *, study_uid: str, sop_uids: list[str]) -> int:
        q = Dataset()
        q.QueryRetrieveLevel = "IMAGE"
        q.StudyInstanceUID = study_uid
        q.SeriesInstanceUID = ""
        q.SOPInstanceUID = sop_uids
        assoc = self.associate()
        try:
            statuses = [s.Status for s, _ in assoc.send_c_move(
                q, self.ae_title, StudyRootQueryRetrieveInformationModelMove)]
            return statuses[-1]
        finally:
            assoc.release()

    def action(self, uid: str, state: str, transaction_uid: str, *,
               sop_class: Any = UnifiedProcedureStepPush) -> Dataset:
        info = Dataset()
        info.ProcedureStepState = state
        if transaction_uid:
            info.TransactionUID = transaction_uid
        assoc = self.associate()
        try:
            status, _ = assoc.send_n_action(info, 1, sop_class, uid)
            return status
        finally:
            assoc.release()

    def request_cancel(self, uid: str, reason: str = "") -> Dataset:
        info = Dataset()
        info.ReasonForCancellation = reason
        assoc = self.associate()
        try:
            status, _ = assoc.send_n_action(info, 2, UnifiedProcedureStepPush, uid)
            return status
        finally:
            assoc.release()

    def nset(self, uid: str, modification: Dataset, *,
             sop_class: Any = UnifiedProcedureStepPush) -> tuple[Dataset, Dataset | None]:
        assoc = self.associate()
        try:
            status, attrs = assoc.send_n_set(modification, sop_class, uid)
            return status, attrs
        finally:
            assoc.release()

    def nget(self, uid: str, tags: list[int], *, sop_class: Any = UnifiedProcedureStepPush
             ) -> tuple[Dataset, Dataset | None]:
        assoc = self.associate()
        try:
            return assoc.send_n_get(tags, sop_class, uid)  # type: ignore[no-any-return]
        finally:
            assoc.release()

    def store(self, ds: Dataset) -> int:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        assoc = self.associate()
        try:
            status = assoc.send_c_store(ds)
            return int(status.Status)
        finally:
            assoc.release()


def progress(transaction_uid: str, *, percent: float, beam: int | None = None,
             description: str = "") -> Dataset:
    """RO-62: Procedure Step Progress Information with a Referenced Beam Number parameter."""
    mod = Dataset()
    mod.TransactionUID = transaction_uid
    item = Dataset()
    item.ProcedureStepProgress = percent
    item.ProcedureStepProgressDescription = description or f"Beam {beam}"
    if beam is not None:
        param = Dataset()
        param.ValueType = "NUMERIC"
        param.ConceptNameCodeSequence = Sequence([code("2018004", "99IHERO2018",
                                                       "Referenced Beam Number")])
        param.NumericValue = str(beam)
        param.MeasurementUnitsCodeSequence = Sequence([code("1", "UCUM", "no units")])
        item.ProcedureStepProgressParametersSequence = Sequence([param])
    mod.ProcedureStepProgressInformationSequence = Sequence([item])
    return mod


def final_update(transaction_uid: str, *, machine: str, start: datetime, end: datetime,
                 outputs: list[tuple[str, str, str, str]]) -> Dataset:
    """RO-64: Unified Procedure Step Performed Procedure Sequence with the station, the times,
    the workitem code and the Output Information (study, series, class, instance)."""
    mod = Dataset()
    mod.TransactionUID = transaction_uid
    item = Dataset()
    item.PerformedStationNameCodeSequence = Sequence([code(machine, "99IHERO2008", machine)])
    item.PerformedProcedureStepStartDateTime = dt(start)
    item.PerformedProcedureStepEndDateTime = dt(end)
    meaning = "RT Treatment with Internal Verification"
    item.PerformedWorkitemCodeSequence = Sequence([code(*WORKITEM_CODE, meaning)])
    refs = []
    for study, series, sop_class, sop_uid in outputs:
        out = Dataset()
        out.TypeOfInstances = "DICOM"
        out.StudyInstanceUID = study
        out.SeriesInstanceUID = series
        sop = Dataset()
        sop.ReferencedSOPClassUID = sop_class
        sop.ReferencedSOPInstanceUID = sop_uid
        out.ReferencedSOPSequence = Sequence([sop])
        refs.append(out)
    item.OutputInformationSequence = Sequence(refs)
    mod.UnifiedProcedureStepPerformedProcedureSequence = Sequence([item])
    return mod


def cancel_info(transaction_uid: str, *, when: datetime, reason: str) -> Dataset:
    """What a device sets before CANCELED (PS3.4 Table CC.2.5-3 final state)."""
    mod = Dataset()
    mod.TransactionUID = transaction_uid
    item = Dataset()
    item.ProcedureStepCancellationDateTime = dt(when)
    item.ReasonForCancellation = reason
    item.ProcedureStepDiscontinuationReasonCodeSequence = Sequence([
        code("110513", "DCM", "Discontinued for unspecified reason")])
    mod.ProcedureStepProgressInformationSequence = Sequence([item])
    return mod


def new_transaction_uid() -> str:
    return str(generate_uid())
