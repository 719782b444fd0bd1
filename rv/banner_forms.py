"""Web forms of the patient in view (issue 15): input shapes only; rv.services.banner
decides (and checks the photo's bytes, whatever the browser says it is)."""

from __future__ import annotations

from django import forms
from django.conf import settings

from rv.models import Course, PatientAlert


class PhotoForm(forms.Form):
    photo = forms.FileField(
        help_text="A JPEG or PNG photo of the patient's face, at most "
                  f"{settings.RV_PHOTO_MAX_BYTES // (1024 * 1024)} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png"}))


class AlertForm(forms.Form):
    kind = forms.ChoiceField(choices=PatientAlert.Kind.choices, label="Alert")
    text = forms.CharField(max_length=500, required=False, label="Details",
                           help_text="For an allergy: to what; for an implanted device: "
                                     "which, and what to do.")


class AlertRetireForm(forms.Form):
    alert = forms.IntegerField(widget=forms.HiddenInput)
    reason = forms.CharField(max_length=500, label="Why it no longer holds")


class SetupNoteForm(forms.Form):
    course = forms.ModelChoiceField(queryset=Course.objects.none(), required=False,
                                    widget=forms.HiddenInput)
    notes = forms.CharField(required=False, label="Set-up notes",
                            widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    accessories = forms.CharField(required=False, label="Accessories (one a line)",
                                  widget=forms.Textarea(attrs={"rows": 3, "cols": 40}))

    def __init__(self, *args: object, patient_id: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["course"].queryset = Course.objects.filter(  # type: ignore[attr-defined]
            patient_id=patient_id)

    def accessory_list(self) -> list[str]:
        return str(self.cleaned_data.get("accessories") or "").splitlines()
