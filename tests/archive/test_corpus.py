"""Every file of ../shared/corpus is stored, or refused with a clear reason.

Each file goes into an empty archive through the same door as a C-STORE; the corpus is
absent from a user's clone (the tests skip, saying so) but never under CI (they fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive.dicomio import ensure_part10
from archive.errors import StoreError
from archive.models import Instance
from dicom_net.management.commands.import_dicom import ACCEPTED, import_file
from tests.conftest import CORPUS, corpus_files, need

FILES = corpus_files()
# Files the archive refuses, and the words its reason must contain.
EXPECTED_REFUSALS = {
    # A Varian-private SOP class (Halcyon plan, ARIA 15.5): not a class Verity stores.
    "pps_halcyon_plan_RP.1.2.246.352.71.5.818656424269.463732.20180308211117.dcm":
        "is not one this archive stores",
    # Leksell GammaPlan: fraction group 0 lists no beams, so no shot has a meterset.
    "pps_GK_test_data_gkdosefile_RTPLAN.dcm": "RT Plan rejected",
    "pps_GK_test_data_plan_test_GK_PLAN_DICOM_NOME_NENHUM_SEMID_20170825_000000_Series_000_"
    "RTPLAN_1.3.6.1.4.1.5962.99.1.806143395.770388248.1521224598947.2.0.dcm": "RT Plan rejected",
    # Eclipse 8.1 (SlicerRT PROS): a CBCT imaging field exported as a TREATMENT beam, no MU.
    "slicerrt_RP.1.2.246.352.71.5.2088656855.377401.20110920153647.dcm": "RT Plan rejected",
    # pytg43's HDR example: Study Instance UID "UNKNOWN" is no UID (PS3.5 9.1; issue 12).
    "pytg43_examples__HDR__RP.HDR.dcm": "Invalid Study Instance UID",
}


def test_corpus_is_present() -> None:
    need(bool(FILES), f"the shared corpus is not at {CORPUS}")
    assert len(FILES) > 100


@pytest.mark.django_db
@pytest.mark.parametrize("path", FILES, ids=[p.name[:60] for p in FILES])
def test_corpus_file_stored_or_refused_clearly(path: Path) -> None:
    expected = EXPECTED_REFUSALS.get(path.name)
    if expected is None:
        assert import_file(path) == "stored"
        inst = Instance.objects.get()
        assert inst.sop_class_uid in ACCEPTED
        assert inst.size == len(ensure_part10(path.read_bytes()))
    else:
        with pytest.raises(StoreError) as err:
            import_file(path)
        assert expected in err.value.comment
        assert not Instance.objects.exists()
