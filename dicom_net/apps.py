from django.apps import AppConfig


class DicomNetConfig(AppConfig):
    name = "dicom_net"
    verbose_name = "DICOM network"

    def ready(self) -> None:
        from dicom_net import checks  # noqa: F401  (registers the system checks)
