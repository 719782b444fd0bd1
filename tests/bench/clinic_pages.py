#!/usr/bin/env python3
"""Clinic pages benchmark (issue 15): the day list, the patient chart, the plan page and the
task pages at a large clinic, each through HTTP beside the same data read with hand-written
SQL through psycopg, in the same run.

    createdb verity_scale
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/verity_scale .venv/bin/python manage.py migrate
    DATABASE_URL=... .venv/bin/python manage.py seed_clinic             # the full clinic
    DATABASE_URL=... .venv/bin/python tests/bench/clinic_pages.py [--runs 50] [--queries]

It starts gunicorn (one sync worker, DEBUG off) on a free port, logs in a bench therapist
(the day list) and a bench physicist (the chart, the plan page, the task pages) by session
cookie, picks the pages' subjects from the seeded data (the busiest machine on the first
day with appointments; the patient on treatment with the most fractions delivered, and that
course's plan), and times each page `--runs` times after warm-up, alternating HTTP and SQL
so drift on a shared machine hits both alike. HTTP time is the whole request (session,
role, queries, template); SQL time is execute plus fetch of the same rows, by statements
written by hand, on a psycopg connection with psycopg's defaults (a statement run 5 times
is prepared) and on one that never prepares (planned at each run, as Django's client-side
binding is). Prints p50 / p95 (ms) as a Markdown table. `--queries` first prints each
page's number of SQL queries and their time in the database as Django sees them (in
process, rv's own code) and the slowest ones.
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# --- the hand-written SQL: what each page shows -------------------------------------------

# The day list: the machine's appointments that day by time, patient, plan, course, the
# fractions planned, and the flags (first fraction's day, NOT_VERIFIED sessions to review,
# images to review, imaging or a new start that day) over each plan's revisions.
DAY_LIST = ["""
WITH day AS (
  SELECT a.id, a.plan_id, a.activity, a.fraction_number, a.time, a.duration_minutes,
         a.status, a.note, a.pattern, a.created_at, p.patient_id, p.course_id
  FROM rv_appointment a JOIN rv_plan p ON p.id = a.plan_id
  WHERE a.machine_id = %(m)s AND a.date = %(d)s AND a.status <> 'CANCELLED'),
chain AS (
  SELECT d.id AS appointment, q.id AS plan_id FROM day d
  JOIN rv_plan q ON q.patient_id = d.patient_id)
SELECT d.id, d.time, d.duration_minutes, d.activity, d.fraction_number, d.status, d.note,
       pt.patient_name, pt.patient_id, pt.birth_date, p.label, p.revision, c.treatment_status,
       (SELECT sum(fg.fractions_planned) FROM rv_fractiongroup fg WHERE fg.plan_id = p.id),
       (SELECT min(s.treated_at) FROM rv_session s JOIN chain ch ON ch.plan_id = s.plan_id
        WHERE ch.appointment = d.id AND s.fraction_number = 1 AND NOT s.continuation),
       EXISTS (SELECT 1 FROM rv_session s JOIN chain ch ON ch.plan_id = s.plan_id
               WHERE ch.appointment = d.id AND s.verification_status = 'NOT_VERIFIED'
               AND s.reviewed_at IS NULL),
       EXISTS (SELECT 1 FROM rv_rtimagelink i JOIN chain ch ON ch.plan_id = i.plan_id
               WHERE ch.appointment = d.id AND i.review_status = 'PENDING'
               AND i.kind <> 'DRR'),
       EXISTS (SELECT 1 FROM rv_appointment o JOIN rv_plan op ON op.id = o.plan_id
               WHERE op.patient_id = d.patient_id AND o.date = %(d)s
               AND o.activity IN ('IMAGING', 'NEW_START')
               AND o.status NOT IN ('CANCELLED', 'MISSED'))
FROM day d JOIN rv_plan p ON p.id = d.plan_id JOIN rv_patient pt ON pt.id = p.patient_id
JOIN rv_course c ON c.id = p.course_id
ORDER BY d.time NULLS LAST, d.created_at, d.id
"""]

# The chart: the patient, each course with its plans (fractions planned and delivered, what
# awaits review) and its current prescriptions with their reference points.
CHART = ["""
SELECT pt.id, pt.patient_id, pt.patient_name, pt.birth_date, pt.sex FROM rv_patient pt
WHERE pt.id = %(p)s
""", """
SELECT c.id, c.code, c.status, p.id, p.label, p.name, p.revision, p.status,
       p.dicom_approval_status, p.created_at,
       (SELECT sum(fg.fractions_planned) FROM rv_fractiongroup fg WHERE fg.plan_id = p.id),
       (SELECT count(DISTINCT s.fraction_number) FROM rv_session s
        WHERE s.plan_id = p.id AND s.fraction_complete),
       (SELECT count(*) FROM rv_devicerecord r WHERE r.plan_id = p.id AND r.reviewed_at IS NULL
        AND (r.differences::text <> '[]' OR r.violations::text <> '[]'))
       + (SELECT count(*) FROM rv_rtimagelink i WHERE i.plan_id = p.id
          AND i.review_status = 'PENDING' AND i.kind <> 'DRR')
FROM rv_course c LEFT JOIN rv_plan p ON p.course_id = c.id
WHERE c.patient_id = %(p)s ORDER BY c.created_at, c.id, p.label, p.revision
""", """
SELECT rx.id, rx.course_id, rx.site, rx.version, rx.status, rx.dose_per_fraction,
       rx.fractions, rx.total_dose, rx.technique, u.username, rx.signed_at, r.name, r.primary,
       r.session_limit, r.daily_limit, r.total_limit
FROM rv_prescription rx JOIN rv_course c ON c.id = rx.course_id
LEFT JOIN auth_user u ON u.id = rx.signed_by_id
LEFT JOIN rv_prescriptionreference r ON r.prescription_id = rx.id
WHERE c.patient_id = %(p)s AND rx.status <> 'SUPERSEDED' ORDER BY rx.course_id, rx.site
"""]

# The plan page: the plan, its beams and fraction groups, dose references with the dose
# delivered to each, its sessions with their deliveries and overrides, its appointments,
# and its course's prescription.
PLAN = ["""
SELECT p.*, pt.patient_name, pt.patient_id, c.code, c.treatment_status, u.username
FROM rv_plan p JOIN rv_patient pt ON pt.id = p.patient_id JOIN rv_course c ON c.id = p.course_id
LEFT JOIN auth_user u ON u.id = p.approved_by_id WHERE p.id = %(plan)s
""", """
SELECT b.id, b.number, b.name, b.radiation_type, b.nominal_energy, m.name, fgb.meterset,
       fgb.dose, fg.number, fg.fractions_planned
FROM rv_beam b LEFT JOIN rv_treatmentmachine m ON m.id = b.machine_id
LEFT JOIN rv_fractiongroupbeam fgb ON fgb.beam_id = b.id
LEFT JOIN rv_fractiongroup fg ON fg.id = fgb.fraction_group_id
WHERE b.plan_id = %(plan)s ORDER BY b.number
""", """
SELECT d.number, d.description, d.target_prescription_dose, sd.cumulative_dose,
       s.fraction_number
FROM rv_dosereference d LEFT JOIN rv_sessiondose sd ON sd.dose_reference_id = d.id
LEFT JOIN rv_session s ON s.id = sd.session_id
WHERE d.plan_id = %(plan)s ORDER BY d.number, s.treated_at
""", """
SELECT s.id, s.fraction_number, s.continuation, s.treated_at, s.verification_status,
       m.name, u.username, bd.delivered_meterset, bd.specified_meterset, bd.unit,
       bd.termination_status, bd.verification_status, b.number, b.name, o.reason, o.rule,
       o.parameter, ou.username
FROM rv_session s JOIN rv_treatmentmachine m ON m.id = s.machine_id
LEFT JOIN auth_user u ON u.id = s.recorded_by_id
LEFT JOIN rv_beamdelivery bd ON bd.session_id = s.id
LEFT JOIN rv_beam b ON b.id = bd.beam_id
LEFT JOIN rv_override o ON o.beam_delivery_id = bd.id
LEFT JOIN auth_user ou ON ou.id = o.authorised_by_id
WHERE s.plan_id = %(plan)s ORDER BY s.fraction_number, s.treated_at, s.id, b.number
""", """
SELECT a.id, a.activity, a.fraction_number, a.date, a.time, a.duration_minutes, a.status,
       m.name, (SELECT min(s.treated_at) FROM rv_session s WHERE s.appointment_id = a.id)
FROM rv_appointment a JOIN rv_treatmentmachine m ON m.id = a.machine_id
WHERE a.plan_id = %(plan)s ORDER BY a.date, a.time NULLS LAST, a.created_at, a.id
""", """
SELECT rx.id, rx.site, rx.version, rx.status, rx.dose_per_fraction, rx.fractions,
       rx.total_dose, u.username, r.name, r.primary
FROM rv_prescription rx JOIN rv_plan p ON p.course_id = rx.course_id
LEFT JOIN auth_user u ON u.id = rx.signed_by_id
LEFT JOIN rv_prescriptionreference r ON r.prescription_id = rx.id
WHERE p.id = %(plan)s AND rx.status <> 'SUPERSEDED'
"""]

# The task pages: a page (100) of open tasks with their patient and plan, by due date, and
# how many there are. "My tasks": the user's and their roles' given to nobody.
_TASKS = """
SELECT t.id, t.kind, t.title, t.due_date, t.status, t.assigned_role, pt.patient_name,
       pt.patient_id, p.label, au.username
FROM rv_task t LEFT JOIN rv_patient pt ON pt.id = t.patient_id
LEFT JOIN rv_plan p ON p.id = t.plan_id LEFT JOIN auth_user au ON au.id = t.assigned_to_id
WHERE t.status = 'OPEN' AND {where} ORDER BY t.due_date, t.id LIMIT 100
"""
_MINE = ("(t.assigned_to_id = %(u)s OR (t.assigned_to_id IS NULL AND t.assigned_role IN "
         "(SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id "
         "WHERE ug.user_id = %(u)s)))")
MY_TASKS = [_TASKS.format(where=_MINE),
            "SELECT count(*) FROM rv_task t WHERE t.status = 'OPEN' AND " + _MINE]
ALL_TASKS = [_TASKS.format(where="true"),
             "SELECT count(*) FROM rv_task t WHERE t.status = 'OPEN'",
             "SELECT DISTINCT u.id, u.username FROM auth_user u JOIN auth_user_groups ug ON "
             "ug.user_id = u.id JOIN auth_group g ON g.id = ug.group_id WHERE u.is_active AND "
             "g.name IN ('therapist', 'physicist', 'physician') ORDER BY u.username"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def setup() -> tuple[dict[str, str], dict[str, Any]]:
    """Session cookies of a bench therapist and physicist, and the pages' subjects."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client

    from rv.roles import PHYSICIST, THERAPIST

    if connection.vendor != "postgresql":
        sys.exit("the clinic pages benchmark needs the seeded PostgreSQL database "
                 "(DATABASE_URL)")
    cookies: dict[str, str] = {}
    users: dict[str, int] = {}
    for role in (THERAPIST, PHYSICIST):
        user, _ = User.objects.get_or_create(username=f"bench_{role}")
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        client = Client()
        client.force_login(user)
        cookies[role] = client.cookies["sessionid"].value
        users[role] = user.pk
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM rv_beamdelivery")
        deliveries = cur.fetchone()[0]
        cur.execute("SELECT count(*), min(date) FROM rv_appointment")
        appointments, day = cur.fetchone()
        if day is None:
            sys.exit("no appointments: seed the clinic with this version of seed_clinic")
        cur.execute("SELECT m.id, m.name, count(*) FROM rv_appointment a JOIN "
                    "rv_treatmentmachine m ON m.id = a.machine_id WHERE a.date = %s "
                    "GROUP BY m.id, m.name ORDER BY count(*) DESC, m.name LIMIT 1", [day])
        machine_id, machine, rows = cur.fetchone()
        # The patient on treatment with the most fractions delivered (and the most courses).
        cur.execute("SELECT p.id, p.patient_id, count(*) FROM rv_plan p JOIN rv_session s "
                    "ON s.plan_id = p.id WHERE p.status = 'APPROVED' GROUP BY p.id "
                    "ORDER BY count(*) DESC, (SELECT count(*) FROM rv_course c "
                    "WHERE c.patient_id = p.patient_id) DESC, p.id LIMIT 1")
        plan, patient, sessions = cur.fetchone()
        cur.execute("SELECT count(*) FROM rv_task WHERE status = 'OPEN'")
        open_tasks = cur.fetchone()[0]
    return cookies, {"deliveries": deliveries, "appointments": appointments, "day": day,
                     "machine": machine, "machine_id": machine_id, "rows": rows,
                     "patient": patient, "plan": plan, "sessions": sessions,
                     "physicist": users[PHYSICIST], "open_tasks": open_tasks}


def pages(subject: dict[str, Any]) -> list[tuple[str, str, str, list[str], dict[str, Any]]]:
    """(name, role, path, SQL statements, their parameters)."""
    day = subject["day"]
    return [
        (f"day list ({subject['rows']} appointments)", "therapist",
         f"/console/{subject['machine']}/?date={day:%Y-%m-%d}", DAY_LIST,
         {"m": subject["machine_id"], "d": day}),
        ("patient chart", "physicist", f"/patients/{subject['patient']}/", CHART,
         {"p": subject["patient"]}),
        (f"plan page ({subject['sessions']} sessions)", "physicist",
         f"/plans/{subject['plan']}/", PLAN, {"plan": subject["plan"]}),
        ("my tasks (physicist)", "physicist", "/tasks/", MY_TASKS,
         {"u": subject["physicist"]}),
        ("all tasks (open)", "physicist", "/tasks/all/", ALL_TASKS, {}),
    ]


def explain_queries(cases: list[tuple[str, str, str, list[str], dict[str, Any]]]) -> None:
    """Each page in process: its queries as Django runs them, and the slowest three."""
    from django.contrib.auth.models import User
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    clients = {}
    for role in ("therapist", "physicist"):
        clients[role] = Client(HTTP_HOST="localhost")
        clients[role].force_login(User.objects.get(username=f"bench_{role}"))
    print("| page | queries | ms in the database |\n|---|---:|---:|")
    slow: list[str] = []
    for name, role, path, _, _ in cases:
        clients[role].get(path)  # warm
        reset_queries()
        with CaptureQueriesContext(connection) as ctx:
            assert clients[role].get(path).status_code == 200
        took = [(float(q["time"]) * 1000, q["sql"]) for q in ctx.captured_queries]
        print(f"| {name} | {len(took)} | {sum(t for t, _ in took):.1f} |")
        for ms, sql in sorted(took, reverse=True)[:3]:
            slow.append(f"- {name}: {ms:.1f} ms: {sql[:300]}")
    print("\nSlowest queries:\n" + "\n".join(slow) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--queries", action="store_true",
                        help="print each page's queries as Django runs them, first")
    args = parser.parse_args()
    cookies, subject = setup()
    import psycopg
    from django.db import connection

    cases = pages(subject)
    if args.queries:
        explain_queries(cases)
    params = connection.get_connection_params()
    conninfo = {k: v for k, v in params.items()
                if k in ("dbname", "user", "password", "host", "port")}
    sql_conn = psycopg.connect(**conninfo, autocommit=True)
    plain_conn = psycopg.connect(**conninfo, autocommit=True, prepare_threshold=None)
    port = free_port()
    env = {**os.environ, "DJANGO_DEBUG": "false", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    server = subprocess.Popen(
        [str(gunicorn), "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
         "--log-level", "warning"], cwd=ROOT, env=env, start_new_session=True)
    try:
        def via_http(path: str, role: str) -> Callable[[], int]:
            def go() -> int:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", path, headers={"Cookie": f"sessionid={cookies[role]}"})
                response = conn.getresponse()
                body = response.read()
                conn.close()
                if response.status != 200:
                    raise SystemExit(f"{path}: {response.status} {body[:300]!r}")
                return len(body)
            return go

        deadline = time.monotonic() + 60
        while True:
            try:
                via_http("/tasks/", "physicist")()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

        def via_sql(statements: list[str], values: dict[str, Any], conn: Any
                    ) -> Callable[[], int]:
            def go() -> int:
                rows = 0
                with conn.cursor() as cur:
                    for sql in statements:
                        cur.execute(sql, values)
                        rows += len(cur.fetchall())
                return rows
            return go

        print(f"Seeded: {subject['deliveries']:,} beam deliveries, {subject['appointments']:,} "
              f"appointments, {subject['open_tasks']:,} open tasks; day list of "
              f"{subject['machine']} on {subject['day']:%Y-%m-%d}; {args.runs} runs each "
              f"after {args.warmup} warm-up.\n")
        print("| page | HTTP p50 | HTTP p95 | SQL p50 | SQL p95 | SQL unprepared p50 | p95 "
              "| HTTP/unprepared p95 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, role, path, statements, values in cases:
            h = via_http(path, role)
            s, u = via_sql(statements, values, sql_conn), via_sql(statements, values, plain_conn)
            for _ in range(args.warmup):
                h()
                u()
                s()
            th: list[float] = []
            ts: list[float] = []
            tu: list[float] = []
            for _ in range(args.runs):
                for fn, into in ((h, th), (s, ts), (u, tu)):
                    t0 = time.perf_counter()
                    fn()
                    into.append((time.perf_counter() - t0) * 1000)
            h95, u95 = pct(th, 0.95), pct(tu, 0.95)
            print(f"| {name} | {statistics.median(th):.1f} | {h95:.1f} | "
                  f"{statistics.median(ts):.1f} | {pct(ts, 0.95):.1f} | "
                  f"{statistics.median(tu):.1f} | {u95:.1f} | {h95 / u95:.1f}x |", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        sql_conn.close()
        plain_conn.close()


if __name__ == "__main__":
    main()
