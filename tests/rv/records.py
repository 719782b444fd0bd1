"""Treatment records and RT Images built by the tests, as a treatment machine or imaging
system would send them (PS3.3 A.29 RT Beams Treatment Record, A.17 RT Image)."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RTBeamsTreatmentRecordStorage, RTImageStorage, generate_uid

from rv.models import Plan


def _patient_study(ds: Dataset, *, patient_id: str, modality: str) -> None:
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = f"Test^{patient_id}"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"


def beams_record(*, plan: Plan | None = None, plan_uid: str = "", patient_id: str = "",
                 fraction: int = 1, beams: Seq[dict[str, Any]] = (),
                 origin: str | None = "DEVICE", machine: str = "TrueBeam1",
                 date: str = "20260302", time: str = "090000",
                 manufacturer: str = "Linac Co") -> Dataset:
    """An RT Beams Treatment Record. Each beam: {"beam": n, "delivered": MU,
    "specified": MU, "termination": "NORMAL", "type": "TREATMENT", "gantry": deg}."""
    ds = Dataset()
    ds.SOPClassUID = RTBeamsTreatmentRecordStorage
    ds.SOPInstanceUID = generate_uid()
    _patient_study(ds, patient_id=plan.patient.patient_id if plan else patient_id,
                   modality="RTRECORD")
    ds.Manufacturer = manufacturer
    ds.InstanceCreationDate = date
    ds.TreatmentDate = date
    ds.TreatmentTime = time
    if origin is not None:
        ds.TreatmentRecordContentOrigin = origin
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.5"
    ref.ReferencedSOPInstanceUID = plan.sop_instance_uid if plan else plan_uid
    ds.ReferencedRTPlanSequence = Sequence([ref])
    m = Dataset()
    m.TreatmentMachineName = machine
    ds.TreatmentMachineSequence = Sequence([m])
    items = []
    for b in beams:
        item = Dataset()
        item.ReferencedBeamNumber = b["beam"]
        item.CurrentFractionNumber = fraction
        item.TreatmentDeliveryType = b.get("type", "TREATMENT")
        item.TreatmentTerminationStatus = b.get("termination", "NORMAL")
        item.TreatmentVerificationStatus = "VERIFIED"
        item.SpecifiedPrimaryMeterset = b.get("specified", b["delivered"])
        item.DeliveredPrimaryMeterset = b["delivered"]
        item.PrimaryDosimeterUnit = "MU"
        cp = Dataset()
        cp.ReferencedControlPointIndex = 0
        cp.TreatmentControlPointDate = date
        cp.TreatmentControlPointTime = time
        if b.get("gantry") is not None:
            cp.GantryAngle = b["gantry"]
        item.ControlPointDeliverySequence = Sequence([cp])
        items.append(item)
    ds.TreatmentSessionBeamSequence = Sequence(items)
    return ds


def rt_image(*, plan: Plan | None = None, plan_uid: str = "", patient_id: str = "IMG01",
             beam: int | None = 1, fraction: int | None = 1, label: str = "Portal Arc1",
             image_type: str = "PORTAL",
             rows: int = 48, columns: int = 64, photometric: str = "MONOCHROME2",
             window: tuple[float, float] | None = (2048.0, 4096.0)) -> Dataset:
    """A 16-bit RT Image with a gradient, referencing plan, beam and fraction."""
    ds = Dataset()
    ds.SOPClassUID = RTImageStorage
    ds.SOPInstanceUID = generate_uid()
    _patient_study(ds, patient_id=plan.patient.patient_id if plan else patient_id,
                   modality="RTIMAGE")
    ds.ImageType = ["ORIGINAL", "PRIMARY", image_type]
    ds.RTImageLabel = label
    ds.RTImagePlane = "NORMAL"
    ds.ConversionType = "DI"
    if plan is not None or plan_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.5"
        ref.ReferencedSOPInstanceUID = plan.sop_instance_uid if plan else plan_uid
        ds.ReferencedRTPlanSequence = Sequence([ref])
    if beam is not None:
        ds.ReferencedBeamNumber = beam
    if fraction is not None:
        ds.FractionNumber = fraction
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    pixels = (np.arange(rows * columns, dtype=np.int64).reshape(rows, columns)
              * 4095 // (rows * columns - 1)).astype(np.uint16)
    ds.PixelData = pixels.tobytes()
    return ds


def png_decode(data: bytes) -> np.ndarray:
    """Decode an 8-bit grey or RGB PNG with any filter types: enough to check what Verity
    serves, independent of its encoder."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (0, 2)
    bpp = 1 if colour == 0 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, np.int32)
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2}.get(f)
            if f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            assert pred is not None, f"bad filter {f}"
            cur[x] = (line[x] + pred) & 0xFF
        out[y] = cur
        prev = cur
    return out.reshape(height, width) if colour == 0 else out.reshape(height, width, 3)


def brachy_record(*, plan: Plan, fraction: int = 1, setup: int = 1,
                  channels: Seq[tuple[int, float, float]] = (), termination: str = "NORMAL",
                  machine: str = "Afterloader1") -> Dataset:
    """An RT Brachy Treatment Record (PS3.3 A.30, C.8.8.22); channels: (number, specified
    seconds, delivered seconds)."""
    from pydicom.uid import RTBrachyTreatmentRecordStorage

    ds = beams_record(plan=plan, fraction=fraction, machine=machine)
    ds.SOPClassUID = RTBrachyTreatmentRecordStorage
    del ds.TreatmentSessionBeamSequence
    item = Dataset()
    item.ReferencedBrachyApplicationSetupNumber = setup
    item.CurrentFractionNumber = fraction
    item.TreatmentDeliveryType = "TREATMENT"
    item.TreatmentTerminationStatus = termination
    item.TreatmentVerificationStatus = "VERIFIED"
    recorded = []
    for number, specified, delivered in channels:
        ch = Dataset()
        ch.ChannelNumber = number
        ch.SpecifiedChannelTotalTime = specified
        ch.DeliveredChannelTotalTime = delivered
        recorded.append(ch)
    item.RecordedChannelSequence = Sequence(recorded)
    ds.TreatmentSessionApplicationSetupSequence = Sequence([item])
    return ds
