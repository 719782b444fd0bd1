#!/usr/bin/env python3
"""History benchmark (issue 7): the main history queries through the HTTP API, each beside
the same query as hand-written SQL through psycopg, in the same run.

    createdb verity_scale
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/verity_scale .venv/bin/python manage.py migrate
    DATABASE_URL=... .venv/bin/python manage.py seed_clinic             # the full clinic
    DATABASE_URL=... .venv/bin/python tests/bench/history.py [--runs 50] [--explain]

It starts gunicorn (one sync worker, DEBUG off) on a free port, authenticates with a token
of a bench admin, and times each query `--runs` times after warm-up, alternating HTTP and
SQL so drift on a shared machine hits both alike. HTTP time is the whole request on a
kept-alive connection (auth, filters, query, JSON or CSV); SQL time is execute plus fetch
of the same rows. Prints p50 / p95 (ms) and the ratio of the p95s, as a Markdown table.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# The hand-written SQL: the rows of rv.history.COLUMNS, newest first, keyset order.
SELECT = """
SELECT bd.id, s.treated_at, bd.session_id, p.patient_id AS patient, pt.patient_id,
       pt.patient_name, p.course_id, c.code, s.plan_id, p.label, s.fraction_number, m.name,
       b.number, b.name, bd.specified_meterset, bd.delivered_meterset, bd.unit,
       bd.termination_status, bd.verification_status,
       (SELECT o.reason FROM rv_override o WHERE o.beam_delivery_id = bd.id
        OR (o.session_id = bd.session_id AND o.beam_delivery_id IS NULL
            AND o.channel_delivery_id IS NULL)
        ORDER BY o.beam_delivery_id IS NULL, o.id LIMIT 1),
       (SELECT u2.username FROM rv_override o JOIN auth_user u2 ON u2.id = o.authorised_by_id
        WHERE o.beam_delivery_id = bd.id
        OR (o.session_id = bd.session_id AND o.beam_delivery_id IS NULL
            AND o.channel_delivery_id IS NULL)
        ORDER BY o.beam_delivery_id IS NULL, o.id LIMIT 1),
       u.username
FROM rv_beamdelivery bd
JOIN rv_session s ON s.id = bd.session_id
JOIN rv_plan p ON p.id = s.plan_id
JOIN rv_patient pt ON pt.id = p.patient_id
JOIN rv_course c ON c.id = p.course_id
JOIN rv_treatmentmachine m ON m.id = s.machine_id
JOIN rv_beam b ON b.id = bd.beam_id
JOIN auth_user u ON u.id = s.recorded_by_id
"""
ORDER = " ORDER BY s.treated_at DESC, bd.session_id DESC, bd.id DESC"
KEYSET = (" AND s.treated_at <= %(t)s AND (s.treated_at < %(t)s OR (s.treated_at = %(t)s"
          " AND (bd.session_id < %(s)s OR (bd.session_id = %(s)s AND bd.id < %(i)s))))")
PAGE = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def setup() -> tuple[str, dict[str, Any]]:
    """A bench admin's token, and the subjects of the queries, from the seeded data."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from knox.models import AuthToken

    from rv.history import Cursor
    from rv.roles import ADMIN

    if connection.vendor != "postgresql":
        sys.exit("the history benchmark needs the seeded PostgreSQL database (DATABASE_URL)")
    user, _ = User.objects.get_or_create(username="bench_admin")
    user.groups.add(Group.objects.get(name=ADMIN))
    token = AuthToken.objects.create(user=user)[1]  # knox (issue 12): a fresh token a run
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), min(treated_at), max(treated_at) FROM rv_session")
        sessions, first, last = cur.fetchone()
        cur.execute("SELECT count(*) FROM rv_beamdelivery")
        deliveries = cur.fetchone()[0]
        # A patient in the middle of the list, a busy machine, a day and a month of it.
        cur.execute("SELECT pt.patient_id FROM rv_patient pt ORDER BY pt.id "
                    "OFFSET (SELECT count(*) / 2 FROM rv_patient) LIMIT 1")
        patient_id = cur.fetchone()[0]
        cur.execute("SELECT m.name, s.treated_at FROM rv_session s JOIN rv_treatmentmachine m "
                    "ON m.id = s.machine_id ORDER BY s.id OFFSET (SELECT count(*) / 2 "
                    "FROM rv_session) LIMIT 1")
        machine, when = cur.fetchone()
        # The year before that day, or the nearest whole year of data (the first and last
        # are partial).
        year = min(max(when.year - 1, first.year + 1), last.year - 1)
        # The deep page: 100,000 rows into a year's range (page 2,001 of 50).
        cur.execute(SELECT + " WHERE s.treated_at >= %s AND s.treated_at < %s" + ORDER
                    + " OFFSET 100000 LIMIT 1",
                    [f"{year}-01-01T00:00:00Z", f"{year + 1}-01-01T00:00:00Z"])
        deep = cur.fetchone()
    day = when.date()
    month_from = day.replace(day=1)
    month_to = (month_from.replace(day=28) + __import__("datetime").timedelta(days=4))
    month_to = month_to.replace(day=1) - __import__("datetime").timedelta(days=1)
    cursor = Cursor(deep[1], deep[2], deep[0])
    return token, {"sessions": sessions, "deliveries": deliveries, "first": first,
                   "last": last, "patient_id": patient_id, "machine": machine, "day": day,
                   "year": year, "month_from": month_from, "month_to": month_to,
                   "cursor": cursor}


def local_bounds(day_from: Any, day_to: Any) -> tuple[Any, Any]:
    from rv.filters import _day_start

    return _day_start(day_from), _day_start(day_to + __import__("datetime").timedelta(days=1))


def cases(subject: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, API path with query, SQL, SQL parameters)."""
    from datetime import date

    y = subject["year"]
    y_from, y_to = local_bounds(date(y, 1, 1), date(y, 12, 31))
    d_from, d_to = local_bounds(subject["day"], subject["day"])
    m_from, m_to = local_bounds(subject["month_from"], subject["month_to"])
    c = subject["cursor"]
    limit = f" LIMIT {PAGE + 1}"
    return [
        ("by patient (first page)",
         "/api/v1/history/?" + urlencode({"patient_id": subject["patient_id"]}),
         SELECT + " WHERE pt.patient_id = %(p)s" + ORDER + limit, {"p": subject["patient_id"]}),
        ("by machine and day",
         "/api/v1/history/?" + urlencode({"machine": subject["machine"],
                                          "date_from": subject["day"],
                                          "date_to": subject["day"]}),
         SELECT + " WHERE m.name = %(m)s AND s.treated_at >= %(a)s AND s.treated_at < %(b)s"
         + ORDER + limit, {"m": subject["machine"], "a": d_from, "b": d_to}),
        ("date range (a year), first page",
         "/api/v1/history/?" + urlencode({"date_from": f"{y}-01-01", "date_to": f"{y}-12-31"}),
         SELECT + " WHERE s.treated_at >= %(a)s AND s.treated_at < %(b)s" + ORDER + limit,
         {"a": y_from, "b": y_to}),
        ("date range (a year), page 2,001",
         "/api/v1/history/?" + urlencode({"date_from": f"{y}-01-01", "date_to": f"{y}-12-31",
                                          "cursor": c.encode()}),
         SELECT + " WHERE s.treated_at >= %(a)s AND s.treated_at < %(b)s" + KEYSET + ORDER
         + limit, {"a": y_from, "b": y_to, "t": c.treated_at, "s": c.session, "i": c.id}),
        ("CSV, one machine, one month",
         "/api/v1/history/csv/?" + urlencode({"machine": subject["machine"],
                                              "date_from": subject["month_from"],
                                              "date_to": subject["month_to"]}),
         SELECT + " WHERE m.name = %(m)s AND s.treated_at >= %(a)s AND s.treated_at < %(b)s"
         + ORDER, {"m": subject["machine"], "a": m_from, "b": m_to}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE too")
    args = parser.parse_args()
    token, subject = setup()
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    conninfo = {k: v for k, v in params.items()
                if k in ("dbname", "user", "password", "host", "port")}
    # psycopg's defaults: a statement run 5 times is prepared (planned once) from then on.
    sql_conn = psycopg.connect(**conninfo, autocommit=True)
    # Planned at each run, as Django's client-side binding does: the same work as the app.
    plain_conn = psycopg.connect(**conninfo, autocommit=True, prepare_threshold=None)
    port = free_port()
    env = {**os.environ, "DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
         "--log-level", "warning"], cwd=ROOT, env=env, start_new_session=True)
    try:
        http_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                http_conn.request("GET", "/api/v1/", headers={"Authorization": f"Token {token}"})
                http_conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
                http_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def via_http(path: str) -> Callable[[], int]:
            def go() -> int:
                http_conn.request("GET", path, headers={"Authorization": f"Token {token}"})
                response = http_conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise SystemExit(f"{path}: {response.status} {body[:300]!r}")
                return len(body)
            return go

        def via_sql(sql: str, values: dict[str, Any], conn: Any) -> Callable[[], int]:
            def go() -> int:
                with conn.cursor() as cur:
                    cur.execute(sql, values)
                    return len(cur.fetchall())
            return go

        print(f"Seeded: {subject['sessions']:,} sessions, {subject['deliveries']:,} beam "
              f"deliveries, {subject['first']:%Y-%m-%d} .. {subject['last']:%Y-%m-%d}; "
              f"{args.runs} runs each after {args.warmup} warm-up.\n")
        floor = via_http("/api/v1/history/?patient_id=no-such-patient")
        for _ in range(args.warmup):
            floor()
        tf = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            floor()
            tf.append((time.perf_counter() - t0) * 1000)
        print(f"HTTP floor (an empty history page: auth, role, filter, one query): p50 "
              f"{statistics.median(tf):.1f} ms, p95 {pct(tf, 0.95):.1f} ms\n")
        print("| query | rows | HTTP p50 | HTTP p95 | SQL p50 | SQL p95 | HTTP/SQL p50 "
              "| HTTP/SQL p95 | SQL unprepared p50 | p95 | HTTP/unprepared p50 | p95 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, path, sql, values in cases(subject):
            h = via_http(path)
            s, u = via_sql(sql, values, sql_conn), via_sql(sql, values, plain_conn)
            for _ in range(args.warmup):
                h()
                u()
                rows = s()
            th: list[float] = []
            ts: list[float] = []
            tu: list[float] = []
            for _ in range(args.runs):
                for fn, into in ((h, th), (s, ts), (u, tu)):
                    t0 = time.perf_counter()
                    fn()
                    into.append((time.perf_counter() - t0) * 1000)
            h50, h95 = statistics.median(th), pct(th, 0.95)
            s50, s95 = statistics.median(ts), pct(ts, 0.95)
            u50, u95 = statistics.median(tu), pct(tu, 0.95)
            print(f"| {name} | {rows} | {h50:.1f} | {h95:.1f} | {s50:.1f} | {s95:.1f} | "
                  f"{h50 / s50:.1f}x | {h95 / s95:.1f}x | {u50:.1f} | {u95:.1f} | "
                  f"{h50 / u50:.1f}x | {h95 / u95:.1f}x |", flush=True)
            if args.explain:
                with sql_conn.cursor() as cur:
                    cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, values)
                    print("\n```\n" + "\n".join(r[0] for r in cur.fetchall()) + "\n```\n")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        sql_conn.close()
        plain_conn.close()


if __name__ == "__main__":
    main()
