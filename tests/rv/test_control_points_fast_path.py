"""The raw control point reader gives exactly what pydicom's Datasets give."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.uid import ImplicitVRLittleEndian

from archive.dicomio import ensure_part10
from rv.plan_control_points import carry_forward as _carry_forward
from rv.plan_control_points import dose_curves as _dose_curves
from rv.plan_control_points import rows_pydicom as _rows_pydicom
from rv.plan_control_points import rows_raw as _rows_raw
from tests.conftest import corpus_files
from tests.rv.plans import part10, vmat_plan


def _beams(data: bytes):  # type: ignore[no-untyped-def]
    ds = dcmread(io.BytesIO(data))
    ion = "IonBeamSequence" in ds
    return [(b, "IonControlPointSequence" if ion else "ControlPointSequence")
            for b in ds.get("IonBeamSequence" if ion else "BeamSequence") or []]


def _same(data: bytes) -> int:
    fast = 0
    for (beam, keyword), (again, _) in zip(_beams(data), _beams(data), strict=True):
        raw = _rows_raw(beam, tag_for_keyword(keyword))
        slow = _rows_pydicom(again, keyword)
        if raw is None:
            continue
        fast += 1
        a, b = _carry_forward(raw, "beam", 0), _carry_forward(slow, "beam", 0)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert _dose_curves(raw, a["weight"]) == _dose_curves(slow, b["weight"])
    return fast


def test_generated_vmat_explicit_and_implicit_vr() -> None:
    ds = vmat_plan(arcs=2, control_points=30, leaf_pairs=60)
    assert _same(part10(ds)) == 2
    beam = dcmread(io.BytesIO(part10(ds))).BeamSequence[0]
    rows = _rows_raw(beam, tag_for_keyword("ControlPointSequence"))
    assert rows is not None  # the fast path read the coefficients too
    curve = _dose_curves(rows, _carry_forward(rows, "beam", 0)["weight"])[1]
    assert len(curve) == 30 and curve[-1] == (1.0, 1.0)
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=True, little_endian=True, enforce_file_format=True)
    assert _same(buf.getvalue()) == 2


@pytest.mark.corpus
@pytest.mark.parametrize("path", corpus_files("rtplan") + corpus_files("rtionplan"),
                         ids=lambda p: p.name[:60])
def test_corpus_plans(path: Path) -> None:
    _same(ensure_part10(path.read_bytes()))
