"""Hostile data sets over a real association: a deflate bomb, UIDs that are not UIDs, and
bytes nobody can parse. Each is refused with a failure status and an Error Comment, and
nothing of it is kept (no index row, no file)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import _config
from pynetdicom.sop_class import CTImageStorage

from archive.models import Instance
from tests.helpers import make_ct
from tests.security.conftest import ScpProcess, scu

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _send_files_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    # pynetdicom sends a file's data set bytes untouched (no decode, no re-encode).
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


def body(ds: Dataset) -> bytes:
    """The data set alone, Explicit VR Little Endian."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def part10_file(path: Path, *, sop_uid: str, ts: str, chunks: Iterator[bytes]) -> Path:
    """A Part 10 file whose file meta names sop_uid and ts, its data set bytes as given."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = UID(ts)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    with open(path, "wb") as out:
        out.write(b"\0" * 128 + b"DICM")
        buf = DicomBytesIO()
        write_file_meta_info(buf, meta, enforce_standard=True)
        out.write(buf.getvalue())
        for chunk in chunks:
            out.write(chunk)
    return path


def store(port: int, path: Path, ts: str) -> Dataset:
    """C-STORE the file as it is; the response status data set."""
    ae = scu("SENDER")
    ae.add_requested_context(CTImageStorage, [ts])
    assoc = ae.associate("127.0.0.1", port, ae_title="RV_SCP")
    assert assoc.is_established
    try:
        return assoc.send_c_store(path)
    finally:
        assoc.release()


def header(ds: Dataset) -> Dataset:
    del ds.PixelData
    return ds


def deflate_bomb(path: Path, inflated: int) -> Path:
    """A CT data set whose Pixel Data is `inflated` zero bytes, deflated (about 1 MiB per
    GiB)."""
    ds = header(make_ct())
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)

    def chunks() -> Iterator[bytes]:
        pixel_data = b"\xe0\x7f\x10\x00OB\0\0" + inflated.to_bytes(4, "little")  # (7FE0,0010)
        yield squeeze.compress(body(ds) + pixel_data)
        zeros = bytes(16 * MiB)
        for _ in range(inflated // len(zeros)):
            yield squeeze.compress(zeros)
        yield squeeze.flush()

    return part10_file(path, sop_uid=ds.SOPInstanceUID, ts=DeflatedExplicitVRLittleEndian,
                       chunks=chunks())


def test_deflate_bomb_is_refused_and_memory_stays_bounded(scp_process, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                          data_dir: Path) -> None:
    """Issue 12: 1 MiB inflating to 1 GiB was accepted with 0x0000 at a 4.3 GB peak."""
    bomb = deflate_bomb(tmp_path / "bomb.dcm", 1 << 30)
    assert bomb.stat().st_size < 2 * MiB
    scp: ScpProcess = scp_process(RV_DICOM_MAX_INFLATED=str(64 * MiB))
    before = scp.status("VmHWM")
    status = store(scp.port, bomb, DeflatedExplicitVRLittleEndian)
    assert status.Status == 0xC211
    assert "inflates past" in status.ErrorComment
    grown = scp.status("VmHWM") - before
    print(f"deflate bomb: SCP peak RSS grew {grown / MiB:.1f} MiB")
    assert grown < 128 * MiB, f"peak memory grew {grown / MiB:.0f} MiB"
    assert not Instance.objects.exists()
    assert not [p for p in data_dir.rglob("*") if p.is_file() and p.suffix == ".dcm"]


def test_deflated_object_under_the_cap_is_stored(start_scp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = start_scp(RV_DICOM_MAX_INFLATED=64 * MiB)
    ds = make_ct()
    data = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = data.compress(body(ds)) + data.flush()
    path = part10_file(tmp_path / "ok.dcm", sop_uid=ds.SOPInstanceUID,
                       ts=DeflatedExplicitVRLittleEndian, chunks=iter([deflated]))
    assert store(port, path, DeflatedExplicitVRLittleEndian).Status == 0x0000
    assert Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()


HOSTILE_UIDS = [
    ("SOPInstanceUID", "../../x"),
    ("SOPInstanceUID", "1.2 <script>"),
    ("StudyInstanceUID", "../../x"),
    ("StudyInstanceUID", "1.2 <script>"),
    ("SeriesInstanceUID", "1.2.03.4"),  # a component with a leading zero
    ("SeriesInstanceUID", "1." + "2" * 64),  # 66 characters
    ("StudyInstanceUID", "1.2."),
    ("SeriesInstanceUID", "1..2"),
]


@pytest.mark.parametrize(("keyword", "value"), HOSTILE_UIDS)
def test_hostile_uids_are_refused(start_scp, tmp_path: Path, keyword: str,  # type: ignore[no-untyped-def]
                                  value: str) -> None:
    """Issue 12: UIDs such as ../../x or 1.2 <script> were stored and served back."""
    port = start_scp()
    ds = make_ct()
    request_uid = ds.SOPInstanceUID  # the C-STORE request names a valid UID; the data set not
    setattr(ds, keyword, value)
    path = part10_file(tmp_path / "x.dcm", sop_uid=request_uid, ts=ExplicitVRLittleEndian,
                       chunks=iter([body(ds)]))
    status = store(port, path, ExplicitVRLittleEndian)
    assert status.Status == 0xA900
    assert status.ErrorComment.startswith("Invalid "), status.ErrorComment
    assert not Instance.objects.exists()


def _truncated_before_uids() -> tuple[str, bytes]:
    ds = make_ct()
    data = body(ds)
    cut = data.index(b"Test^Patient"[:6])  # inside Patient's Name: (0010,0010) < (0020,...)
    return ds.SOPInstanceUID, data[:cut]


def _deflated_garbage() -> tuple[str, bytes]:
    return generate_uid(), os.urandom(4096)


def _bad_deflate_stream() -> tuple[str, bytes]:
    ds = make_ct()
    squeeze = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = squeeze.compress(body(ds)) + squeeze.flush()
    return ds.SOPInstanceUID, deflated[: len(deflated) // 2]


def _element_past_the_end() -> tuple[str, bytes]:
    ds = make_ct()
    return ds.SOPInstanceUID, body(ds) + b"\x09\x00\x10\x00OB\0\0\xff\xff\xff\x7fabc"


def _no_data_set() -> tuple[str, bytes]:
    return generate_uid(), b""


UNPARSEABLE = {
    "truncated before its UIDs": (_truncated_before_uids, ExplicitVRLittleEndian),
    "deflated garbage": (_deflated_garbage, DeflatedExplicitVRLittleEndian),
    "deflate stream cut short": (_bad_deflate_stream, DeflatedExplicitVRLittleEndian),
    "element longer than the data set": (_element_past_the_end, ExplicitVRLittleEndian),
    "empty data set": (_no_data_set, ExplicitVRLittleEndian),
}


@pytest.mark.parametrize("case", list(UNPARSEABLE))
def test_unparseable_is_cannot_understand(start_scp, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: unparseable data sets sometimes got 0xA700 (retry later) or 0xA900."""
    make, ts = UNPARSEABLE[case]
    port = start_scp()
    sop_uid, data = make()
    path = part10_file(tmp_path / "x.dcm", sop_uid=sop_uid, ts=ts, chunks=iter([data]))
    status = store(port, path, ts)
    assert f"0x{status.Status:04X}" == "0xC210", status
    assert status.ErrorComment
    assert not Instance.objects.exists()
