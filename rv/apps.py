from django.apps import AppConfig


class RvConfig(AppConfig):
    name = "rv"
    verbose_name = "Record and verify"
