"""Tolerances as plain values for verification (pure: no ORM). A beam with no tolerance
table is checked with zero tolerance."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class Tolerances:
    gantry_angle: float = 0.0
    collimator_angle: float = 0.0
    couch_angle: float = 0.0
    table_top_vertical: float = 0.0
    table_top_longitudinal: float = 0.0
    table_top_lateral: float = 0.0
    jaw_x: float = 0.0
    jaw_y: float = 0.0
    mlc: float = 0.0
    meterset: float = 0.0

    @classmethod
    def from_values(cls, values: dict[str, Any] | None) -> Tolerances:
        """From a table's values; a missing table or value is zero tolerance."""
        values = values or {}
        return cls(**{f.name: float(values.get(f.name) or 0.0) for f in fields(cls)})
