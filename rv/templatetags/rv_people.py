"""Template filters for people (issue 15), built into every template (config/settings.py):
`{{ patient.patient_name|person_name }}` is "SMITH, John A." (rv.names.display_name, ""
when there is no name: add `|default:"(no name)"`); `{{ patient.birth_date|age }}` is
"76 y" today."""

from __future__ import annotations

from datetime import date

from django import template
from django.utils import timezone

from rv.names import age_text, display_name

register = template.Library()


@register.filter
def person_name(value: object) -> str:
    return display_name(value)


@register.filter
def age(value: object) -> str:
    return age_text(value, timezone.localdate()) if isinstance(value, date) else ""
