"""instance_store: durable, indexed, idempotent, and nothing left behind when refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from archive import storage
from archive.dicomio import ensure_part10
from archive.errors import CannotUnderstand, DatasetMismatch, DuplicateConflict, OutOfResources
from archive.models import Instance, Patient, Series, Study
from archive.services import instance_store
from tests.helpers import make_ct, sample, to_bytes

pytestmark = pytest.mark.django_db


def _files(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "dicom").rglob("*") if p.is_file())


def test_store_indexes_every_level_and_keeps_the_bytes(data_dir: Path) -> None:
    data = to_bytes(make_ct(patient_id="P7", patient_name="Doe^Ann"))
    result = instance_store(data=data, calling_ae="TPS1")
    assert result.outcome == "stored"
    inst = Instance.objects.select_related("series__study__patient").get()
    assert inst.series.study.patient.patient_id == "P7"
    assert inst.series.study.patient.patient_name == "Doe^Ann"
    assert str(inst.series.study.patient.birth_date) == "1960-01-01"
    assert inst.series.modality == "CT"
    assert inst.series.study.accession_number == "A123"
    assert (inst.calling_ae, inst.size) == ("TPS1", len(data))
    assert inst.sha256 == hashlib.sha256(data).hexdigest()
    assert storage.absolute_path(inst.path).read_bytes() == data
    assert [p.name for p in _files(data_dir)] == [f"{inst.sha256}.dcm"]


def test_same_object_again_is_a_duplicate_that_writes_nothing(data_dir: Path) -> None:
    data = to_bytes(make_ct())
    first = instance_store(data=data)
    # The file is not rewritten: same inode, same bytes (its mtime moves forward: a reuse
    # marks the file so that a failing store does not remove it, see storage.place).
    before = [(p, p.stat().st_ino, p.read_bytes()) for p in _files(data_dir)]
    again = instance_store(data=data)
    assert (first.outcome, again.outcome) == ("stored", "duplicate")
    assert again.instance.pk == first.instance.pk
    assert Instance.objects.count() == 1
    assert [(p, p.stat().st_ino, p.read_bytes()) for p in _files(data_dir)] == before


def test_different_object_under_a_held_uid_is_refused_and_original_kept(
        data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    uid = generate_uid()
    original = to_bytes(make_ct(sop_uid=uid, patient_name="First^Version"))
    instance_store(data=original)
    changed = to_bytes(make_ct(sop_uid=uid, patient_name="Second^Version"))
    with pytest.raises(DuplicateConflict) as err:
        instance_store(data=changed)
    assert err.value.status == 0x0111
    assert uid in err.value.comment
    inst = Instance.objects.get()
    assert storage.absolute_path(inst.path).read_bytes() == original
    assert len(_files(data_dir)) == 1
    assert "refused a different object" in caplog.text


def test_truncated_file_is_refused_with_nothing_left(data_dir: Path) -> None:
    with pytest.raises(CannotUnderstand) as err:
        instance_store(data=sample("rtplan_truncated.dcm").read_bytes())
    assert 0xC000 <= err.value.status <= 0xCFFF
    assert Instance.objects.count() == Patient.objects.count() == 0
    assert _files(data_dir) == []


def test_missing_sop_instance_uid_is_refused(data_dir: Path) -> None:
    ct = make_ct()
    del ct.SOPInstanceUID
    with pytest.raises(DatasetMismatch, match="Missing SOP Instance UID") as err:
        instance_store(data=to_bytes(ct))
    assert err.value.status == 0xA900
    assert Instance.objects.count() == 0 and _files(data_dir) == []


def test_sop_class_not_matching_the_context_is_refused(data_dir: Path) -> None:
    from pynetdicom.sop_class import RTPlanStorage

    with pytest.raises(DatasetMismatch, match="SOP Class mismatch"):
        instance_store(data=to_bytes(make_ct()), expected_sop_class=RTPlanStorage)
    assert Instance.objects.count() == 0 and _files(data_dir) == []


def test_unwritable_storage_is_out_of_resources_with_no_row(settings, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the archive folder should be")
    settings.RV_DATA_DIR = blocker  # even root cannot create folders under a file
    with pytest.raises(OutOfResources) as err:
        instance_store(data=to_bytes(make_ct()))
    assert err.value.status == 0xA700
    assert Instance.objects.count() == Patient.objects.count() == 0
    assert blocker.read_text().startswith("a file")


def test_failure_inside_the_transaction_removes_the_new_file(data_dir: Path) -> None:
    def refuse(instance: Instance, ds: object) -> None:
        raise DatasetMismatch("refused by the clinical domain")

    with pytest.raises(DatasetMismatch):
        instance_store(data=to_bytes(make_ct()), on_indexed=refuse)
    assert Instance.objects.count() == Study.objects.count() == Series.objects.count() == 0
    assert Patient.objects.count() == 0
    assert _files(data_dir) == []


def test_study_of_another_patient_is_a_patient_mismatch(data_dir: Path) -> None:
    study = generate_uid()
    instance_store(data=to_bytes(make_ct(patient_id="A", study_uid=study)))
    with pytest.raises(DatasetMismatch, match="Patient mismatch"):
        instance_store(data=to_bytes(make_ct(patient_id="B", study_uid=study)))
    assert Instance.objects.count() == 1 and len(_files(data_dir)) == 1


def test_series_and_study_are_shared_by_their_instances() -> None:
    study, series = generate_uid(), generate_uid()
    for _ in range(3):
        instance_store(data=to_bytes(make_ct(study_uid=study, series_uid=series)))
    assert (Patient.objects.count(), Study.objects.count(), Series.objects.count(),
            Instance.objects.count()) == (1, 1, 1, 3)


def test_hostile_uid_cannot_steer_the_path(data_dir: Path) -> None:
    result = instance_store(data=to_bytes(make_ct(sop_uid="1.2.3")))
    path = storage.absolute_path(result.instance.path).resolve()
    assert path.is_relative_to(data_dir.resolve())
    assert "1.2.3" not in path.name


@pytest.mark.parametrize("name", ["rtplan.dcm", "rtstruct.dcm", "rtdose.dcm", "CT_small.dcm"])
def test_pydicom_rt_samples_store(name: str) -> None:
    data = ensure_part10(sample(name).read_bytes())
    assert instance_store(data=data, source="import").outcome == "stored"


def test_same_content_in_another_encoding_is_a_duplicate(data_dir: Path) -> None:
    """Another peer may re-encode an object (DCMTK does): same elements, other bytes."""
    import io

    from pydicom.uid import ImplicitVRLittleEndian

    ct = make_ct()
    explicit = to_bytes(ct)
    first = instance_store(data=explicit)
    ct.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buf = io.BytesIO()
    ct.save_as(buf, implicit_vr=True, little_endian=True, enforce_file_format=True)
    implicit = buf.getvalue()
    assert implicit != explicit
    again = instance_store(data=implicit)
    assert (again.outcome, again.instance.pk) == ("duplicate", first.instance.pk)
    assert storage.absolute_path(first.instance.path).read_bytes() == explicit
    assert len(_files(data_dir)) == 1


def test_same_header_other_pixels_is_a_conflict() -> None:
    ct = make_ct()
    instance_store(data=to_bytes(ct))
    ct.PixelData = b"\x01" * len(ct.PixelData)
    with pytest.raises(DuplicateConflict):
        instance_store(data=to_bytes(ct))
