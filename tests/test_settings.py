"""Configuration is read from the environment and fails loudly when it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_path, secret_key_file


def test_env_bool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "false")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        env_bool("X_FLAG", False)
    monkeypatch.delenv("X_FLAG")
    assert env_bool("X_FLAG", True) is True


def test_env_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_PORT", "eleven")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("X_PORT", 1)
    monkeypatch.setenv("X_PORT", "70000")
    with pytest.raises(ImproperlyConfigured, match="outside"):
        env_int("X_PORT", 1, low=1, high=65535)
    monkeypatch.setenv("X_PORT", "104")
    assert env_int("X_PORT", 1, low=1, high=65535) == 104


def test_env_list_and_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("X_HOSTS", "a.example, b.example,")
    assert env_list("X_HOSTS", []) == ["a.example", "b.example"]
    monkeypatch.setenv("X_DIR", "rel/dir")
    assert env_path("X_DIR", Path("var"), base=tmp_path) == tmp_path / "rel" / "dir"


def test_secret_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret_key"
    first = secret_key_file(path)
    assert len(first) > 40 and secret_key_file(path) == first
    assert path.stat().st_mode & 0o077 == 0


def test_system_checks_catch_bad_ae_title_and_unwritable_storage(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.RV_AE_TITLE = "A\\B"
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    settings.RV_DATA_DIR = blocker
    ids = {message.id for message in run_checks()}
    assert {"dicom_net.E001", "archive.E001"} <= ids
