"""Shared fixtures. Tools and the corpus may be absent on a laptop (the test skips, saying
why) but never under CI: with CI=true a missing tool or corpus fails the test instead."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("RV_CORPUS_DIR", REPO.parent / "shared" / "corpus"))
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    """Skip with reason when condition is false; under CI=true, fail instead."""
    if condition:
        return
    if UNDER_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed (apt-get install dcmtk dicom3tools)")
    assert path is not None
    return path


@pytest.fixture
def corpus() -> Path:
    need((CORPUS / "files").is_dir(), f"the shared corpus is not at {CORPUS}")
    return CORPUS


def corpus_files(subdir: str = "") -> list[Path]:
    """For parametrising: the corpus files (empty when the corpus is absent)."""
    base = CORPUS / "files" / subdir
    return sorted(p for p in base.rglob("*.dcm")) if base.is_dir() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """On PostgreSQL the audit table refuses TRUNCATE (rv migration 0007) unless the session
    says rv.audit_truncate=allow: only the suite's connections do, so that test-database
    flushes (transactional tests) work."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        options = db.setdefault("OPTIONS", {})
        options["options"] = (options.get("options", "") + " -c rv.audit_truncate=allow").strip()


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Every test gets its own archive folder."""
    path = tmp_path / "data"
    path.mkdir()
    settings.RV_DATA_DIR = path
    return path


@pytest.fixture
def live_scp(transactional_db, settings) -> Iterator[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """Verity's SCP in-process on a free port; yields (host, port). Unknown AEs accepted
    unless a test sets settings.RV_ACCEPT_UNKNOWN_AE = False before using it."""
    from dicom_net.ae import build_ae, start_server
    from dicom_net.handlers import HANDLERS

    settings.RV_ACCEPT_UNKNOWN_AE = True
    ae = build_ae()
    server = start_server(ae=ae, host="127.0.0.1", port=free_port(), handlers=HANDLERS)
    try:
        yield "127.0.0.1", int(server.server_address[1])
    finally:
        ae.shutdown()
