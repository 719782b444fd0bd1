"""Property: whatever a plan's later control points omit is carried forward from the last
point that gave it (PS3.3 C.8.8.14.5), on both the raw and the pydicom reading paths."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread

from rv.plan_parse import plan_parse
from tests.rv.plans import part10, vmat_plan

angle = st.one_of(st.none(), st.integers(0, 3599).map(lambda a: a / 10))


@settings(max_examples=40, deadline=None)
@given(gantry=st.lists(angle, min_size=2, max_size=12), couch=st.lists(angle, min_size=2,
                                                                        max_size=12),
       drop_mlc=st.lists(st.booleans(), min_size=12, max_size=12))
def test_omitted_values_carry_forward(gantry, couch, drop_mlc) -> None:  # type: ignore[no-untyped-def]
    n = min(len(gantry), len(couch))
    gantry, couch = [10.0, *gantry[1:n]], [0.0, *couch[1:n]]
    ds = vmat_plan(arcs=1, control_points=n, leaf_pairs=2)
    cps = ds.BeamSequence[0].ControlPointSequence
    for i, cp in enumerate(cps):
        for keyword, values in (("GantryAngle", gantry), ("PatientSupportAngle", couch)):
            if values[i] is None:
                if keyword in cp:
                    delattr(cp, keyword)
            else:
                setattr(cp, keyword, values[i])
        if i and drop_mlc[i]:
            del cp.BeamLimitingDevicePositionSequence
    expected_mlc = []
    for i, cp in enumerate(cps):
        if "BeamLimitingDevicePositionSequence" in cp:
            mlc = cp.BeamLimitingDevicePositionSequence[-1].LeafJawPositions
            expected_mlc.append([float(v) for v in mlc])
        else:
            expected_mlc.append(expected_mlc[-1])

    def carried(values: list[float | None]) -> list[float]:
        out: list[float] = []
        for v in values:
            out.append(v if v is not None else out[-1])
        return out

    data = part10(ds)
    for raw_path in (True, False):
        parsed_ds = dcmread(io.BytesIO(data))
        if not raw_path:  # touching the sequence makes pydicom Datasets: the fallback path
            _ = parsed_ds.BeamSequence[0].ControlPointSequence[0]
        cp = plan_parse(parsed_ds).beams[0].control_points
        np.testing.assert_array_equal(cp["gantry"], carried(gantry))
        np.testing.assert_array_equal(cp["couch"], carried(couch))
        np.testing.assert_array_equal(cp["mlc"], expected_mlc)
        np.testing.assert_array_equal(cp["jaw_x"], [[-50.0, 50.0]] * n)
