"""The safety case (docs/safety.md) names its proofs by test id: every id it names must be a
test that exists, and every test of the safety-core files must be named there. Rename or
delete a test and this fails until the safety case says what proves the rule now."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "safety.md"
# tests/dir/file.py::test_name, optionally with a parametrisation: ::test_name[case]
TEST_ID = re.compile(r"(tests/[\w/]+\.py)::(\w+)(?:\[[^\]\s`]*\])?")
# Files whose every test is part of the safety case.
SAFETY_FILES = ("tests/rv/test_safety_core.py", "tests/rv/test_safety_record.py",
                "tests/e2e/test_console_safety_browser.py",
                "tests/rv/test_prescription_limits.py")
AREAS = ("Access control", "Data transfer", "Units and scaling", "Date and time",
         "Set-up verification", "Override with authorisation", "Recording every session")


def referenced() -> list[tuple[str, str]]:
    return TEST_ID.findall(DOC.read_text(encoding="utf-8"))


@cache
def functions_of(path: str) -> frozenset[str]:
    """The test functions of a test file: module level, and methods of Test* classes."""
    tree = ast.parse((REPO / path).read_text(encoding="utf-8"), filename=path)
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {n.name for n in node.body
                      if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    return frozenset(n for n in names if n.startswith("test"))


def test_the_safety_case_names_tests() -> None:
    assert len(set(referenced())) >= 50


def test_every_named_test_exists() -> None:
    missing = []
    for path, name in sorted(set(referenced())):
        if not (REPO / path).is_file():
            missing.append(f"{path}::{name} (no such file)")
        elif name not in functions_of(path):
            missing.append(f"{path}::{name} (no such test)")
    assert not missing, "docs/safety.md names tests that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("path", SAFETY_FILES)
def test_every_safety_test_is_in_the_safety_case(path: str) -> None:
    named = {name for p, name in referenced() if p == path}
    unnamed = sorted(functions_of(path) - named)
    assert not unnamed, f"docs/safety.md does not say what these tests of {path} prove: " \
        + ", ".join(unnamed)


def test_every_iec_62274_area_has_a_section_with_tests() -> None:
    text = DOC.read_text(encoding="utf-8")
    headings = [m.start() for m in re.finditer(r"(?m)^#{2,3} ", text)] + [len(text)]
    for area in AREAS:
        start = text.find(f"### {area}\n")
        assert start >= 0, f"docs/safety.md has no section '### {area}'"
        end = min(h for h in headings if h > start)
        assert TEST_ID.search(text[start:end]), f"section '{area}' names no test"


def test_the_checker_itself_finds_a_missing_test(tmp_path: Path) -> None:
    """The parser sees parametrised ids by their base name, and a vanished test as missing."""
    assert TEST_ID.findall("`tests/rv/x.py::test_a[case-1]` and tests/y.py::test_b") == [
        ("tests/rv/x.py", "test_a"), ("tests/y.py", "test_b")]
    assert "test_every_named_test_exists" in functions_of("tests/test_safety_doc.py")
    assert "test_no_such_thing" not in functions_of("tests/test_safety_doc.py")
