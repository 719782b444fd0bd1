"""System checks for the archive (ids archive.E0xx)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Tags, register

from archive import storage


@register(Tags.compatibility, deploy=False)
def check_storage(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    reason = storage.check_writable()
    if reason is None:
        return []
    return [Error(reason, hint="Point RV_DATA_DIR at a writable folder.", id="archive.E001")]
