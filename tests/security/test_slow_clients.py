"""Slow HTTP clients (slowloris, issue 12): the real gunicorn, started with config/gunicorn.py
as `manage.py serve` starts it, keeps answering while many more connections than it has
threads send their request headers a few bytes at a time; those are cut off after
RV_HTTP_READ_TIMEOUT. (Gunicorn's stock sync or gthread workers stop answering with
workers x threads such clients: docs/security-web.md.)"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
SLOW_CLIENTS = 64  # 4 x the 2 workers x 8 threads of config/gunicorn.py


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "DJANGO_DEBUG": "false", "RV_HTTP_READ_TIMEOUT": "3",
           "DATABASE_URL": f"sqlite:///{tmp_path}/web.sqlite3", "RV_WEB_WORKERS": "2",
           "RV_WEB_THREADS": "8"}
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi:application",
                             "-c", "config/gunicorn.py", "--bind", f"127.0.0.1:{port}"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):  # until it answers (or has died)
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                _get(port, timeout=1)
                break
            except OSError:
                threading.Event().wait(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _get(port: int, timeout: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /login/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return s.recv(64)


def test_slow_clients_do_not_starve_others(gunicorn: int) -> None:
    slow = [socket.create_connection(("127.0.0.1", gunicorn)) for _ in range(SLOW_CLIENTS)]
    stop = threading.Event()

    def drip() -> None:  # a header line a second on every slow connection
        for s in slow:
            s.sendall(b"GET /login/ HTTP/1.1\r\nHost: localhost\r\n")
        while not stop.wait(0.5):
            for s in slow:
                with contextlib.suppress(OSError):
                    s.sendall(b"X-Slow: 1\r\n")

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        for _ in range(5):  # answered while the slow clients hold their connections
            assert _get(gunicorn, timeout=30).startswith(b"HTTP/1.1 200")
        # and the slow ones are cut off (RV_HTTP_READ_TIMEOUT=3): EOF, not an answer
        slow[0].settimeout(60)
        got = b""
        with contextlib.suppress(ConnectionResetError):
            got = slow[0].recv(64)
        assert got == b""
    finally:
        stop.set()
        dripper.join()
        for s in slow:
            s.close()


def test_keep_alive_and_bodies_still_work(gunicorn: int) -> None:
    with socket.create_connection(("127.0.0.1", gunicorn), timeout=30) as s:
        body = b"username=nobody&password=wrong&csrfmiddlewaretoken=" + b"x" * 20000
        for _ in range(2):  # two requests on one connection, each with a body
            s.sendall(b"POST /login/ HTTP/1.1\r\nHost: localhost\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            assert head.startswith(b"HTTP/1.1 403"), head  # no CSRF cookie: body was read
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            rest = b""
            while len(rest) < length:
                rest += s.recv(length - len(rest))
            assert b"CSRF" in rest
