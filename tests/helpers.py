"""Small builders the tests share: objects made here, never copied from elsewhere."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.exceptions import ObjectDoesNotExist
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import CTImageStorage

from archive.dicomio import _meta_end


def sample(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom's test file {name} is missing"
    return Path(path)


def dataset_bytes(part10: bytes) -> bytes:
    """The data set after the File Meta Information: what goes over the wire."""
    return part10[_meta_end(memoryview(part10)):]


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_ct(*, patient_id: str = "P1", patient_name: str = "Test^Patient",
            study_uid: str | None = None, series_uid: str | None = None,
            sop_uid: str | None = None, rows: int = 4) -> Dataset:
    """A small, valid CT Image."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyDate = "20260102"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "A123"
    ds.StudyID = "S1"
    ds.Modality = "CT"
    ds.SeriesNumber = 3
    ds.InstanceNumber = 7
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Rows = ds.Columns = rows
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(rows * rows * 2)
    return ds


def read(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


def eventually(check, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    """Retry check() until it returns without AssertionError (the SCP writes its association
    log just after it answers the peer, so the peer can look a moment too early)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, LookupError, ObjectDoesNotExist):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
