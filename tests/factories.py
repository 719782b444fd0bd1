"""Small DICOM objects made on the spot, for tests and benchmarks (never patient data)."""

from __future__ import annotations

import io

import numpy as np
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import CTImageStorage, RTImageStorage


def ct_image(*, rows: int = 64, cols: int = 64, sop_instance_uid: str | None = None,
             study_instance_uid: str | None = None, series_instance_uid: str | None = None,
             patient_id: str = "TEST-0001", instance_number: int = 1,
             seed: int = 0) -> Dataset:
    """A CT Image (PS3.3 A.3) with random 16-bit pixels and the attributes the index keeps."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = series_instance_uid or generate_uid()
    ds.FrameOfReferenceUID = ds.StudyInstanceUID
    ds.PatientName = "Test^Ingest"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20260101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 1
    ds.ImagePositionPatient = [0, 0, instance_number]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.KVP = 120
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 4096, size=(rows, cols), dtype=np.uint16).tobytes()
    return ds


def part10(ds: Dataset) -> bytes:
    """The data set as a DICOM Part 10 file."""
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def rt_image(*, rows: int = 1024, cols: int = 1024, patient_id: str = "TEST-0001",
             seed: int = 0) -> Dataset:
    """An RT Image (PS3.3 A.17) as a portal imager makes one: 16-bit random pixels, no plan
    reference (the clinical tests build theirs in tests/rv/records.py)."""
    ds = ct_image(rows=rows, cols=cols, patient_id=patient_id, seed=seed)
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "SliceThickness",
                    "PixelSpacing", "KVP", "FrameOfReferenceUID"):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = RTImageStorage
    ds.Modality = "RTIMAGE"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "PORTAL"]
    ds.RTImageLabel = "Portal"
    ds.RTImagePlane = "NORMAL"
    ds.ConversionType = "DI"
    ds.BitsStored, ds.HighBit = 12, 11
    ds.RadiationMachineSAD = 1000
    ds.RTImageSID = 1500
    ds.ImagePlanePixelSpacing = [0.4, 0.4]
    return ds
