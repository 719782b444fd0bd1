#!/usr/bin/env python3
"""What each ingest target does to make a stored object durable (issue 16): the flushes to
disk per object, counted, not read off documentation.

    .venv/bin/python tests/bench/durability.py              # Orthanc, Orthanc+PG, Verity
    .venv/bin/python tests/bench/durability.py -n 100 --kind small

Each target of the ingest benchmark (`tests/bench/ingest.py`, the same configurations;
`lean` is tests/bench/lean_scp.py, which is meant to match Verity's flushes) is
started under `strace -f`, which records every fsync, fdatasync, sync_file_range and rename
with the path of its file; `-n` fresh objects are sent by one `storescu` (one association,
`TCP_NODELAY=1`); the target is stopped and its trace counted by what was flushed: the
stored files, folders, the index's own files (SQLite's database and write-ahead log), the
rest. For a target whose index is in PostgreSQL, the server's own WAL flushes are read from
`pg_stat_wal` (its `wal_sync` counter, reset before and read once the target's connections
have closed and reported): a commit that waits for its WAL to reach the disk shows as about
one flush per transaction; a server that is quiet otherwise adds little to that count.

What it shows is a property of each program, not a speed: strace slows every traced system
call, so no rate is printed. Needs root (`unshare -n`, as the ingest benchmark), DCMTK,
Orthanc and its PostgreSQL plugin, strace, and PostgreSQL on its Unix socket.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (the benchmark's targets, objects and sender)

WARM = 5  # objects sent before the count starts (the trace holds them too)
CALLS = "fsync,fdatasync,sync_file_range,syncfs,rename,renameat,renameat2"
# strace -y: `fsync(12</path/to/file>) = 0`; renames carry their paths as strings.
LINE = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+)")
FD_PATH = re.compile(r"^-?\d+<([^>]*)>")


class Traced:
    """Wraps a target's command line in strace; the trace lands beside the target's log."""

    def __init__(self, target: ingest.Target) -> None:
        self.target = target
        self.trace = target.work / f"{target.name}.strace"
        spawn = target._spawn

        def traced_spawn(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
            # -ff: one file per thread, so no call is split across lines by another's
            spawn(["strace", "-ff", "-qq", "-y", "-e", f"trace={CALLS}", "-o", str(self.trace),
                   *cmd], env, cwd)

        target._spawn = traced_spawn  # type: ignore[method-assign]


def classify(path: str, work: Path) -> str:
    if path.endswith((".sqlite3", ".db", "-wal", "-journal", "-shm")) or "/index" in path:
        return "index file"
    p = Path(path)
    if p.is_dir():
        return "folder"
    if str(p).startswith(str(work)):
        return "stored file"
    return "other"


def count(trace: Path, work: Path) -> collections.Counter:
    seen: collections.Counter = collections.Counter()
    lines = [line for part in sorted(trace.parent.glob(trace.name + ".*"))
             for line in part.read_text(errors="replace").splitlines()]
    for line in lines:
        m = LINE.match(line)
        if not m or m.group(3).startswith("-"):
            continue
        call, args = m.group(1), m.group(2)
        if call.startswith("rename"):
            seen["rename"] += 1
            continue
        fd = FD_PATH.match(args)
        what = classify(fd.group(1), work) if fd else "other"
        seen[f"{call} {what}"] += 1
    return seen


def pg(sql: str, db: str = "postgres") -> str:
    out = subprocess.run(["psql", "-h", ingest.PG_SOCKET, "-U", "postgres", "-d", db, "-tAq",
                          "-c", sql], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def wal_syncs() -> int:
    return int(pg("SELECT wal_sync FROM pg_stat_wal"))


def measure(target: ingest.Target, template: bytes, n: int, uses_pg: bool) -> dict:
    traced = Traced(target)
    target.start(True)
    try:
        ingest.send(ingest.Batch(template, WARM, target.work / f"warm-{target.name}"), 1,
                    True, None)
        time.sleep(1.5)  # the warm-up's statistics reported before the reset
        if uses_pg:
            pg("SELECT pg_stat_reset_shared('wal')")
        batch = ingest.Batch(template, n, target.work / f"batch-{target.name}")
        ingest.send(batch, 1, True, None)
        stored = target.stored(batch)
    finally:
        target.stop()
    # A backend reports its WAL statistics when its connection closes; the walwriter
    # and checkpointer within a second or so.
    time.sleep(2.0)
    wal = wal_syncs() if uses_pg else None
    return {"stored": stored, "calls": count(traced.trace, target.work), "wal_sync": wal}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=50, help="objects per target")
    ap.add_argument("--kind", default="ct", choices=list(ingest.KIND_LABELS))
    ap.add_argument("--targets", nargs="+", default=["orthanc", "orthanc-pg", "verity", "lean"],
                    choices=["orthanc", "orthanc-pg", "verity", "lean"])
    ap.add_argument("--keep", action="store_true", help="keep the work folder and traces")
    args = ap.parse_args()
    for tool in ("strace", "storescu", "Orthanc", "psql"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed")
    code = ingest.in_own_netns()
    if code is not None:
        return code

    work = Path(tempfile.mkdtemp(prefix="verity-durability-"))
    template = ingest._templates()[args.kind]
    rows = []
    try:
        for name in args.targets:
            if name == "orthanc":
                target, uses_pg = ingest.Orthanc(name, work, None), False
            elif name == "orthanc-pg":
                target, uses_pg = ingest.OrthancPG(name, work, None), True
            else:
                kind = ingest.Lean if name == "lean" else ingest.Verity
                target, uses_pg = kind(name, work, None, processes=1), True
                target.prepare()
            result = measure(target, template, args.n, uses_pg)
            if result["stored"] != args.n:
                raise RuntimeError(f"{name}: {result['stored']} of {args.n} stored")
            rows.append((name, result))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            ingest.log(f"traces kept in {work}")

    n = args.n
    ingest.log(f"\n{ingest.KIND_LABELS[args.kind]} x{n} after {WARM} (traced calls per object "
               f"of the {n + WARM}, PostgreSQL's WAL flushes per object of the {n})")
    kinds = sorted({k for _, r in rows for k in r["calls"]})
    ingest.log("| target | " + " | ".join(kinds) + " | PostgreSQL WAL flushes |")
    ingest.log("|---|" + "---|" * (len(kinds) + 1))
    for name, r in rows:
        cells = [f"{r['calls'].get(k, 0) / (n + WARM):.2f}" for k in kinds]
        wal = "-" if r["wal_sync"] is None else f"{r['wal_sync'] / n:.2f}"
        ingest.log(f"| {name} | " + " | ".join(cells) + f" | {wal} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
