"""RT Plans built by the tests (and the benchmark): a VMAT plan and a brachy plan, small
enough to reason about, real enough to exercise the importer."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RTIonPlanStorage, RTPlanStorage, generate_uid

from archive.dicomio import dataset_part10


def _base(*, patient_id: str, label: str, approval: str, sop_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = RTPlanStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "RTPLAN"
    ds.PatientID = patient_id
    ds.PatientName = f"Test^{patient_id}"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.Manufacturer = "Verity tests"
    ds.RTPlanLabel = label
    ds.RTPlanName = f"{label} plan"
    ds.RTPlanDate = "20260101"
    ds.RTPlanGeometry = "PATIENT"
    ds.ApprovalStatus = approval
    ds.FrameOfReferenceUID = generate_uid()
    return ds


def _dose_reference(description: str, prescription: float,
                    maximum: float | None = None) -> Dataset:
    ref = Dataset()
    ref.DoseReferenceNumber = 1
    ref.DoseReferenceStructureType = "VOLUME"
    ref.DoseReferenceDescription = description
    ref.DoseReferenceType = "TARGET"
    ref.TargetPrescriptionDose = prescription
    if maximum is not None:
        ref.DeliveryMaximumDose = maximum
    return ref


def dose_coefficient(number: int, coefficient: float | str) -> Dataset:
    """A control point's Referenced Dose Reference Sequence item (PS3.3 C.8.8.14)."""
    item = Dataset()
    item.ReferencedDoseReferenceNumber = number
    item.CumulativeDoseReferenceCoefficient = coefficient
    return item


def _fraction_group(number: int, fractions: int, *, beams: int = 0, setups: int = 0) -> Dataset:
    fg = Dataset()
    fg.FractionGroupNumber = number
    fg.NumberOfFractionsPlanned = fractions
    fg.NumberOfBeams = beams
    fg.NumberOfBrachyApplicationSetups = setups
    return fg


def _beam(number: int, name: str, *, machine: str, radiation: str, beam_type: str,
          control_points: int) -> Dataset:
    """A Beam (Ion Beam) Sequence item without its devices and control points."""
    beam = Dataset()
    beam.BeamNumber = number
    beam.BeamName = name
    beam.TreatmentMachineName = machine
    beam.PrimaryDosimeterUnit = "MU"
    beam.RadiationType = radiation
    beam.BeamType = beam_type
    beam.TreatmentDeliveryType = "TREATMENT"
    beam.FinalCumulativeMetersetWeight = 1
    beam.NumberOfControlPoints = control_points
    return beam


def vmat_plan(*, patient_id: str = "VMAT01", label: str = "VMAT", arcs: int = 2,
              control_points: int = 178, leaf_pairs: int = 60, approval: str = "APPROVED",
              fractions: int = 30, machine: str = "TrueBeam1", sop_uid: str | None = None,
              meterset: float = 250.0, coefficients: bool = True) -> Dataset:
    """A VMAT plan: `arcs` arcs of `control_points` points, MLC with 2 x leaf_pairs leaves.
    Only the first point carries collimator/couch/jaws (later points list only changes).
    With `coefficients`, each point gives dose reference 1 a Cumulative Dose Reference
    Coefficient equal to its cumulative meterset weight (the whole Beam Dose at the end)."""
    ds = _base(patient_id=patient_id, label=label, approval=approval, sop_uid=sop_uid)
    tol = Dataset()
    tol.ToleranceTableNumber = 1
    tol.ToleranceTableLabel = "VMAT tight"
    tol.GantryAngleTolerance = 1.0
    tol.PatientSupportAngleTolerance = 1.0
    dev = Dataset()
    dev.RTBeamLimitingDeviceType = "MLCX"
    dev.BeamLimitingDevicePositionTolerance = 2.0
    tol.BeamLimitingDeviceToleranceSequence = Sequence([dev])
    ds.ToleranceTableSequence = Sequence([tol])
    ds.DoseReferenceSequence = Sequence([_dose_reference("PTV", 60.0, 64.0)])
    fg = _fraction_group(1, fractions, beams=arcs)
    refs = []
    beams = []
    for b in range(1, arcs + 1):
        ref = Dataset()
        ref.ReferencedBeamNumber = b
        ref.BeamMeterset = f"{meterset + b:.4f}"
        ref.BeamDose = 1.0
        refs.append(ref)
        beam = _beam(b, f"Arc{b}", machine=machine, radiation="PHOTON", beam_type="DYNAMIC",
                     control_points=control_points)
        beam.ReferencedToleranceTableNumber = 1
        devices = []
        for kind, pairs in (("ASYMX", 1), ("ASYMY", 1), ("MLCX", leaf_pairs)):
            d = Dataset()
            d.RTBeamLimitingDeviceType = kind
            d.NumberOfLeafJawPairs = pairs
            devices.append(d)
        beam.BeamLimitingDeviceSequence = Sequence(devices)
        cps = []
        clockwise = b % 2 == 1
        for i in range(control_points):
            cp = Dataset()
            cp.ControlPointIndex = i
            gantry = (181.0 + i * 358.0 / (control_points - 1)) % 360
            cp.GantryAngle = f"{gantry if clockwise else (360 - gantry) % 360:.1f}"
            cp.CumulativeMetersetWeight = f"{i / (control_points - 1):.6f}"
            if coefficients:
                cp.ReferencedDoseReferenceSequence = Sequence([dose_coefficient(
                    1, f"{i / (control_points - 1):.6f}")])
            positions = []
            if i == 0:
                cp.NominalBeamEnergy = 6
                cp.GantryRotationDirection = "CW" if clockwise else "CC"
                cp.BeamLimitingDeviceAngle = 30.0 if clockwise else 330.0
                cp.PatientSupportAngle = 0.0
                for kind, value in (("ASYMX", [-50.0, 50.0]), ("ASYMY", [-60.0, 60.0])):
                    p = Dataset()
                    p.RTBeamLimitingDeviceType = kind
                    p.LeafJawPositions = value
                    positions.append(p)
            mlc = Dataset()
            mlc.RTBeamLimitingDeviceType = "MLCX"
            shift = (i % 20) * 0.5
            mlc.LeafJawPositions = ([f"{-20.0 - shift:.2f}"] * leaf_pairs
                                    + [f"{20.0 + shift:.2f}"] * leaf_pairs)
            positions.append(mlc)
            cp.BeamLimitingDevicePositionSequence = Sequence(positions)
            cps.append(cp)
        beam.ControlPointSequence = Sequence(cps)
        beams.append(beam)
    fg.ReferencedBeamSequence = Sequence(refs)
    ds.FractionGroupSequence = Sequence([fg])
    ds.BeamSequence = Sequence(beams)
    return ds


def brachy_plan(*, patient_id: str = "BRACHY01", label: str = "HDR cervix",
                approval: str = "APPROVED") -> Dataset:
    """An HDR plan: one Ir-192 source, one application setup with two channels."""
    ds = _base(patient_id=patient_id, label=label, approval=approval, sop_uid=None)
    ds.BrachyTreatmentTechnique = "INTRACAVITARY"
    ds.BrachyTreatmentType = "HDR"
    src = Dataset()
    src.SourceNumber = 1
    src.SourceType = "LINE"
    src.SourceIsotopeName = "Ir-192"
    src.SourceIsotopeHalfLife = 73.83
    src.ReferenceAirKermaRate = 40700
    src.SourceStrengthReferenceDate = "20260101"
    src.SourceStrengthReferenceTime = "120000"
    ds.SourceSequence = Sequence([src])
    machine = Dataset()
    machine.TreatmentMachineName = "Afterloader1"
    ds.TreatmentMachineSequence = Sequence([machine])
    setup = Dataset()
    setup.ApplicationSetupNumber = 1
    setup.ApplicationSetupType = "FLETCHER"
    setup.ApplicationSetupName = "Ring and tandem"
    channels = []
    for n, seconds in ((1, 120.5), (2, 95.25)):
        ch = Dataset()
        ch.ChannelNumber = n
        ch.ChannelTotalTime = seconds
        ch.ReferencedSourceNumber = 1
        ch.SourceMovementType = "STEPWISE"
        ch.NumberOfControlPoints = 0
        ch.BrachyControlPointSequence = Sequence([])
        channels.append(ch)
    setup.ChannelSequence = Sequence(channels)
    ds.ApplicationSetupSequence = Sequence([setup])
    fg = _fraction_group(1, 4, setups=1)
    ref = Dataset()
    ref.ReferencedBrachyApplicationSetupNumber = 1
    ref.BrachyApplicationSetupDose = 7.0
    fg.ReferencedBrachyApplicationSetupSequence = Sequence([ref])
    ds.FractionGroupSequence = Sequence([fg])
    return ds


def part10(ds: Dataset) -> bytes:
    """Encode as a DICOM Part 10 file, explicit VR little endian."""
    return dataset_part10(ds)


def two_group_plan(*, patient_id: str = "MFG01", label: str = "Boost") -> Dataset:
    """A plan with two fraction groups: beam 1 in group 1 (25 fractions), beam 2 in group 2
    (5 fractions, a boost)."""
    ds = vmat_plan(patient_id=patient_id, label=label, arcs=2, control_points=3, leaf_pairs=2,
                   fractions=25)
    fg1 = ds.FractionGroupSequence[0]
    fg2 = _fraction_group(2, 5, beams=1)
    fg2.ReferencedBeamSequence = Sequence([fg1.ReferencedBeamSequence[1]])
    fg1.ReferencedBeamSequence = Sequence([fg1.ReferencedBeamSequence[0]])
    fg1.NumberOfBeams = 1
    ds.FractionGroupSequence = Sequence([fg1, fg2])
    return ds


def ion_plan(*, patient_id: str = "ION01", label: str = "Proton", fractions: int = 20,
             machine: str = "ProtonRoom1") -> Dataset:
    """An RT Ion Plan (PS3.3 A.49): one modulated-scanning proton beam of two control points."""
    ds = _base(patient_id=patient_id, label=label, approval="APPROVED", sop_uid=None)
    ds.SOPClassUID = RTIonPlanStorage
    ds.DoseReferenceSequence = Sequence([_dose_reference("CTV", 60.0)])
    fg = _fraction_group(1, fractions, beams=1)
    ref = Dataset()
    ref.ReferencedBeamNumber = 1
    ref.BeamMeterset = "120.0"
    ref.BeamDose = 3.0
    fg.ReferencedBeamSequence = Sequence([ref])
    ds.FractionGroupSequence = Sequence([fg])
    beam = _beam(1, "LPO", machine=machine, radiation="PROTON", beam_type="STATIC",
                 control_points=2)
    beam.ScanMode = "MODULATED"
    cps = []
    for i in range(2):
        cp = Dataset()
        cp.ControlPointIndex = i
        cp.CumulativeMetersetWeight = float(i)
        cp.ScanSpotTuneID = "3.0"
        cp.NumberOfScanSpotPositions = 2
        cp.ScanSpotPositionMap = [-5.0, 0.0, 5.0, 0.0]
        cp.ScanSpotMetersetWeights = [0.4, 0.6] if i == 0 else [0.0, 0.0]
        cp.NumberOfPaintings = 1
        if i == 0:
            cp.NominalBeamEnergy = 150.0
            cp.GantryAngle = 270.0
            cp.BeamLimitingDeviceAngle = 0.0
            cp.PatientSupportAngle = 0.0
        cps.append(cp)
    beam.IonControlPointSequence = Sequence(cps)
    ds.IonBeamSequence = Sequence([beam])
    return ds


# The plan (issue 11): four beams of 0.5 Gy; a calculation point gets 0.895 + 0.772 +
# 0.873 + 0.692 of them = 1.616 Gy a fraction, exactly its prescription / 7.
CALC_POINT_FINAL = (0.895, 0.772, 0.873, 0.692)
# Beam 1's control points: cumulative meterset weight and coefficient, not linear.
CALC_POINT_BEAM1 = ((0.0, 0.0), (0.3, 0.2), (0.6, 0.5), (1.0, 0.895))


def calculation_point_plan(*, patient_id: str = "CALC01", label: str = "Pelvis 4F",
                           fractions: int = 7) -> Dataset:
    """Four beams of Beam Dose 0.5 Gy, each control point giving dose reference 1 (a
    calculation point) its Cumulative Dose Reference Coefficient; dose reference 2 (the PTV)
    gets none from any beam, so it is not tracked."""
    ds = vmat_plan(patient_id=patient_id, label=label, arcs=4, control_points=4, leaf_pairs=2,
                   fractions=fractions, coefficients=False)
    point = _dose_reference("Calc point", round(1.616 * fractions, 3))
    point.DoseReferenceStructureType = "COORDINATES"
    point.DoseReferencePointCoordinates = [0.0, 0.0, 0.0]
    ptv = _dose_reference("PTV", 14.0)
    ptv.DoseReferenceNumber = 2
    ds.DoseReferenceSequence = Sequence([point, ptv])
    for ref in ds.FractionGroupSequence[0].ReferencedBeamSequence:
        ref.BeamDose = 0.5
    for beam, final in zip(ds.BeamSequence, CALC_POINT_FINAL, strict=True):
        points = CALC_POINT_BEAM1 if beam.BeamNumber == 1 else tuple(
            (i / 3, final * i / 3) for i in range(4))
        for cp, (weight, coefficient) in zip(beam.ControlPointSequence, points, strict=True):
            cp.CumulativeMetersetWeight = f"{weight:.6f}"
            cp.ReferencedDoseReferenceSequence = Sequence([dose_coefficient(
                1, f"{coefficient:.6f}")])
    return ds
