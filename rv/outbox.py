"""How the clinical domain queues an object for export (DESIGN.md: side effects as rows of
the same transaction). The queue itself lives in dicom_net, which rv never imports; the
setting RV_EXPORT_ENQUEUE names its `export_enqueue`, so a record builder calls
`record_export` inside its own transaction and the jobs commit or roll back with the record.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from archive.models import Instance


def record_export(*, instance: Instance) -> list[Any]:
    """Queue instance for every node that receives exports; returns the jobs made."""
    enqueue = import_string(settings.RV_EXPORT_ENQUEUE)
    return list(enqueue(instance=instance))
