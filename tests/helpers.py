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


def seed_qr_archive() -> dict[str, object]:
    """A small archive for Query/Retrieve: three patients, three studies, four series.

    PQR1 Doe^Jane: study A (20260115 101500, "Plan CT"): series CT (2 images), series MR
    (1 image, content date 20260116); PQR2 Smith^John: study B (20260210 153000, "Boost"):
    series CT (1 image); PQR3 doe^john (lower case): study C (20251231, no time): CT (1).
    """
    from archive.services import instance_store

    def store(ds: Dataset, **attrs: object) -> None:
        for keyword, value in attrs.items():
            setattr(ds, keyword, value)
        instance_store(data=to_bytes(ds), source="import")

    uids: dict[str, object] = {"study": {}, "series": {}, "sop": {}}
    plan = [
        ("PQR1", "Doe^Jane", "19600101", "A", "20260115", "101500", "Plan CT", "ACC1",
         [("ct", "CT", "20260115", [1, 2]), ("mr", "MR", "20260116", [1])]),
        ("PQR2", "Smith^John", "19700505", "B", "20260210", "153000", "Boost", "ACC2",
         [("ct2", "CT", "20260210", [1])]),
        ("PQR3", "doe^john", "19800808", "C", "20251231", "", "Old", "XYZ9",
         [("ct3", "CT", "20251231", [5])]),
    ]
    for pid, name, birth, study, sdate, stime, desc, acc, series_list in plan:
        study_uid = generate_uid()
        uids["study"][study] = study_uid  # type: ignore[index]
        for series, modality, cdate, numbers in series_list:
            series_uid = generate_uid()
            uids["series"][series] = series_uid  # type: ignore[index]
            for number in numbers:
                sop = generate_uid()
                uids["sop"][f"{series}-{number}"] = sop  # type: ignore[index]
                store(make_ct(patient_id=pid, patient_name=name, study_uid=study_uid,
                              series_uid=series_uid, sop_uid=sop),
                      PatientBirthDate=birth, StudyDate=sdate, StudyTime=stime,
                      StudyDescription=desc, AccessionNumber=acc, Modality=modality,
                      SeriesDescription=f"{modality} series", SeriesDate=cdate,
                      ContentDate=cdate, ContentTime="120000", InstanceNumber=number)
    return uids


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a manage.py subprocess that uses the test database and data dir."""
    import os

    from django.db import connection

    env = dict(os.environ)
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["DATABASE_URL"] = (f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                               f"{db['PORT'] or 5432}/{db['NAME']}")
    env.update(RV_DATA_DIR=str(data_dir), RV_ACCEPT_UNKNOWN_AE="true", **extra)
    return env


def qr_identifier(level: str, **keys: object) -> Dataset:
    """A Query/Retrieve identifier: the level and the given keys (empty string: return it)."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds
