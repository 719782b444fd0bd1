#!/usr/bin/env python3
"""Profile Verity's SCP under one ingest workload (issue 16): CPU per object and where the
Python time goes.

    .venv/bin/python tests/bench/ingest_profile.py --kind small --per-object
    .venv/bin/python tests/bench/ingest_profile.py --kind ct -n 400 --senders 1
    .venv/bin/python tests/bench/ingest_profile.py --repo ../other-checkout ...  # before/after

Starts `manage.py runscp` with one listener process (so one process holds all the work) on
PostgreSQL (database `verity_profile`, dropped and created), sends a warm-up batch, then
`-n` objects of `--kind` (the benchmark's templates, fresh UIDs) with DCMTK `storescu`
(`TCP_NODELAY=1`) from `--senders` parallel senders, one association each, or one
association per object with `--per-object`. While they are sent, `py-spy` samples the SCP
(`--gil`: the thread holding the GIL, i.e. the Python CPU; `--idle`: wall time of every
thread). It prints objects/s, the SCP's CPU per object (user and system, from /proc), the
number of samples, and the functions with the most samples (inclusive), and keeps the raw
samples (py-spy's collapsed stacks) for a closer look.

Run it on a quiet machine: one figure, one run, no rounds. Needs DCMTK and py-spy
(`pip install py-spy`) and PostgreSQL on its Unix socket, as `make bench-ingest` does; no
root (no network namespace: it listens on 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (the benchmark's objects and helpers)

PORT = 11133
DB = "verity_profile"
MODES = {"gil": ["--gil"], "idle": ["--idle"], "cpu": ["--native"]}  # py-spy's flags
# py-spy reads native stacks only while the process is stopped (cpu mode costs the SCP more)
NONBLOCKING = {"gil": ["--nonblocking"], "idle": ["--nonblocking"], "cpu": []}


def _cpu_ticks(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])  # utime, stime (clock ticks)


def _send(files: list[Path], senders: int, per_object: bool) -> float:
    env = dict(os.environ, TCP_NODELAY="1")
    base = ["storescu", "-aec", ingest.AET, "-aet", "PROFILE_SCU", "127.0.0.1", str(PORT)]
    shares = [files[k::senders] for k in range(senders)]
    failed: list[str] = []

    def sender(share: list[Path]) -> None:
        batches = [[p] for p in share] if per_object else [share]
        for batch in batches:
            done = subprocess.run(base + [str(p) for p in batch], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  timeout=600)
            if done.returncode:
                failed.append(done.stderr.decode(errors="replace")[-300:])
                return

    threads = [threading.Thread(target=sender, args=(share,)) for share in shares]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise RuntimeError("storescu failed: " + " | ".join(failed))
    return time.perf_counter() - start


def _top(raw: Path, count: int) -> list[tuple[float, str]]:
    """Functions by inclusive share of the samples (py-spy's collapsed stacks)."""
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        samples = int(n)
        total += samples
        seen = set()
        for frame in stack.split(";"):
            name = frame.split(" (")[0]
            where = frame.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] if " (" in frame else ""
            key = f"{name} ({where})"
            if key not in seen:
                seen.add(key)
                inclusive[key] += samples
    return [(100 * v / max(total, 1), k) for k, v in inclusive.most_common(count)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", default="small", choices=list(ingest.KIND_LABELS))
    ap.add_argument("-n", type=int, default=100, help="objects profiled")
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--per-object", action="store_true", help="one association per object")
    ap.add_argument("--mode", choices=list(MODES), default="gil",
                    help="gil: the thread holding the GIL; idle: every thread's wall time; "
                    "cpu: threads on a CPU, with native (C) frames")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--repo", default=str(ingest.REPO), help="the checkout whose runscp runs")
    ap.add_argument("--server", choices=["verity", "lean", "lean-index"], default="verity",
                    help="lean, lean-index: tests/bench/lean_scp.py (see ingest.py's targets)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists() or shutil.which("storescu") is None:
        sys.exit("needs py-spy (pip install py-spy) and DCMTK's storescu")

    work = Path(tempfile.mkdtemp(prefix="verity-profile-"))
    psql = ["psql", "-h", ingest.PG_SOCKET, "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1"]
    subprocess.run(psql + ["-c", f"DROP DATABASE IF EXISTS {DB}"], check=True, timeout=60)
    subprocess.run(psql + ["-c", f"CREATE DATABASE {DB}"], check=True, timeout=60)
    env = dict(os.environ, DATABASE_URL=f"postgres://postgres@/{DB}?host={ingest.PG_SOCKET}",
               RV_ACCEPT_UNKNOWN_AE="true", RV_DATA_DIR=str(work / "data"),
               RV_AE_TITLE=ingest.AET, DJANGO_SECRET_KEY="profile-only-not-secret")
    repo = Path(args.repo).resolve()
    subprocess.run([ingest.PY, "manage.py", "migrate", "--no-input", "-v0"], cwd=repo, env=env,
                   check=True, timeout=300)
    template = ingest._templates()[args.kind]
    warm = ingest.Batch(template, 20, work / "warm")
    batch = ingest.Batch(template, args.n, work / "batch")
    log = open(work / "runscp.log", "wb")  # noqa: SIM115 - closed below
    cmd = [ingest.PY, "manage.py", "runscp", "--host", "127.0.0.1", "--port", str(PORT),
           "--processes", "1", "--grace", "5"]
    if args.server != "verity":  # the ingest benchmark's lean receiver, one process
        cmd = [ingest.PY, str(repo / "tests" / "bench" / "lean_scp.py"), "--port", str(PORT),
               "--processes", "1", "--data", str(work / "data"),
               "--index", "verity" if args.server == "lean-index" else "lean",
               "--dsn", f"host={ingest.PG_SOCKET} user=postgres dbname={DB}"]
    scp = subprocess.Popen(cmd, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)
    sampler = None
    try:
        ingest._wait_port(PORT, scp, work / "runscp.log")
        _send(warm.files, args.senders, args.per_object)
        raw = work / "samples.txt"
        sampler = subprocess.Popen([spy, "record", "-p", str(scp.pid), "-r", str(args.rate),
                                    *MODES[args.mode], "--format", "raw", "-o", str(raw),
                                    *NONBLOCKING[args.mode], "-d", "3600"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        before = _cpu_ticks(scp.pid)
        seconds = _send(batch.files, args.senders, args.per_object)
        after = _cpu_ticks(scp.pid)
        sampler.send_signal(signal.SIGINT)
        sampler.wait(timeout=60)
        tick = os.sysconf("SC_CLK_TCK")
        user, system = ((a - b) / tick * 1000 / args.n for a, b in zip(after, before))
        how = "one association per object" if args.per_object else "one association each"
        print(f"{args.n} x {ingest.KIND_LABELS[args.kind]}, {args.senders} sender(s), {how}: "
              f"{args.n / seconds:.1f} objects/s; SCP CPU {user + system:.1f} ms/object "
              f"(user {user:.1f}, system {system:.1f})")
        samples = sum(int(line.rpartition(" ")[2]) for line in raw.read_text().splitlines())
        print(f"py-spy --{args.mode}: {samples} samples at {args.rate} Hz "
              f"({samples / args.rate * 1000 / args.n:.1f} ms per object); raw: {raw}")
        for share, name in _top(raw, args.top):
            print(f"{share:5.1f} %  {name}")
    finally:
        if sampler is not None and sampler.poll() is None:
            sampler.kill()
        os.killpg(scp.pid, signal.SIGTERM)
        try:
            scp.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(scp.pid, signal.SIGKILL)
        log.close()
        if not args.keep:
            shutil.rmtree(work / "data", ignore_errors=True)
            shutil.rmtree(work / "warm", ignore_errors=True)
            shutil.rmtree(work / "batch", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
