"""The physician's prescription form (issue 15): input shapes only; rv.services.prescriptions
decides. Reference points are rows 1..POINT_ROWS; the primary one is chosen by a radio."""

from __future__ import annotations

from typing import Any

from django import forms

from rv.models import Prescription
from rv.services.prescriptions import PrescriptionInput, ReferencePointInput

POINT_ROWS = 4
MAIN = ("site", "dose_per_fraction", "fractions", "total_dose", "fractionation",
        "fractionation_note", "technique", "modality", "energy", "notes")
LIMITS = (("session", "session limit (Gy)"), ("daily", "daily limit (Gy)"),
          ("total", "total limit (Gy)"))


class PrescriptionForm(forms.Form):
    site = forms.CharField(max_length=64, label="Site")
    dose_per_fraction = forms.FloatField(label="Dose per fraction (Gy)")
    fractions = forms.IntegerField(label="Fractions")
    total_dose = forms.FloatField(label="Total dose (Gy)", required=False,
                                  help_text="empty: dose per fraction x fractions")
    fractionation = forms.ChoiceField(label="Fractionation",
                                      choices=Prescription.Fractionation.choices,
                                      initial=Prescription.Fractionation.DAILY_WEEKDAYS)
    fractionation_note = forms.CharField(label="Fractionation note", max_length=200,
                                         required=False)
    technique = forms.CharField(label="Technique", max_length=64, required=False)
    modality = forms.ChoiceField(label="Modality", required=False,
                                 choices=[("", "any")] + list(Prescription.Modality.choices))
    energy = forms.FloatField(label="Nominal energy (MV, MeV)", required=False)
    notes = forms.CharField(label="Notes", required=False, widget=forms.Textarea(
        attrs={"rows": 2}))
    primary = forms.TypedChoiceField(label="Primary reference point", coerce=int,
                                     choices=[(i, str(i)) for i in range(1, POINT_ROWS + 1)],
                                     initial=1, widget=forms.RadioSelect)
    password = forms.CharField(label="Your password", required=False,
                               widget=forms.PasswordInput(attrs={
                                   "autocomplete": "current-password"}))

    def __init__(self, *args: Any, amending: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for i in range(1, POINT_ROWS + 1):
            self.fields[f"point_{i}"] = forms.CharField(
                label=f"Reference point {i}", max_length=64, required=False)
            for key, words in LIMITS:
                self.fields[f"point_{i}_{key}"] = forms.FloatField(
                    label=f"Reference point {i} {words}", required=False)
        if amending:
            self.fields["site"].disabled = True
            self.fields["password"].required = True
            self.fields["reason"] = forms.CharField(label="Reason for the amendment",
                                                    max_length=500)

    def main(self) -> list[Any]:
        """The bound fields of what is prescribed, in the form's order."""
        return [self[name] for name in MAIN]

    def rows(self) -> list[dict[str, Any]]:
        """The point rows for the template: the bound fields of each."""
        return [{"i": i, "name": self[f"point_{i}"],
                 "limits": [self[f"point_{i}_{key}"] for key, _ in LIMITS]}
                for i in range(1, POINT_ROWS + 1)]

    def prescription_input(self) -> PrescriptionInput:
        d = self.cleaned_data
        points = tuple(ReferencePointInput(
            name=d.get(f"point_{i}") or "", primary=d.get("primary") == i,
            session_limit=d.get(f"point_{i}_session"), daily_limit=d.get(f"point_{i}_daily"),
            total_limit=d.get(f"point_{i}_total")) for i in range(1, POINT_ROWS + 1))
        return PrescriptionInput(
            site=d["site"], dose_per_fraction=d["dose_per_fraction"], fractions=d["fractions"],
            total_dose=d.get("total_dose"), technique=d.get("technique") or "",
            modality=d.get("modality") or "", energy=d.get("energy"),
            fractionation=d["fractionation"],
            fractionation_note=d.get("fractionation_note") or "", notes=d.get("notes") or "",
            references=points)

    @staticmethod
    def initial_of(rx: Prescription) -> dict[str, Any]:
        """The form's initial values from a prescription (to amend it)."""
        initial: dict[str, Any] = {
            "site": rx.site, "dose_per_fraction": rx.dose_per_fraction,
            "fractions": rx.fractions, "total_dose": rx.total_dose,
            "fractionation": rx.fractionation, "fractionation_note": rx.fractionation_note,
            "technique": rx.technique, "modality": rx.modality, "energy": rx.energy,
            "notes": rx.notes}
        for i, ref in enumerate(rx.references.all(), start=1):
            if i > POINT_ROWS:
                break
            initial[f"point_{i}"] = ref.name
            initial[f"point_{i}_session"] = ref.session_limit
            initial[f"point_{i}_daily"] = ref.daily_limit
            initial[f"point_{i}_total"] = ref.total_limit
            if ref.primary:
                initial["primary"] = i
        return initial


class LinkForm(forms.Form):
    plan = forms.IntegerField()
    partial = forms.BooleanField(required=False)
