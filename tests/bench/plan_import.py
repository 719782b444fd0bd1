"""Benchmark: RT Plan import, from C-STORE received (the bytes handed to rv.ingest.
object_receive, as the SCP's handler does) to committed, against pydicom's own dcmread of
the same bytes in the same run. Prints figures; asserts nothing about time.

    .venv/bin/python tests/bench/plan_import.py [--repeat N]

Uses a throw-away SQLite database and data folder unless DATABASE_URL is set (then give it
an empty scratch database). The TomoTherapy part is skipped when the corpus is absent.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
SCRATCH = Path(tempfile.mkdtemp(prefix="verity-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{SCRATCH / 'bench.sqlite3'}")
os.environ["RV_DATA_DIR"] = str(SCRATCH / "data")
CORPUS = Path(os.environ.get("RV_CORPUS_DIR", REPO.parent / "shared" / "corpus"))
TOMO = ("files/rtplan/pps_tomo_plan_error_RP.1.2.826.0.1.3680043.2.200.535245767.18.44281."
        "1806.dcm")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from pydicom import dcmread  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from archive.dicomio import ensure_part10  # noqa: E402
from rv.ingest import object_receive  # noqa: E402
from rv.models import Plan  # noqa: E402
from tests.rv.plans import part10, vmat_plan  # noqa: E402


def _variants(ds, n: int) -> list[bytes]:  # type: ignore[no-untyped-def]
    """n encodings of the plan under fresh UIDs (an identical object would be a duplicate)."""
    out = []
    for _ in range(n):
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        out.append(part10(ds))
    return out


def _decode_all(ds) -> None:  # type: ignore[no-untyped-def]
    """Touch every element, sequences included: what reading the whole plan costs."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _decode_all(item)


def _bench(name: str, variants: list[bytes]) -> None:
    read, full, imported = [], [], []
    for data in variants:
        t0 = time.perf_counter()
        dcmread(io.BytesIO(data))
        read.append(time.perf_counter() - t0)
    for data in variants:
        t0 = time.perf_counter()
        _decode_all(dcmread(io.BytesIO(data)))
        full.append(time.perf_counter() - t0)
    for data in variants:
        t0 = time.perf_counter()
        result = object_receive(data=data, calling_ae="BENCH")
        imported.append(time.perf_counter() - t0)
        assert result.outcome == "stored"
    plan = Plan.objects.filter(instance__sop_instance_uid=dcmread(io.BytesIO(variants[-1]))
                               .SOPInstanceUID).get()
    cps = sum(b.number_of_control_points for b in plan.beams.all())
    r, f, i = statistics.median(read), statistics.median(full), statistics.median(imported)
    print(f"{name}: {len(variants[0]) / 1e6:.2f} MB, {plan.beams.count()} beam(s), "
          f"{cps} control points, n={len(variants)}")
    print(f"  dcmread (lazy: sequences stay raw)  median {r * 1e3:8.1f} ms  "
          f"(min {min(read) * 1e3:.1f})")
    print(f"  dcmread + decoding every element  median {f * 1e3:8.1f} ms  "
          f"(min {min(full) * 1e3:.1f})")
    print(f"  import   median {i * 1e3:8.1f} ms  (min {min(imported) * 1e3:.1f})")
    print(f"  import / dcmread = {i / r:.1f}x  (goal: under 10x); "
          f"import / (dcmread + decode all) = {i / f:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    from django.db import connection
    print(f"database: {connection.vendor}; scratch: {SCRATCH}; python {sys.version.split()[0]}")
    _bench("generated VMAT (2 arcs x 178 control points x 120 leaves)",
           _variants(vmat_plan(arcs=2, control_points=178, leaf_pairs=60), args.repeat))
    tomo = CORPUS / TOMO
    if tomo.is_file():
        ds = dcmread(io.BytesIO(ensure_part10(tomo.read_bytes())))
        _bench("TomoTherapy corpus plan", _variants(ds, args.repeat))
    else:
        print(f"TomoTherapy part skipped: no corpus at {CORPUS}")


if __name__ == "__main__":
    main()
