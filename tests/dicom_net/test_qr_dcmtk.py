"""Query/Retrieve with DCMTK as the peer: findscu at every level and with every kind of
matching in both models, movescu to a storescp the test starts, getscu (skip on a laptop
without DCMTK, fail under CI)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from archive import storage
from archive.models import Instance
from dicom_net.services import node_add
from tests.conftest import need_tool
from tests.helpers import dataset_bytes, seed_qr_archive

pytestmark = pytest.mark.interop


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.fixture
def seeded(live_scp: tuple[str, int]) -> dict[str, dict[str, str]]:
    return seed_qr_archive()  # type: ignore[return-value]


def findscu(addr: tuple[str, int], out: Path, model: str, level: str,
            **keys: str) -> list[Dataset]:
    """Run findscu -X and return the response identifiers it wrote."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    args = [need_tool("findscu"), "-X", "-od", str(out), f"-{model}", "-aet", "FINDSCU",
            "-aec", "RV_SCP", "-k", f"QueryRetrieveLevel={level}"]
    for keyword, value in keys.items():
        args += ["-k", f"{keyword}={value}"]
    result = _run(*args, addr[0], str(addr[1]))
    assert result.returncode == 0, result.stdout + result.stderr
    return [dcmread(p, force=True) for p in sorted(out.glob("rsp*.dcm"))]


def got(responses: list[Dataset], keyword: str) -> list[str]:
    return sorted(str(ds.get(keyword, "")) for ds in responses)


# (model, level, keys, returned keyword, expected values); "{study:A}" refers to seeded UIDs.
CASES = [
    # PATIENT level exists only in the Patient Root model
    ("P", "PATIENT", {"PatientID": "PQR2"}, "PatientName", ["Smith^John"]),
    ("P", "PATIENT", {"PatientName": "Doe*", "PatientID": ""}, "PatientID", ["PQR1", "PQR3"]),
    ("P", "PATIENT", {"PatientBirthDate": "19650101-19751231", "PatientID": ""}, "PatientID",
     ["PQR2"]),
    ("P", "PATIENT", {"PatientID": ""}, "PatientID", ["PQR1", "PQR2", "PQR3"]),
    ("P", "PATIENT", {"PatientID": "PQR?", "PatientName": ""}, "PatientName",
     ["Doe^Jane", "Smith^John", "doe^john"]),
]
for _model in ("P", "S"):
    CASES += [
        (_model, "STUDY", {"StudyDate": "20260210", "StudyInstanceUID": ""},
         "StudyInstanceUID", ["{study:B}"]),
        (_model, "STUDY", {"StudyDescription": "*o*", "AccessionNumber": ""},
         "AccessionNumber", ["ACC2"]),  # case-sensitive: not "Old"
        (_model, "STUDY", {"StudyDate": "20260101-20260131", "AccessionNumber": ""},
         "AccessionNumber", ["ACC1"]),
        (_model, "STUDY", {"StudyDate": "-20260131", "AccessionNumber": ""},
         "AccessionNumber", ["ACC1", "XYZ9"]),
        (_model, "STUDY", {"StudyDate": "20260101-", "AccessionNumber": ""},
         "AccessionNumber", ["ACC1", "ACC2"]),
        (_model, "STUDY", {"StudyInstanceUID": "{study:A}\\{study:B}", "AccessionNumber": ""},
         "AccessionNumber", ["ACC1", "ACC2"]),
        (_model, "STUDY", {"StudyInstanceUID": ""}, "StudyInstanceUID",
         ["{study:A}", "{study:B}", "{study:C}"]),
        (_model, "SERIES", {"StudyInstanceUID": "{study:A}", "Modality": "MR",
                            "SeriesInstanceUID": ""}, "SeriesInstanceUID", ["{series:mr}"]),
        (_model, "SERIES", {"SeriesDescription": "C? series", "SeriesInstanceUID": ""},
         "SeriesInstanceUID", ["{series:ct}", "{series:ct2}", "{series:ct3}"]),
        (_model, "SERIES", {"SeriesDate": "20260111-20260120", "Modality": ""}, "Modality",
         ["CT", "MR"]),
        (_model, "SERIES", {"SeriesInstanceUID": "{series:ct2}\\{series:ct3}", "Modality": ""},
         "Modality", ["CT", "CT"]),
        (_model, "SERIES", {"StudyInstanceUID": "{study:A}", "SeriesInstanceUID": ""},
         "SeriesInstanceUID", ["{series:ct}", "{series:mr}"]),
        (_model, "IMAGE", {"SeriesInstanceUID": "{series:ct}", "InstanceNumber": "2",
                           "SOPInstanceUID": ""}, "SOPInstanceUID", ["{sop:ct-2}"]),
        (_model, "IMAGE", {"PatientName": "doe^J*", "SOPInstanceUID": ""}, "SOPInstanceUID",
         ["{sop:ct-1}", "{sop:ct-2}", "{sop:ct3-5}", "{sop:mr-1}"]),
        (_model, "IMAGE", {"ContentDate": "20260116-", "InstanceNumber": ""}, "InstanceNumber",
         ["1", "1"]),
        (_model, "IMAGE", {"SOPInstanceUID": "{sop:ct-1}\\{sop:mr-1}", "InstanceNumber": ""},
         "InstanceNumber", ["1", "1"]),
        (_model, "IMAGE", {"SeriesInstanceUID": "{series:ct}", "SOPInstanceUID": ""},
         "SOPInstanceUID", ["{sop:ct-1}", "{sop:ct-2}"]),
    ]


def _fill(text: str, uids: dict[str, dict[str, str]]) -> str:
    for group, names in uids.items():
        for name, uid in names.items():
            text = text.replace(f"{{{group}:{name}}}", uid)
    return text


@pytest.mark.parametrize(("model", "level", "keys", "keyword", "expected"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{'-'.join(c[2])}-{i}" for i, c in
                              enumerate(CASES)])
def test_findscu_matching(live_scp: tuple[str, int], seeded: dict[str, dict[str, str]],
                          tmp_path: Path, model: str, level: str, keys: dict[str, str],
                          keyword: str, expected: list[str]) -> None:
    keys = {keyword: "", **{k: _fill(v, seeded) for k, v in keys.items()}}
    responses = findscu(live_scp, tmp_path, model, level, **keys)
    assert got(responses, keyword) == sorted(_fill(v, seeded) for v in expected)
    for ds in responses:
        # exactly the requested keys, plus the level and where to retrieve from
        assert {e.keyword for e in ds} == {*keys, "QueryRetrieveLevel", "RetrieveAETitle"}
        assert ds.QueryRetrieveLevel == level
        assert ds.RetrieveAETitle == "RV_SCP"


def test_findscu_counts_and_modalities(live_scp: tuple[str, int],
                                       seeded: dict[str, dict[str, str]],
                                       tmp_path: Path) -> None:
    (study,) = findscu(live_scp, tmp_path, "S", "STUDY", StudyInstanceUID=seeded["study"]["A"],
                       NumberOfStudyRelatedInstances="", NumberOfStudyRelatedSeries="",
                       ModalitiesInStudy="")
    assert study.NumberOfStudyRelatedInstances == 3
    assert study.NumberOfStudyRelatedSeries == 2
    assert list(study.ModalitiesInStudy) == ["CT", "MR"]
    (patient,) = findscu(live_scp, tmp_path, "P", "PATIENT", PatientID="PQR1",
                         NumberOfPatientRelatedStudies="", NumberOfPatientRelatedInstances="",
                         SpecificCharacterSet="")
    assert patient.NumberOfPatientRelatedStudies == 1
    assert patient.NumberOfPatientRelatedInstances == 3
    assert patient.SpecificCharacterSet == "ISO_IR 192"


def test_findscu_failures_carry_a_status_and_comment(
        live_scp: tuple[str, int], seeded: dict[str, dict[str, str]], settings,  # type: ignore[no-untyped-def]
        tmp_path: Path) -> None:
    findscu_bin = need_tool("findscu")
    bad = _run(findscu_bin, "-d", "-S", "-aec", "RV_SCP", "-k", "QueryRetrieveLevel=PATIENT",
               "-k", "PatientID=", *map(str, live_scp))
    assert "0xa900" in (bad.stdout + bad.stderr).lower(), bad.stdout + bad.stderr
    settings.RV_ACCEPT_UNKNOWN_AE = False
    node_add(name="sender", ae_title="FINDSCU", host="127.0.0.1", port=104, can_query=False)
    refused = _run(findscu_bin, "-d", "-S", "-aet", "FINDSCU", "-aec", "RV_SCP", "-k",
                   "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=", *map(str, live_scp))
    output = (refused.stdout + refused.stderr).lower()
    assert "0x0124" in output, output
    assert "may not query" in output, output


@pytest.fixture
def destination(storescp_peer) -> tuple[str, int, Path]:  # type: ignore[no-untyped-def]
    """DCMTK's storescp, bit-preserving; tests register it (or not) as a move destination."""
    port, out = storescp_peer("DEST")
    return "DEST", port, out


def assert_byte_identical(received: list[Path], expected_uids: set[str]) -> None:
    by_uid = {dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in received}
    assert set(by_uid) == expected_uids
    for uid, path in by_uid.items():
        kept = storage.absolute_path(Instance.objects.get(sop_instance_uid=uid).path)
        assert dataset_bytes(path.read_bytes()) == dataset_bytes(kept.read_bytes()), uid


@pytest.mark.parametrize("model", ["P", "S"])
def test_movescu_delivers_byte_identical_files(
        live_scp: tuple[str, int], seeded: dict[str, dict[str, str]],
        destination: tuple[str, int, Path], model: str) -> None:
    ae, port, out = destination
    node_add(name="dest", ae_title=ae, host="127.0.0.1", port=port, move_destination=True)
    keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={seeded['study']['A']}"]
    if model == "P":
        keys += ["-k", "PatientID=PQR1"]
    result = _run(need_tool("movescu"), "-d", f"-{model}", "-aem", ae, "-aec", "RV_SCP", *keys,
                  *map(str, live_scp))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"Completed Suboperations\s+: 3", output), output
    assert re.search(r"DIMSE Status\s+: 0x0000", output), output
    sops = seeded["sop"]
    assert_byte_identical(list(out.iterdir()), {sops["ct-1"], sops["ct-2"], sops["mr-1"]})


def test_movescu_to_an_unknown_destination_gets_a801(
        live_scp: tuple[str, int], seeded: dict[str, dict[str, str]],
        destination: tuple[str, int, Path]) -> None:
    ae, port, out = destination
    # registered, but not as a move destination: still unknown as one
    node_add(name="dest", ae_title=ae, host="127.0.0.1", port=port, move_destination=False)
    result = _run(need_tool("movescu"), "-d", "-S", "-aem", ae, "-aec", "RV_SCP",
                  "-k", "QueryRetrieveLevel=STUDY",
                  "-k", f"StudyInstanceUID={seeded['study']['B']}", *map(str, live_scp))
    output = (result.stdout + result.stderr).lower()
    assert "0xa801" in output, output
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("model", ["P", "S"])
def test_getscu_retrieves_on_the_same_association(
        live_scp: tuple[str, int], seeded: dict[str, dict[str, str]], tmp_path: Path,
        model: str) -> None:
    out = tmp_path / "got"
    out.mkdir()
    keys = ["-k", "QueryRetrieveLevel=SERIES", "-k", f"SeriesInstanceUID={seeded['series']['ct']}"]
    if model == "P":
        keys += ["-k", "PatientID=PQR1", "-k", f"StudyInstanceUID={seeded['study']['A']}"]
    result = _run(need_tool("getscu"), "-v", f"-{model}", "+B", "-od", str(out), "-aec",
                  "RV_SCP", *keys, *map(str, live_scp))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    sops = seeded["sop"]
    assert_byte_identical(list(out.iterdir()), {sops["ct-1"], sops["ct-2"]})
