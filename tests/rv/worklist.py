"""Worklist fixtures for the rv tests: steps made the real way (an approved plan scheduled on a
TDW-II machine: rv.services.schedule -> rv.services.workitems.worklist_sync)."""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import pytest

from rv.models import Plan

try:
    importlib.import_module("rv.records.delivery_instruction")
    HAVE_INSTRUCTION = True
except ImportError:  # written on another branch; until it lands, a stand-in below
    HAVE_INSTRUCTION = False


def _stand_in() -> types.ModuleType:
    """rv.records.delivery_instruction until the real one lands: no beam tasks, and the
    plan's own archive instance as the "instruction" (enough for the step's inputs)."""
    module = types.ModuleType("rv.records.delivery_instruction")

    def beam_tasks(*, state: Any, fraction_number: int) -> tuple[list[Any], list[Any]]:
        return [], []

    def delivery_instruction_store(*, plan: Plan, fraction_number: int, tasks: Any,
                                   omitted: Any) -> Any:
        return plan.instance

    module.beam_tasks = beam_tasks  # type: ignore[attr-defined]
    module.delivery_instruction_store = delivery_instruction_store  # type: ignore[attr-defined]
    return module


@pytest.fixture
def delivery_instruction(monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery instruction worklist_sync stores with each step: the real module when
    this branch has it, else the stand-in."""
    if not HAVE_INSTRUCTION:
        monkeypatch.setitem(sys.modules, "rv.records.delivery_instruction", _stand_in())
