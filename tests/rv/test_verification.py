"""The verification rules one by one, with property tests for the arithmetic."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rv import verification as v

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
angles = st.floats(min_value=-720, max_value=720, allow_nan=False)
mu = st.floats(min_value=0.01, max_value=5000, allow_nan=False)


# --- angles -------------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b", "expected"), [
    (359, 1, 2), (1, 359, 2), (0, 180, 180), (90, 270, 180), (10, 10, 0), (-5, 5, 10),
    (360, 0, 0), (725, 5, 0), (179.5, 180.5, 1),
])
def test_angle_difference_examples(a: float, b: float, expected: float) -> None:
    assert v.angle_difference(a, b) == pytest.approx(expected)


@given(angles, angles)
def test_angle_difference_is_symmetric_and_bounded(a: float, b: float) -> None:
    d = v.angle_difference(a, b)
    assert 0 <= d <= 180
    assert d == pytest.approx(v.angle_difference(b, a), abs=1e-9)


@given(angles, angles, st.integers(min_value=-3, max_value=3))
def test_angle_difference_ignores_whole_turns(a: float, b: float, turns: int) -> None:
    assert v.angle_difference(a + 360 * turns, b) == pytest.approx(v.angle_difference(a, b),
                                                                   abs=1e-6)


@given(st.floats(min_value=0, max_value=360), st.floats(min_value=0, max_value=10),
       st.floats(min_value=0, max_value=10))
def test_gantry_within_tolerance_across_zero(planned: float, tol: float, offset: float) -> None:
    actual = (planned + offset) % 360
    violations = v.check_machine_parameters(
        beam="B1", planned=v.MachineSetting(gantry_angle=planned),
        actual=v.MachineSetting(gantry_angle=actual), tolerance=v.Tolerance(gantry_angle=tol))
    assert bool(violations) == (offset > tol + 1e-6) or abs(offset - tol) < 1e-6


def test_gantry_359_against_1_is_two_degrees() -> None:
    planned, actual = v.MachineSetting(gantry_angle=1.0), v.MachineSetting(gantry_angle=359.0)
    assert not v.check_machine_parameters(beam="B1", planned=planned, actual=actual,
                                          tolerance=v.Tolerance(gantry_angle=2.0))
    out = v.check_machine_parameters(beam="B1", planned=planned, actual=actual,
                                     tolerance=v.Tolerance(gantry_angle=1.0))
    assert [(x.rule, x.planned, x.actual, x.tolerance) for x in out] == [
        (v.MACHINE_PARAMETER, 1.0, 359.0, 1.0)]


def test_no_table_means_zero_tolerance() -> None:
    out = v.check_machine_parameters(
        beam="B1", planned=v.MachineSetting(couch_angle=0.0, table_top_vertical=-120.0),
        actual=v.MachineSetting(couch_angle=0.5, table_top_vertical=-120.0),
        tolerance=v.ZERO_TOLERANCE)
    assert len(out) == 1 and "couch angle" in out[0].parameter


def test_positions_jaws_and_leaves() -> None:
    planned = v.MachineSetting(table_top_lateral=10.0, jaw_x=(-50.0, 50.0),
                               mlc=(-10.0, -10.0, 10.0, 10.0))
    actual = v.MachineSetting(table_top_lateral=13.0, jaw_x=(-50.0, 51.5),
                              mlc=(-10.0, -9.0, 10.0, 10.0))
    tol = v.Tolerance(table_top_lateral=5.0, jaw_x=1.0, mlc=2.0)
    out = v.check_machine_parameters(beam="B1", planned=planned, actual=actual, tolerance=tol)
    assert [x.parameter for x in out] == ["B1: jaw_x"]
    wrong_count = v.check_machine_parameters(
        beam="B1", planned=planned, actual=v.MachineSetting(mlc=(0.0,)), tolerance=tol)
    assert "positions recorded" in wrong_count[0].message


def test_unrecorded_parameters_are_not_checked() -> None:
    assert not v.check_machine_parameters(beam="B1", planned=v.MachineSetting(gantry_angle=90),
                                          actual=v.MachineSetting(), tolerance=v.ZERO_TOLERANCE)


# --- meterset and partial fractions -------------------------------------------------------

def test_meterset_exact_passes_and_over_fails() -> None:
    assert not v.check_meterset(beam="B1", specified=100, delivered_before=(), delivered=100,
                                complete=True, tolerance=0)
    over = v.check_meterset(beam="B1", specified=100, delivered_before=(), delivered=102,
                            complete=True, tolerance=1)
    assert [(x.rule, x.planned, x.actual, x.tolerance) for x in over] == [
        (v.METERSET, 100, 102, 1)]


def test_normal_end_must_deliver_what_is_left() -> None:
    short = v.check_meterset(beam="B1", specified=100, delivered_before=(), delivered=90,
                             complete=True, tolerance=1)
    assert "completed normally" in short[0].message


def test_early_stop_may_deliver_less_then_continuation_finishes() -> None:
    assert not v.check_meterset(beam="B1", specified=100, delivered_before=(), delivered=37.5,
                                complete=False, tolerance=0)
    assert v.remaining_meterset(specified=100, delivered_before=[37.5]) == 62.5
    assert not v.check_meterset(beam="B1", specified=100, delivered_before=(37.5,),
                                delivered=62.5, complete=True, tolerance=0)
    too_much = v.check_meterset(beam="B1", specified=100, delivered_before=(37.5,),
                                delivered=70, complete=True, tolerance=1)
    assert too_much and too_much[0].planned == 62.5


@given(mu, st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=6))
def test_partial_sessions_sum_to_the_specified_meterset(specified: float,
                                                        shares: list[float]) -> None:
    """Stopping anywhere and continuing from what is left always adds up (C.8.8.21.2)."""
    assume(sum(shares) > 0)
    total = sum(shares)
    parts = [specified * s / total for s in shares]
    before: list[float] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last:
            part = v.remaining_meterset(specified=specified, delivered_before=before)
        assert not v.check_meterset(beam="B", specified=specified, delivered_before=before,
                                    delivered=part, complete=last, tolerance=0), (before, part)
        before.append(part)
    assert sum(before) == pytest.approx(specified, rel=1e-9)
    assert v.remaining_meterset(specified=specified, delivered_before=before) == \
        pytest.approx(0, abs=1e-6)


@given(mu, st.floats(min_value=0, max_value=50), st.floats(min_value=0, max_value=100))
def test_meterset_tolerance_is_a_band(specified: float, tol: float, delta: float) -> None:
    out = v.check_meterset(beam="B", specified=specified, delivered_before=(),
                           delivered=specified + delta, complete=True, tolerance=tol)
    if delta <= tol * (1 - 1e-9):
        assert not out
    if delta > tol * (1 + 1e-6) + 1e-6:
        assert out


def test_negative_meterset() -> None:
    assert v.check_meterset(beam="B", specified=10, delivered_before=(), delivered=-1,
                            complete=False, tolerance=0)


# --- plan, machine, count, interval, dose -------------------------------------------------

def test_plan_must_be_approved() -> None:
    assert not v.check_plan_status(status="APPROVED")
    assert v.check_plan_status(status="ON_HOLD")[0].rule == v.PLAN_NOT_APPROVED


def test_machine_must_match_case_insensitively() -> None:
    assert not v.check_machine(beam="B", planned="TrueBeam1", actual="TRUEBEAM1")
    assert v.check_machine(beam="B", planned="LINAC1", actual="LINAC2")[0].actual == "LINAC2"


@pytest.mark.parametrize(("n", "planned", "ok"), [(1, 30, True), (30, 30, True),
                                                  (31, 30, False), (0, 30, False),
                                                  (5, None, True)])
def test_fraction_number(n: int, planned: int | None, ok: bool) -> None:
    assert (not v.check_fraction_number(fraction_number=n, fractions_planned=planned)) == ok


def test_interval() -> None:
    day = timedelta(hours=6)
    assert not v.check_interval(last_fraction_at=None, now=NOW, minimum=day)
    assert not v.check_interval(last_fraction_at=NOW - timedelta(hours=7), now=NOW, minimum=day)
    out = v.check_interval(last_fraction_at=NOW - timedelta(hours=2), now=NOW, minimum=day)
    assert out[0].rule == v.FRACTION_INTERVAL and out[0].actual == 2.0


def test_cumulative_dose() -> None:
    ok = v.DoseReferenceState(1, "PTV", 60.0, 58.0, 2.0)
    over = v.DoseReferenceState(2, "Cord", 45.0, 44.0, 1.5)
    unlimited = v.DoseReferenceState(3, "Point", None, 100.0, 2.0)
    out = v.check_cumulative_dose(references=[ok, over, unlimited])
    assert [(x.rule, x.parameter, x.actual) for x in out] == [
        (v.CUMULATIVE_DOSE, "Cord: cumulative dose (Gy)", 45.5)]


def test_delivered_dose_scales_with_meterset() -> None:
    assert v.delivered_dose(beam_dose=1.0, specified=200, delivered=100) == 0.5
    assert v.delivered_dose(beam_dose=None, specified=200, delivered=100) == 0.0


def _facts(**changes: object) -> v.SessionFacts:
    beam = v.BeamDelivery(beam="B1", planned_machine="LINAC1", specified_meterset=100,
                          delivered_before=(), delivered_meterset=100, complete=True,
                          tolerance=v.Tolerance(meterset=1, gantry_angle=1),
                          planned_setting=v.MachineSetting(gantry_angle=0),
                          actual_setting=v.MachineSetting(gantry_angle=359.5))
    base = dict(plan_status="APPROVED", machine="LINAC1", fraction_number=3,
                fractions_planned=30, last_fraction_at=NOW - timedelta(days=1), now=NOW,
                minimum_interval=timedelta(hours=6), beams=(beam,),
                dose_references=(v.DoseReferenceState(1, "PTV", 70, 4, 2),))
    base.update(changes)
    return v.SessionFacts(**base)  # type: ignore[arg-type]


def test_verify_session_clean() -> None:
    assert v.verify_session(_facts()) == []


def test_verify_session_collects_every_violation() -> None:
    out = v.verify_session(_facts(plan_status="ON_HOLD", machine="LINAC2", fraction_number=31,
                                  last_fraction_at=NOW - timedelta(hours=1)))
    assert {x.rule for x in out} == {v.PLAN_NOT_APPROVED, v.WRONG_MACHINE, v.FRACTION_COUNT,
                                     v.FRACTION_INTERVAL}
    assert all(x.message for x in out)
    assert out[0].as_dict()["rule"] == v.PLAN_NOT_APPROVED


def test_continuation_is_not_held_by_the_interval() -> None:
    facts = _facts(last_fraction_at=NOW - timedelta(minutes=20), continuation=True)
    assert v.verify_session(facts) == []


def test_violation_names_its_beam_and_key() -> None:
    facts = v.SessionFacts(
        plan_status="APPROVED", machine="LINAC", fraction_number=2, fractions_planned=5,
        last_fraction_at=None, now=datetime(2026, 1, 1), minimum_interval=timedelta(hours=6),
        beams=(v.BeamDelivery(beam="Beam 1", planned_machine="LINAC", specified_meterset=100,
                              delivered_before=(), delivered_meterset=110, complete=True),))
    (found,) = v.verify_session(facts)
    assert found.subject == "Beam 1" and found.as_dict()["subject"] == "Beam 1"
    assert found.key() == "meterset|Beam 1: meterset (MU)=110"
    assert dataclasses.replace(found, actual=110.0).key() == found.key()
    interval = v.check_interval(last_fraction_at=datetime(2026, 1, 1), now=datetime(2026, 1, 1, 1),
                                minimum=timedelta(hours=6))[0]
    assert interval.key() == "fraction_interval|hours since the last fraction"  # clock-free
