from django.apps import AppConfig


class ArchiveConfig(AppConfig):
    name = "archive"
    verbose_name = "DICOM archive"

    def ready(self) -> None:
        from archive import checks  # noqa: F401  (registers the system checks)
