"""Gunicorn's gthread worker, made to read request heads in its event loop (issue 12).

The stock gthread worker (gunicorn 27) waits for a connection's first bytes without holding
a thread, but once bytes arrive a thread reads the request with a blocking recv() and no
time limit: a client sending its headers a byte at a time holds that thread as long as it
likes, and threads x workers such clients starve the server (slowloris; measured in
docs/security-web.md). This worker reads every request head (up to the blank line) in the
worker's event loop, non-blocking, as a buffering reverse proxy does; only a complete head
is handed to a thread. A head not complete within RV_HTTP_READ_TIMEOUT seconds closes the
connection, and a body must arrive within the same time once its thread starts reading it.
TLS in gunicorn itself is not supported by this worker (terminate TLS at the proxy).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import time
from functools import partial
from typing import Any

from gunicorn.http import get_parser
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import TConn, ThreadWorker

log = logging.getLogger("gunicorn.error")
READ_TIMEOUT = float(os.environ.get("RV_HTTP_READ_TIMEOUT", "20"))


class _HeadFirstSocket:
    """The connection's socket as the request parser sees it: the head read by the event
    loop first, then the socket itself, each recv() bounded by the request's deadline."""

    def __init__(self, sock: Any, client: Any) -> None:
        self._sock = sock
        self._client = client
        self._buffered = b""
        self.deadline = 0.0

    def feed(self, head: bytes) -> None:
        self._buffered += head
        self.deadline = time.monotonic() + READ_TIMEOUT

    def recv(self, size: int) -> bytes:
        if self._buffered:
            out, self._buffered = self._buffered[:size], self._buffered[size:]
            return out
        left = self.deadline - time.monotonic()
        if left <= 0:
            self._give_up()
        self._sock.settimeout(left)
        try:
            return bytes(self._sock.recv(size))
        except TimeoutError:
            self._give_up()
        finally:
            self._sock.settimeout(None)
        raise AssertionError("unreachable")

    def _give_up(self) -> None:
        log.warning("closing %s: request body not received within %.0f s", self._client,
                    READ_TIMEOUT)
        raise NoMoreData(b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class HeadBufferingWorker(ThreadWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heads: dict[Any, float] = {}  # connections whose head is being read: deadline

    def _max_head(self) -> int:
        cfg = self.cfg
        return int(cfg.limit_request_line + cfg.limit_request_fields *
                   (cfg.limit_request_field_size + 2) + 4)

    def accept(self, listener: Any) -> None:
        if self.cfg.is_ssl:
            return super().accept(listener)  # type: ignore[no-any-return]
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return None
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.head_sock = _HeadFirstSocket(conn.sock, conn.client)
        conn.parser = get_parser(self.cfg, conn.head_sock, conn.client)
        self._read_head(conn)
        return None

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection's next request: its head is read here too."""
        if not hasattr(conn, "head_sock"):
            return super().on_client_socket_readable(conn, client)  # type: ignore[no-any-return]
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_head(conn)
        return None

    def _read_head(self, conn: Any) -> None:
        conn.head = bytearray()
        conn.sock.setblocking(False)
        self.heads[conn] = time.monotonic() + READ_TIMEOUT
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head, conn))

    def _on_head(self, conn: Any, sock: Any) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        conn.head += data
        if b"\r\n\r\n" not in conn.head and len(conn.head) <= self._max_head():
            return
        self.poller.unregister(conn.sock)
        del self.heads[conn]
        conn.head_sock.feed(bytes(conn.head))
        conn.head = bytearray()
        conn.data_ready = True
        self.enqueue_req(conn)

    def _drop(self, conn: Any) -> None:
        self.heads.pop(conn, None)
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, deadline in self.heads.items() if deadline <= now]:
            log.warning("closing %s: request head not received within %.0f s "
                        "(RV_HTTP_READ_TIMEOUT)", conn.client, READ_TIMEOUT)
            self._drop(conn)
