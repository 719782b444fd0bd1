#!/usr/bin/env python3
"""Ingest benchmark (issue 3): files/s into DCMTK storescp, Orthanc and Verity's runscp.

    make bench-ingest                     # the full run (several minutes)
    .venv/bin/python tests/bench/ingest.py --quick     # a smoke run (under a minute)

The same generated objects (CT-sized: 512x512, 16-bit, about 0.5 MB; and, in the Nagle
mode, small 64x64 CT objects too) are sent with DCMTK `storescu` by 1 and by 2 parallel
senders (each sender one association carrying its share of the files) to:

  storescp  DCMTK's storescp --fork writing to disk (no fsync): the near-limit here
  orthanc   Orthanc from Debian's package, default SQLite index, SyncStorageArea (fsync)
  verity    manage.py runscp on PostgreSQL (Unix socket): fsync + rename + dir fsync and
            the index row committed before each 0x0000
  lean      tests/bench/lean_scp.py: a store-only Python receiver with Verity's flushes and
            nothing else of Verity's (an experiment: the ceiling of a Python receiver);
            lean-index (not by default) the same on Verity's store

in rounds that alternate the targets, so drift in the (shared) machine's load hits all of
them alike. Every measurement uses objects with fresh UIDs, so each target really stores.
After each measurement the target's store is counted: a figure only counts if every file
arrived.

Two modes:
  nodelay  TCP_NODELAY=1 in every DCMTK process's environment (storescu, storescp,
           Orthanc): DCMTK then turns Nagle's algorithm off.
  nagle    TCP_NODELAY unset: Nagle's algorithm on in the sender, as many real peers run.

The script re-executes itself in a fresh network namespace holding only loopback
(`unshare -n`, needs root), because storescp and Orthanc 1.10 listen on every address;
PostgreSQL is then reached through its Unix socket. It stops itself: every wait is bounded
and every process it starts is killed on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # for tests.factories
PY = sys.executable
IN_NETNS = "VERITY_BENCH_NETNS"
PORT = 11112  # inside our own namespace nobody else listens here
AET = "BENCH_SCP"
PG_SOCKET = os.environ.get("BENCH_PG_SOCKET", "/var/run/postgresql")
PG_DB = "verity_bench"
SEND_TIMEOUT = 600.0


def log(msg: str) -> None:
    print(msg, flush=True)


# --- objects --------------------------------------------------------------------------------

def _template(rows: int, cols: int) -> bytes:
    """One CT Image object as Part 10 bytes, with fixed-length placeholder UIDs to patch."""
    from tests.factories import ct_image, part10

    return part10(ct_image(rows=rows, cols=cols, sop_instance_uid=_placeholder("I"),
                           study_instance_uid=_placeholder("S"),
                           series_instance_uid=_placeholder("R"),
                           patient_id="BENCH-0000000000"))  # patched: one per measurement


def _with_placeholders(ds: Any) -> bytes:
    """Part 10 bytes of an RT object, its UIDs and patient ID replaced by placeholders."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    from tests.factories import part10

    ds.SOPInstanceUID = _placeholder("I")
    ds.StudyInstanceUID = _placeholder("S")
    ds.SeriesInstanceUID = _placeholder("R")
    ds.PatientID = "BENCH-0000000000"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return part10(ds)


def _templates() -> dict[str, bytes]:
    """Every kind of object the workloads send, as Part 10 bytes with placeholders."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset

    from tests.factories import rt_image
    from tests.rv.plans import calculation_point_plan

    # An RT Image as a linac's portal imager makes it: 1024x1024, 16 bits (2 MiB).
    image = rt_image(rows=1024, cols=1024)
    # A 3D plan of four fields (the size of many a TPS export) and pydicom's small
    # structure set (read whole, written again in Explicit VR Little Endian).
    plan = calculation_point_plan(patient_id="BENCH-0000000000")
    struct = Dataset(dcmread(get_testdata_file("rtstruct.dcm"), force=True))
    return {"ct": _template(512, 512), "small": _template(64, 64),
            "rtimage": _with_placeholders(image), "plan": _with_placeholders(plan),
            "struct": _with_placeholders(struct)}


KIND_LABELS = {"ct": "CT 512x512", "small": "CT 64x64", "rtimage": "RT Image 1024x1024",
               "plan": "RT Plan (4 fields)", "struct": "RT Structure Set"}


UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root; UIDs below are 60 characters


def _placeholder(kind: str) -> str:
    # A fixed 60-character UID we can find and replace byte for byte in the template.
    return UID_ROOT + {"I": "1", "S": "2", "R": "3"}[kind] * 34


def _uid_root() -> str:
    # 46 characters; each object's UID appends "." and 13 digits (no leading zero).
    return UID_ROOT + "1" + str(uuid.uuid4().int)[1:20]  # no leading zero (PS3.5 9.1)


class Batch:
    """n objects with fresh UIDs written to a folder, split among senders."""

    def __init__(self, template: bytes, n: int, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True)
        root = _uid_root()
        study = f"{root}.{'1' * 13}".encode()
        series = f"{root}.{'2' * 13}".encode()
        pid = ("BENCH-" + uuid.uuid4().hex[:10]).encode()
        base = template.replace(_placeholder("S").encode(), study)
        base = base.replace(_placeholder("R").encode(), series)
        base = base.replace(b"BENCH-0000000000", pid)
        self.prefix = root
        self.files: list[Path] = []
        inst_ph = _placeholder("I").encode()
        for i in range(n):
            uid = f"{root}.{3 * 10**12 + i}".encode()
            path = folder / f"{i:05d}.dcm"
            path.write_bytes(base.replace(inst_ph, uid))
            self.files.append(path)

    def shares(self, senders: int) -> list[list[Path]]:
        return [self.files[k::senders] for k in range(senders)]


# --- targets --------------------------------------------------------------------------------

@dataclass
class Target:
    name: str
    work: Path
    pdu: int | None
    processes: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    extra: dict = field(default_factory=dict)

    def env(self, nodelay: bool) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("TCP_NODELAY", None)
        if nodelay:
            env["TCP_NODELAY"] = "1"
        return env

    def start(self, nodelay: bool) -> None:
        raise NotImplementedError

    def stored(self, batch: Batch) -> int:
        raise NotImplementedError

    def _spawn(self, cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.log_path = self.work / f"{self.name}.log"
        fh = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        fh.close()
        _wait_port(PORT, self.proc, self.log_path)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
        _wait_port_free(PORT)


class StoreSCP(Target):
    def start(self, nodelay: bool) -> None:
        out = self.work / "storescp-out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        cmd = ["storescp", "--fork", "-aet", AET, "-od", str(out)]
        if self.pdu:
            cmd += ["-pdu", str(self.pdu)]
        self._spawn(cmd + [str(PORT)], self.env(nodelay))

    def stored(self, batch: Batch) -> int:
        out = self.work / "storescp-out"
        # storescp names each file <modality prefix>.<SOP Instance UID>
        return sum(1 for p in out.iterdir() if batch.prefix + "." in p.name)


class Orthanc(Target):
    HTTP = 8042  # inside our namespace

    def start(self, nodelay: bool) -> None:
        storage = self.work / "orthanc-db"
        shutil.rmtree(storage, ignore_errors=True)
        storage.mkdir()
        config = {
            "Name": "bench", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "DicomAet": AET, "DicomPort": PORT, "HttpPort": self.HTTP,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False, "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True, "Plugins": [], "HttpServerEnabled": True,
        }
        config.update(self.config())
        if self.pdu:
            config["MaximumPduLength"] = self.pdu
        path = self.work / "orthanc.json"
        path.write_text(json.dumps(config))
        self._spawn(["Orthanc", str(path)], self.env(nodelay))

    def config(self) -> dict:
        return {}

    def stored(self, batch: Batch) -> int:
        import urllib.request

        body = json.dumps({"Level": "Instance",
                           "Query": {"PatientID": _pid_of(batch)}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.HTTP}/tools/find", data=body,
                                     method="POST")
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - loopback
            return len(json.load(resp))


class OrthancPG(Orthanc):
    """Orthanc with Debian's orthanc-postgresql index plugin: its index in PostgreSQL (the
    same server Verity uses, through the same Unix socket), files still in its storage."""

    PLUGIN = "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"
    DB = "orthanc_bench"

    def start(self, nodelay: bool) -> None:
        psql = ["psql", "-h", PG_SOCKET, "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1"]
        subprocess.run(psql + ["-c", f"DROP DATABASE IF EXISTS {self.DB}"], check=True,
                       timeout=60)
        subprocess.run(psql + ["-c", f"CREATE DATABASE {self.DB}"], check=True, timeout=60)
        super().start(nodelay)

    def config(self) -> dict:
        return {"Plugins": [self.PLUGIN], "PostgreSQL": {
            "EnableIndex": True, "EnableStorage": False, "Host": PG_SOCKET, "Port": 5432,
            "Database": self.DB, "Username": "postgres", "Password": "", "Lock": False}}


class Verity(Target):
    repo: Path = REPO  # --verity-repo: another checkout's runscp, to measure a change
    db: str = PG_DB
    table: str = "archive_instance"  # where stored() counts the batch's objects

    def db_url(self) -> str:
        return f"postgres://postgres@/{self.db}?host={PG_SOCKET}"

    def prepare(self) -> None:
        psql = ["psql", "-h", PG_SOCKET, "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1"]
        subprocess.run(psql + ["-c", f"DROP DATABASE IF EXISTS {self.db}"], check=True,
                       timeout=60)
        subprocess.run(psql + ["-c", f"CREATE DATABASE {self.db}"], check=True, timeout=60)
        if self.table == "archive_instance":
            subprocess.run([PY, "manage.py", "migrate", "--no-input", "-v0"], cwd=self.repo,
                           env=self.env(False), check=True, timeout=300)

    def env(self, nodelay: bool) -> dict[str, str]:
        env = super().env(nodelay)
        env.update(DATABASE_URL=self.db_url(), RV_ACCEPT_UNKNOWN_AE="true",
                   RV_DATA_DIR=str(self.work / f"{self.name}-data"), RV_AE_TITLE=AET,
                   DJANGO_SECRET_KEY="bench-only-not-secret")
        if self.pdu:
            env["RV_MAX_PDU"] = str(self.pdu)
        return env

    def start(self, nodelay: bool) -> None:
        cmd = [PY, "manage.py", "runscp", "--host", "127.0.0.1", "--port", str(PORT),
               "--grace", "5"]
        if self.processes:
            cmd += ["--processes", str(self.processes)]
        self._spawn(cmd, self.env(nodelay), cwd=self.repo)

    def stored(self, batch: Batch) -> int:
        out = subprocess.run(
            ["psql", "-h", PG_SOCKET, "-U", "postgres", "-d", self.db, "-tAq", "-c",
             f"SELECT count(*) FROM {self.table} WHERE sop_instance_uid LIKE "
             f"'{batch.prefix}.%'"], capture_output=True, text=True, check=True, timeout=60)
        return int(out.stdout.strip())


class Lean(Verity):
    """tests/bench/lean_scp.py: a store-only Python receiver at Verity's durability, without
    pynetdicom, pydicom, Django or Verity's other work; the ceiling of a Python receiver."""

    db: str = PG_DB + "_lean"
    table: str = "lean_instance"  # lean_scp.py's own
    index: str = "lean"

    def start(self, nodelay: bool) -> None:
        cmd = [PY, str(REPO / "tests" / "bench" / "lean_scp.py"), "--port", str(PORT),
               "--data", str(self.work / f"{self.name}-data"), "--index", self.index,
               "--dsn", f"host={PG_SOCKET} user=postgres dbname={self.db}"]
        if self.processes:
            cmd += ["--processes", str(self.processes)]
        self._spawn(cmd, self.env(nodelay))


class LeanIndex(Lean):
    """lean_scp.py --index verity: the lean receiver handing each object to Verity's store
    (rv.ingest.object_receive), on a migrated database as Verity's."""

    db: str = PG_DB + "_lean_index"
    table: str = "archive_instance"
    index: str = "verity"


def _pid_of(batch: Batch) -> str:
    data = batch.files[0].read_bytes()
    at = data.find(b"BENCH-")
    return data[at:at + 16].decode()


def _wait_port(port: int, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target exited early; see {log_path}:\n{log_path.read_text()}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(0.3)  # let every forked listener bind too
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s; see {log_path}")


def _wait_port_free(port: int, timeout: float = 20) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.1)


# --- sending --------------------------------------------------------------------------------

def send(batch: Batch, senders: int, nodelay: bool, pdu: int | None,
         per_object: bool = False) -> float:
    """Send the batch with `senders` parallel storescu; return seconds, start to last exit.
    With `per_object`, each sender runs one storescu (one association) per object."""
    env = dict(os.environ)
    env.pop("TCP_NODELAY", None)
    if nodelay:
        env["TCP_NODELAY"] = "1"
    base = ["storescu", "-aec", AET, "-aet", "BENCH_SCU"]
    if pdu:
        base += ["-pdu", str(pdu)]
    if per_object:
        return _send_per_object(batch, senders, base, env)
    procs = []
    start = time.perf_counter()
    for share in batch.shares(senders):
        procs.append(subprocess.Popen(base + ["127.0.0.1", str(PORT)] + [str(p) for p in share],
                                      env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE))
    failed = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=SEND_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            failed.append("timed out")
            continue
        if p.returncode != 0:
            failed.append(err.decode(errors="replace")[-500:])
    elapsed = time.perf_counter() - start
    if failed:
        raise RuntimeError("storescu failed: " + " | ".join(failed))
    return elapsed


def _send_per_object(batch: Batch, senders: int, base: list[str],
                     env: dict[str, str]) -> float:
    """Each sender a thread running storescu once per file of its share, one after the
    other, as a console that opens an association for every object does."""
    import threading

    failed: list[str] = []

    def sender(share: list[Path]) -> None:
        for path in share:
            try:
                done = subprocess.run(base + ["127.0.0.1", str(PORT), str(path)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      timeout=60)
            except subprocess.TimeoutExpired:
                failed.append(f"{path.name}: timed out")
                return
            if done.returncode != 0:
                failed.append(f"{path.name}: " + done.stderr.decode(errors="replace")[-300:])
                return

    threads = [threading.Thread(target=sender, args=(share,)) for share in
               batch.shares(senders)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(SEND_TIMEOUT)
    elapsed = time.perf_counter() - start
    if failed or any(t.is_alive() for t in threads):
        raise RuntimeError("storescu failed: " + " | ".join(failed or ["timed out"]))
    return elapsed


# --- the run --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    mode: str  # nodelay / nagle
    kind: str  # a key of KIND_LABELS
    n: int
    senders: int
    per_object: bool = False  # one association (one storescu) per object

    @property
    def label(self) -> str:
        how = "1 assoc/object" if self.per_object else "1 assoc/sender"
        return f"{self.mode} | {KIND_LABELS[self.kind]} x{self.n} | {how}"


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="verity-bench-", dir=args.workdir))
    log(f"work folder {work}")
    targets: list[Target] = []
    for name in args.targets:
        if name == "storescp":
            targets.append(StoreSCP("storescp", work, args.pdu))
        elif name == "orthanc":
            targets.append(Orthanc("orthanc", work, args.pdu))
        elif name == "orthanc-pg":
            targets.append(OrthancPG("orthanc-pg", work, args.pdu))
        elif name == "verity":
            verity = Verity("verity", work, args.pdu, processes=args.processes)
            verity.repo = Path(args.verity_repo).resolve()
            targets.append(verity)
        elif name == "lean":
            targets.append(Lean("lean", work, args.pdu, processes=args.processes))
        elif name == "lean-index":
            targets.append(LeanIndex("lean-index", work, args.pdu, processes=args.processes))
        elif name == "verity-base":  # another checkout in the same run: before and after
            base = Verity("verity-base", work, args.pdu, processes=args.processes)
            base.repo, base.db = Path(args.baseline_repo).resolve(), PG_DB + "_base"
            targets.append(base)
    for t in targets:
        if isinstance(t, Verity):
            t.prepare()
    templates = _templates()
    log("objects: " + ", ".join(f"{KIND_LABELS[k]} {len(v)} bytes" for k, v in templates.items()))

    cases = []
    for senders in (1, 2):
        cases.append(Case("nodelay", "ct", args.files, senders))
    for senders in (1, 2):
        cases.append(Case("nodelay", "rtimage", args.rtimage_files, senders))
    for kind in ("small", "plan", "struct"):
        cases.append(Case("nodelay", kind, args.assoc_files, 2, per_object=True))
    for senders in (1, 2):
        cases.append(Case("nagle", "ct", args.nagle_files, senders))
        cases.append(Case("nagle", "small", args.small_files, senders))
    cases = [c for c in cases if c.mode in args.modes and c.kind in args.kinds]

    results: dict[tuple[str, Case], list[float]] = {}
    cpu: dict[tuple[str, Case], list[tuple[float, float]]] = {}
    seq = 0
    try:
        for rnd in range(args.rounds):
            order = targets if rnd % 2 == 0 else list(reversed(targets))
            for mode in args.modes:
                nodelay = mode == "nodelay"
                for t in order:
                    t.start(nodelay)
                    try:
                        for case in [c for c in cases if c.mode == mode]:
                            seq += 1
                            batch = Batch(templates[case.kind], case.n, work / f"batch-{seq}")
                            before = _target_cpu(t), _postgres_cpu()
                            secs = send(batch, case.senders, nodelay, args.pdu,
                                        case.per_object)
                            after = _target_cpu(t), _postgres_cpu()  # before stored()'s psql
                            cpu.setdefault((t.name, case), []).append(tuple(
                                (b - a) * 1000 / case.n for a, b in zip(before, after)))
                            deadline = time.monotonic() + 30
                            got = t.stored(batch)
                            while got < case.n and time.monotonic() < deadline:
                                time.sleep(0.5)
                                got = t.stored(batch)
                            if got != case.n:
                                raise RuntimeError(f"{t.name}: {got} of {case.n} stored")
                            rate = case.n / secs
                            results.setdefault((t.name, case), []).append(rate)
                            log(f"round {rnd + 1} {case.label} senders={case.senders} "
                                f"{t.name:10} {rate:7.1f} files/s")
                            shutil.rmtree(batch.folder)
                    finally:
                        t.stop()
    finally:
        for t in targets:
            t.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(results, [t.name for t in targets], cases, args)
    report_cpu(cpu, [t.name for t in targets], cases)
    return 0


def _cpu_seconds(pick: Any) -> float:
    """User + system CPU, with reaped children's, of the processes `pick(pgrp, comm)` picks."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2:].split()  # state, ppid, pgrp, ... (proc(5))
        if pick(int(fields[2]), comm):
            ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _target_cpu(t: Target) -> float:
    """The target's processes: its own session's group (storescp's forked children and the
    PostgreSQL backends are not in it; children it reaped count in its cutime)."""
    pgid = t.proc.pid if t.proc is not None else -1
    return _cpu_seconds(lambda pgrp, comm: pgrp == pgid)


def _postgres_cpu() -> float:
    """Every PostgreSQL process (the postmaster's cutime holds its ended backends): the
    index's share for the targets that keep it there; the machine is otherwise quiet."""
    return _cpu_seconds(lambda pgrp, comm: comm.startswith("postgres"))


def report_cpu(cpu: dict, names: list[str], cases: list[Case]) -> None:
    """CPU per object, the steadier figure on a shared machine: the target's processes and
    PostgreSQL's (the senders' not counted)."""
    log("")
    log("CPU per object, ms, median: the target's processes + PostgreSQL's (= in all)")
    log("| mode | objects | sent as | senders | " + " | ".join(names) + " |")
    log("|" + "---|" * (4 + len(names)))
    for case in cases:
        cells = []
        for name in names:
            samples = cpu.get((name, case), [])
            if not samples:
                cells.append("-")
                continue
            own = statistics.median(x for x, _ in samples)
            pg = statistics.median(y for _, y in samples)
            cells.append(f"{own:.1f} + {pg:.1f} (= {own + pg:.1f})")
        log(f"| {case.label} | {case.senders} | " + " | ".join(cells) + " |")


def report(results: dict, names: list[str], cases: list[Case], args: argparse.Namespace) -> None:
    pdu = f"{args.pdu} bytes for every target" if args.pdu else "each target's default"
    log("")
    log(f"files/s, median of {args.rounds} round(s) (min-max); max PDU: {pdu}")
    head = "| mode | objects | sent as | senders | " + " | ".join(names)
    ratios = [(a, b) for a in names for b in names if a == "verity" and b != a]
    ratios += [("lean", b) for b in names if b in ("orthanc", "orthanc-pg") and "lean" in names]
    head += "".join(f" | {a}/{b}" for a, b in ratios) + " |"
    log(head)
    log("|" + "---|" * (4 + len(names) + len(ratios)))
    for case in cases:
        cells = []
        med = {}
        for name in names:
            rates = results.get((name, case), [])
            if not rates:
                cells.append("-")
                continue
            med[name] = statistics.median(rates)
            cells.append(f"{med[name]:.0f} ({min(rates):.0f}-{max(rates):.0f})")
        rcells = [f"{med[a] / med[b]:.2f}" if a in med and b in med else "-" for a, b in ratios]
        log(f"| {case.label} | {case.senders} | " + " | ".join(cells)
            + "".join(f" | {r}" for r in rcells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few files, one round: a smoke run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", type=int, default=500, help="CT objects per measurement")
    ap.add_argument("--nagle-files", type=int, default=100,
                    help="CT objects per measurement in the Nagle mode (slow targets)")
    ap.add_argument("--small-files", type=int, default=200,
                    help="small objects per measurement in the Nagle mode")
    ap.add_argument("--rtimage-files", type=int, default=100,
                    help="RT Images (1024x1024) per measurement")
    ap.add_argument("--assoc-files", type=int, default=200,
                    help="objects per measurement sent one association per object")
    ap.add_argument("--kinds", nargs="+", default=list(KIND_LABELS), choices=list(KIND_LABELS),
                    help="which objects to send (default: all workloads)")
    ap.add_argument("--targets", nargs="+",
                    default=["storescp", "orthanc", "orthanc-pg", "lean", "verity"],
                    choices=["storescp", "orthanc", "orthanc-pg", "verity", "verity-base",
                             "lean", "lean-index"],
                    help="verity-base: runscp of --baseline-repo, beside verity in one run; "
                    "lean: tests/bench/lean_scp.py, the ceiling of a Python receiver; "
                    "lean-index: the same handing each object to Verity's store")
    ap.add_argument("--modes", nargs="+", default=["nodelay", "nagle"],
                    choices=["nodelay", "nagle"])
    ap.add_argument("--pdu", type=int, default=None,
                    help="max PDU for every target and sender (default: each one's own)")
    ap.add_argument("--processes", type=int, default=0,
                    help="runscp --processes (default: RV_SCP_PROCESSES)")
    ap.add_argument("--verity-repo", default=str(REPO),
                    help="run manage.py runscp from this checkout (to compare versions)")
    ap.add_argument("--baseline-repo", default=str(REPO),
                    help="the checkout the verity-base target runs (a commit before a change)")
    ap.add_argument("--workdir", default=None, help="where to write objects and stores")
    ap.add_argument("--keep", action="store_true", help="keep the work folder and logs")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.files, args.nagle_files, args.small_files = 1, 60, 20, 40
        args.rtimage_files, args.assoc_files = 20, 20
    for tool in ("storescu", "storescp", "Orthanc", "psql", "unshare", "ip"):
        if shutil.which(tool) is None and tool in _needed(args):
            sys.exit(f"{tool} is not installed (apt-get install dcmtk orthanc postgresql)")
    code = in_own_netns()
    return run(args) if code is None else code


def in_own_netns() -> int | None:
    """Outside the benchmark's namespace: run this script again inside a fresh one holding
    only loopback and return its exit code; inside it: None (go on)."""
    if os.environ.get(IN_NETNS) == "1":
        return None
    if os.geteuid() != 0:
        sys.exit("needs root for `unshare -n` (a network namespace with only loopback)")
    env = dict(os.environ, **{IN_NETNS: "1"})
    cmd = ["unshare", "-n", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
           PY, *sys.argv]
    return subprocess.run(cmd, env=env).returncode


def _needed(args: argparse.Namespace) -> set[str]:
    need = {"storescu", "unshare", "ip"}
    if "storescp" in args.targets:
        need.add("storescp")
    if "orthanc" in args.targets or "orthanc-pg" in args.targets:
        need.add("Orthanc")
    if "verity" in args.targets or "orthanc-pg" in args.targets:
        need.add("psql")
    return need


if __name__ == "__main__":
    sys.exit(main())
