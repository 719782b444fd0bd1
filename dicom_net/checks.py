"""System checks for the DICOM edge (ids dicom_net.E0xx)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ValidationError

from dicom_net.models import ae_title_validator


@register(Tags.compatibility)
def check_ae_title(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    try:
        ae_title_validator(settings.RV_AE_TITLE)
    except ValidationError:
        return [Error(f"RV_AE_TITLE={settings.RV_AE_TITLE!r} is not a valid AE title",
                      hint="1 to 16 printable ASCII characters, no backslash.",
                      id="dicom_net.E001")]
    return []
