"""Web forms: input shapes only; the services decide."""

from __future__ import annotations

from django import forms
from django.db.models import Q

from rv.models import Course, ToleranceTable, TreatmentMachine
from rv.models.machine import TOLERANCE_FIELDS


class ApproveForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete":
                                                                 "current-password"}),
                               help_text="Sign again with your password.")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False)


class MoveForm(forms.Form):
    course = forms.ModelChoiceField(queryset=Course.objects.none())

    def __init__(self, *args: object, patient_id: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["course"].queryset = Course.objects.filter(  # type: ignore[attr-defined]
            patient_id=patient_id, status=Course.Status.ACTIVE).select_related("patient")


class AssignToleranceForm(forms.Form):
    table = forms.ModelChoiceField(queryset=ToleranceTable.objects.none())

    def __init__(self, *args: object, machine_id: int | None,
                 tables: list[ToleranceTable] | None = None, **kwargs: object) -> None:
        """`tables`: this queryset's tables, read by the caller for many forms at once
        (assignable_tables): the select then shows them without a query of its own."""
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["table"]
        field.queryset = ToleranceTable.objects.filter(  # type: ignore[attr-defined]
            machine_id=machine_id, source=ToleranceTable.Source.USER, is_current=True)
        if tables is not None:
            field.choices = [("", field.empty_label), *(  # type: ignore[attr-defined]
                (t.pk, field.label_from_instance(t)) for t in tables)]  # type: ignore[attr-defined]


def assignable_tables(machine_ids: set[int | None]) -> dict[int | None, list[ToleranceTable]]:
    """AssignToleranceForm's tables for each of the machines, in one query."""
    out: dict[int | None, list[ToleranceTable]] = {m: [] for m in machine_ids}
    which = Q(machine_id__in=[m for m in machine_ids if m is not None])
    if None in machine_ids:
        which |= Q(machine_id__isnull=True)
    for table in ToleranceTable.objects.filter(
            which, source=ToleranceTable.Source.USER, is_current=True).select_related("machine"):
        out[table.machine_id].append(table)
    return out


class ToleranceTableForm(forms.Form):
    machine = forms.ModelChoiceField(queryset=TreatmentMachine.objects.all())
    label = forms.CharField(max_length=64)

    def __init__(self, *args: object, editing: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for name, help_text in TOLERANCE_FIELDS:
            self.fields[name] = forms.FloatField(required=False, min_value=0,
                                                 help_text=help_text)
        if editing:
            del self.fields["machine"]
            del self.fields["label"]

    def tolerance_values(self) -> dict[str, float | None]:
        return {name: self.cleaned_data.get(name) for name, _ in TOLERANCE_FIELDS}
