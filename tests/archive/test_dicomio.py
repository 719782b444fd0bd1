"""The byte-level checks that decide whether an object is whole before it is stored."""

from __future__ import annotations

import io
import zlib

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

from archive.dicomio import check_complete, ensure_part10, parse_da, read_index
from archive.errors import CannotUnderstand, DatasetMismatch
from tests.helpers import dataset_bytes, make_ct, read, sample, to_bytes

GOOD = ["rtplan.dcm", "rtstruct.dcm", "rtdose.dcm", "CT_small.dcm", "MR_small.dcm",
        "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "image_dfl.dcm", "JPEG2000.dcm",
        "MR_small_jpeg_ls_lossless.dcm", "JPEG-lossy.dcm",
        "ExplVR_BigEnd.dcm"]


@pytest.mark.parametrize("name", GOOD)
def test_whole_files_pass(name: str) -> None:
    data = ensure_part10(sample(name).read_bytes())  # rtstruct.dcm has no preamble
    ds, attrs = read_index(data)
    check_complete(data, ds.file_meta.TransferSyntaxUID)
    assert attrs.sop_instance_uid == ds.SOPInstanceUID


def test_truncated_rtplan_is_refused() -> None:
    data = sample("rtplan_truncated.dcm").read_bytes()
    ds, _ = read_index(data)  # pydicom alone reads it without complaint
    with pytest.raises(CannotUnderstand, match="truncated"):
        check_complete(data, ds.file_meta.TransferSyntaxUID)


@pytest.mark.parametrize("cut", [1, 7, 100, 1000])
def test_any_cut_of_a_ct_is_refused(cut: int) -> None:
    data = to_bytes(make_ct(rows=32))
    with pytest.raises(CannotUnderstand):
        check_complete(data[:-cut], read(data).file_meta.TransferSyntaxUID)


def test_undefined_length_sequence_must_be_closed() -> None:
    ds = read(sample("rtplan.dcm").read_bytes())
    buf = io.BytesIO()
    ds.save_as(buf)  # pydicom writes undefined-length sequences for plans read that way
    data = buf.getvalue()
    check_complete(data, ds.file_meta.TransferSyntaxUID)
    end = data.rfind(b"\xfe\xff\xdd\xe0")  # the last sequence delimiter
    if end > 0:
        with pytest.raises(CannotUnderstand):
            check_complete(data[:end], ds.file_meta.TransferSyntaxUID)


def test_deflated_garbage_is_refused() -> None:
    data = sample("image_dfl.dcm").read_bytes()
    head = data[: len(data) - len(dataset_bytes(data))]
    with pytest.raises(CannotUnderstand, match="inflated|truncated"):
        check_complete(head + b"\x00garbage" * 10, DeflatedExplicitVRLittleEndian)
    body = zlib.decompress(dataset_bytes(data), -zlib.MAX_WBITS)
    squeezed = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    short = squeezed.compress(body[:-50]) + squeezed.flush()
    with pytest.raises(CannotUnderstand):
        check_complete(head + short, DeflatedExplicitVRLittleEndian)


def test_other_syntaxes_are_walked_in_their_encoding() -> None:
    big = sample("MR_small_bigendian.dcm").read_bytes()
    check_complete(big, ExplicitVRBigEndian)
    implicit = sample("MR_small_implicit.dcm").read_bytes()
    check_complete(implicit, ImplicitVRLittleEndian)
    with pytest.raises(CannotUnderstand):
        check_complete(implicit[:-3], ImplicitVRLittleEndian)


def test_a_file_without_preamble_is_framed_and_its_data_set_kept() -> None:
    data = to_bytes(make_ct())
    raw = dataset_bytes(data)
    framed = ensure_part10(raw)
    assert framed[128:132] == b"DICM"
    assert dataset_bytes(framed) == raw
    assert read(framed).SOPInstanceUID == read(data).SOPInstanceUID
    assert ensure_part10(data) is data


def test_not_dicom_is_refused() -> None:
    with pytest.raises(CannotUnderstand):
        ensure_part10(b"hello, this is not DICOM at all" * 10)


def test_index_attributes() -> None:
    ct = make_ct(patient_id="ID-9", patient_name="Doe^Jane")
    _, attrs = read_index(to_bytes(ct))
    assert (attrs.patient_id, attrs.patient_name, attrs.modality) == ("ID-9", "Doe^Jane", "CT")
    assert attrs.study_date is not None and attrs.study_date.isoformat() == "2026-01-02"
    assert (attrs.series_number, attrs.instance_number) == (3, 7)


def test_missing_sop_instance_uid_does_not_match_the_iod() -> None:
    ct = make_ct()
    del ct.SOPInstanceUID
    ct.file_meta.MediaStorageSOPInstanceUID = "1.2.3"  # type: ignore[assignment]
    with pytest.raises(DatasetMismatch, match="SOP Instance UID"):
        read_index(to_bytes(ct))


@pytest.mark.parametrize(("value", "expected"), [
    ("20260102", "2026-01-02"), ("2026.01.02", "2026-01-02"), ("", None), ("2026", None),
    ("20261399", None), (None, None),
])
def test_parse_da(value: str | None, expected: str | None) -> None:
    result = parse_da(value)
    assert (result.isoformat() if result else None) == expected
