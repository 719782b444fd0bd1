"""Properties of rv.dose: coefficient interpolation (PS3.3 C.8.8.14.7, C.8.8.21.2) and the
sessions of a fraction adding up to the whole fraction's dose."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rv import dose

unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def curves(draw, *, monotone: bool = True):  # type: ignore[no-untyped-def]
    """A cumulative coefficient curve: weights 0 .. final (repeats allowed, as at the segment
    boundaries of a step-and-shoot beam), coefficients from 0, non-decreasing if monotone."""
    n = draw(st.integers(2, 12))
    final = draw(st.floats(0.01, 1000.0, allow_nan=False))
    steps = sorted(draw(st.lists(unit, min_size=n - 2, max_size=n - 2)))
    weights = [0.0, *(s * final for s in steps), final]
    raw = draw(st.lists(st.floats(0.0, 2.0, allow_nan=False), min_size=n - 1, max_size=n - 1))
    if monotone:
        coefficients = [0.0]
        for r in raw:
            coefficients.append(coefficients[-1] + r)
    else:
        coefficients = [0.0, *raw]
    return list(zip(weights, coefficients, strict=True)), final


@settings(max_examples=200, deadline=None)
@given(curve=curves(), a=unit, b=unit)
def test_interpolation_is_monotone_and_bounded(curve, a, b) -> None:  # type: ignore[no-untyped-def]
    points, final = curve
    lo, hi = sorted((a, b))
    ca, cb = (dose.coefficient_at(points, x * final) for x in (lo, hi))
    assert ca <= cb + 1e-12
    first, last = points[0][1], points[-1][1]
    assert first - 1e-12 <= ca <= last + 1e-12 and first - 1e-12 <= cb <= last + 1e-12


@settings(max_examples=200, deadline=None)
@given(curve=curves(monotone=False))
def test_exact_at_control_points(curve) -> None:  # type: ignore[no-untyped-def]
    points, _final = curve
    for i, (w, c) in enumerate(points):
        if i + 1 < len(points) and points[i + 1][0] == w:
            continue  # a repeated weight: the later point holds (the segment is complete)
        assert dose.coefficient_at(points, w) == c


@settings(max_examples=200, deadline=None)
@given(curve=curves(), beam_dose=st.floats(0.0, 10.0, allow_nan=False),
       cuts=st.lists(unit, max_size=6))
def test_continuations_add_up_to_the_whole_fraction(curve, beam_dose, cuts) -> None:  # type: ignore[no-untyped-def]
    """A fraction stopped at any points and continued from there: each session's dose is
    f(after) - f(before), none is negative, and together they make the whole fraction."""
    points, final = curve
    contribution = dose.from_coefficients(beam_dose=beam_dose, curve=points, final_weight=final)
    assert contribution is not None
    specified = 250.0
    stops = [0.0, *sorted(c * specified for c in cuts), specified]
    sessions = dose.session_doses(
        {1: {7: contribution}},
        [],  # no part: every tracked reference gets 0 from an empty session
        [7])
    assert sessions == {7: 0.0}
    parts = []
    for before, after in zip(stops, stops[1:], strict=False):
        got = dose.session_doses({1: {7: contribution}},
                                 [dose.Delivered(1, specified, before, after - before)], [7])[7]
        assert got is not None and got >= -1e-12
        parts.append(got)
    whole = beam_dose * points[-1][1]
    assert math.fsum(parts) == pytest.approx(whole, rel=1e-9, abs=1e-12)
    assert contribution.dose == pytest.approx(whole, rel=1e-12, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(curve=curves(), beam_dose=st.floats(0.0, 10.0, allow_nan=False), x=unit)
def test_a_partial_fraction_is_never_more_than_the_whole(curve, beam_dose, x) -> None:  # type: ignore[no-untyped-def]
    points, final = curve
    c = dose.from_coefficients(beam_dose=beam_dose, curve=points, final_weight=final)
    assert c is not None
    assert 0.0 <= c.at(x) <= c.dose + 1e-12


@settings(max_examples=100, deadline=None)
@given(curve=curves(), beam_dose=st.floats(0.01, 10.0, allow_nan=False),
       over=st.floats(1.0, 3.0, allow_nan=False))
def test_an_over_delivery_is_counted_in_proportion_not_dropped(curve, beam_dose, over) -> None:  # type: ignore[no-untyped-def]
    points, final = curve
    c = dose.from_coefficients(beam_dose=beam_dose, curve=points, final_weight=final)
    assert c is not None
    assert c.at(over) == pytest.approx(c.dose * over)
    assert c.at(over) >= c.dose


@settings(max_examples=100, deadline=None)
@given(curve=curves(), reference_dose=st.floats(0.01, 10.0, allow_nan=False), x=unit)
def test_a_per_reference_beam_dose_needs_no_coefficient(curve, reference_dose, x) -> None:  # type: ignore[no-untyped-def]
    points, final = curve
    assume(points[-1][1] > 0)
    plain = dose.from_reference_dose(reference_dose=reference_dose)
    shaped = dose.from_reference_dose(reference_dose=reference_dose, curve=points,
                                      final_weight=final)
    assert plain.dose == pytest.approx(reference_dose)
    assert shaped.dose == pytest.approx(reference_dose)
    assert plain.at(x) == pytest.approx(reference_dose * x)
    assert 0.0 <= shaped.at(x) <= reference_dose * (1 + 1e-9)


def test_a_reference_without_a_contribution_is_not_tracked() -> None:
    c = dose.from_coefficients(beam_dose=0.5, curve=[(0, 0), (1, 0.9)], final_weight=1)
    assert c is not None
    plan = {1: {1: c}, 2: {}}  # beam 2 gives reference 1 nothing
    assert not dose.tracked(plan, 1) and dose.fraction_dose(plan, 1) is None
    assert dose.session_doses(plan, [dose.Delivered(1, 100, 0, 100)], [1, 2]) == {
        1: None, 2: None}
    assert dose.from_coefficients(beam_dose=None, curve=[(0, 0), (1, 1)], final_weight=1) is None
    assert dose.from_coefficients(beam_dose=1, curve=[(0.5, 0), (0.2, 1)],
                                  final_weight=1) is None  # weights run backwards


def test_a_curve_given_only_at_later_points_starts_from_zero() -> None:
    """PS3.3 C.8.8.14.7: the coefficient is by definition 0 at the initial control point."""
    c = dose.from_coefficients(beam_dose=2.0, curve=[(0.5, 0.4), (1.0, 0.8)], final_weight=1)
    assert c is not None
    assert (c.at(0.25), c.at(0.5), c.at(1.0)) == (pytest.approx(0.4), pytest.approx(0.8),
                                                  pytest.approx(1.6))
