#!/usr/bin/env python3
"""The ceiling of a store-only receiver in Python (issue 16): an experiment, not Verity.

    .venv/bin/python tests/bench/ingest.py --targets orthanc lean verity --modes nodelay

What a Python C-STORE SCP costs when it builds nothing it does not need: no pynetdicom
(its own PDU reads and writes, a few lines each), no pydicom, no Django. It keeps Verity's
durability: each object is written as a Part 10 file to a part in `.tmp`, hashed as it is
written, fsynced, renamed to its SHA-256 name in a two-level folder (new folders made and
their parents fsynced) and the folder fsynced; then one row is committed in PostgreSQL
(`synchronous_commit` as the server has it) with a prepared INSERT, and only then the
C-STORE response 0x0000 goes out. It does none of Verity's other work: no header read (no
patient, study or series rows), no association log, no AE or SOP class policy, no limits
or timeouts against a hostile peer, no clinical import, no audit. So the figure it gives
is how fast a Python receiver could be at Verity's durability, and the gap between it and
Verity is what pynetdicom, pydicom, Django and the clinical work cost.

With `--index verity` (the `lean-index` target) the lean receiver hands each object to
Verity's own store instead of its one INSERT: `rv.ingest.object_receive`, as Verity's
C-STORE handler does (header read, archive index, clinical hooks, the same durable
placement), one worker thread per process with its database connection. The gap between
`lean-index` and Verity is then pynetdicom and the association's own work; between `lean`
and `lean-index`, the store's.

One process per core accepts on the shared port (SO_REUSEPORT), a thread per association.
Accepts every presentation context whose transfer syntaxes include Explicit or Implicit VR
Little Endian; answers C-ECHO; any other request aborts.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import socket
import struct
import sys
import tempfile
import threading
from pathlib import Path

import psycopg

EXPLICIT, IMPLICIT = b"1.2.840.10008.1.2.1", b"1.2.840.10008.1.2"
APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
IMPL_UID = b"1.2.826.0.1.3680043.10.1416.9"
MAX_PDU = 131072
TABLE = "lean_instance"
QUICKACK = getattr(socket, "TCP_QUICKACK", 12)  # Linux


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("peer closed")
        got += k
    return buf


def _read_pdu(sock: socket.socket) -> tuple[int, bytearray]:
    # As Verity's PeerSocket: ACK at once, so a sender with Nagle on does not wait for a
    # delayed ACK on every object (Linux clears TCP_QUICKACK again by itself: tcp(7)).
    sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
    head = _recv_exact(sock, 6)
    kind, length = head[0], struct.unpack(">I", head[2:6])[0]
    if length > 1 << 24:
        raise ConnectionError("PDU too long")
    return kind, _recv_exact(sock, length)


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BxH", kind, len(body)) + body


def _pdu(kind: int, body: bytes) -> bytes:
    return struct.pack(">BxI", kind, len(body)) + body


def _uid(value: bytes) -> bytes:
    return value.rstrip(b"\0 ")


def accept(rq: bytearray) -> tuple[bytes, dict[int, bytes]]:
    """The A-ASSOCIATE-AC for an A-ASSOCIATE-RQ's body, and the accepted contexts' syntaxes."""
    called, calling = bytes(rq[4:20]), bytes(rq[20:36])
    items = [_item(0x10, APP_CONTEXT)]
    accepted: dict[int, bytes] = {}
    at = 68
    while at + 4 <= len(rq):
        kind, length = rq[at], struct.unpack(">H", rq[at + 2:at + 4])[0]
        body = rq[at + 4:at + 4 + length]
        at += 4 + length
        if kind != 0x20:
            continue
        ctx, syntaxes, sub = body[0], [], 4
        while sub + 4 <= len(body):
            skind, slen = body[sub], struct.unpack(">H", body[sub + 2:sub + 4])[0]
            if skind == 0x40:
                syntaxes.append(_uid(bytes(body[sub + 4:sub + 4 + slen])))
            sub += 4 + slen
        chosen = next((s for s in (EXPLICIT, IMPLICIT) if s in syntaxes), None)
        result = 0 if chosen else 4
        if chosen:
            accepted[ctx] = chosen
        items.append(_item(0x21, bytes([ctx, 0, result, 0]) + _item(0x40, chosen or IMPLICIT)))
    user = _item(0x51, struct.pack(">I", MAX_PDU)) + _item(0x52, IMPL_UID)
    items.append(_item(0x50, user))
    body = struct.pack(">H2x", 1) + called + calling + bytes(32) + b"".join(items)
    return _pdu(0x02, body), accepted


def command_fields(data: bytes) -> dict[int, bytes]:
    """A command set (Implicit VR Little Endian, group 0000) as element -> value."""
    out, at = {}, 0
    while at + 8 <= len(data):
        _group, elem, length = struct.unpack_from("<HHI", data, at)
        out[elem] = data[at + 8:at + 8 + length]
        at += 8 + length
    return out


def _el(elem: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0, elem, len(value)) + value


def _ui(value: bytes) -> bytes:
    return value + b"\0" if len(value) % 2 else value


def response(fields: dict[int, bytes], field: int, ctx: int) -> bytes:
    body = b"".join((
        _el(0x0002, _ui(_uid(fields.get(0x0002, b"")))) if 0x0002 in fields else b"",
        _el(0x0100, struct.pack("<H", field)),
        _el(0x0120, fields[0x0110][:2]),
        _el(0x0800, struct.pack("<H", 0x0101)),
        _el(0x0900, struct.pack("<H", 0)),
        _el(0x1000, _ui(_uid(fields[0x1000]))) if 0x1000 in fields else b"",
    ))
    command = _el(0x0000, struct.pack("<I", len(body))) + body
    pdv = struct.pack(">IBB", len(command) + 2, ctx, 0x03) + command
    return _pdu(0x04, pdv)


def file_meta(sop_class: bytes, sop_instance: bytes, syntax: bytes) -> bytes:
    def el(elem: int, vr: bytes, value: bytes) -> bytes:
        if vr == b"OB":
            return struct.pack("<HH2s2xI", 2, elem, vr, len(value)) + value
        return struct.pack("<HH2sH", 2, elem, vr, len(value)) + value

    body = b"".join((el(1, b"OB", b"\0\1"), el(2, b"UI", _ui(sop_class)),
                     el(3, b"UI", _ui(sop_instance)), el(0x10, b"UI", _ui(syntax)),
                     el(0x12, b"UI", _ui(IMPL_UID))))
    return bytes(128) + b"DICM" + el(0, b"UL", struct.pack("<I", len(body))) + body


class Store:
    def __init__(self, data: Path, dsn: str) -> None:
        self.root = data / "dicom"
        self.tmp = self.root / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.db = psycopg.connect(dsn)

    def begin(self, meta: bytes) -> tuple[int, str, hashlib._Hash]:
        fd, path = tempfile.mkstemp(dir=self.tmp, prefix="in-", suffix=".part")
        digest = hashlib.sha256(meta)
        os.write(fd, meta)
        return fd, path, digest

    def finish(self, fd: int, path: str, digest: hashlib._Hash, uid: bytes, cls: bytes,
               size: int) -> None:
        os.fsync(fd)
        os.close(fd)
        sha = digest.hexdigest()
        leaf = self.root / sha[:2] / sha[2:4]
        if not leaf.is_dir():
            for folder in (leaf.parent, leaf):
                if not folder.is_dir():
                    with contextlib.suppress(FileExistsError):
                        folder.mkdir()
                    _fsync_dir(folder.parent)
        os.replace(path, leaf / f"{sha}.dcm")
        _fsync_dir(leaf)
        self.db.execute(f"INSERT INTO {TABLE} (sop_instance_uid, sop_class_uid, sha256, size) "
                        "VALUES (%s, %s, %s, %s) ON CONFLICT (sop_instance_uid) DO UPDATE "
                        "SET sha256 = excluded.sha256, size = excluded.size",
                        (uid.decode(), cls.decode(), sha, size), prepare=True)
        self.db.commit()


class VerityStore:
    """Verity's store (`--index verity`): parts written by archive.storage.Part, each object
    given to rv.ingest.object_receive in one worker thread (one database connection)."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from archive.storage import Part
        from rv.ingest import object_receive

        self.part_type, self.receive = Part, object_receive
        self.worker = ThreadPoolExecutor(max_workers=1)

    def begin(self, meta: bytes) -> tuple:
        part = self.part_type.begin()
        part.append(meta)
        return part, bytearray(meta)

    @staticmethod
    def append(state: tuple, value: memoryview) -> None:
        state[0].append(value)
        state[1].extend(value)

    def finish(self, state: tuple, calling: str, sop_class: str) -> None:
        part, data = state
        part.sync_ahead()
        try:
            self.worker.submit(self.receive, data=bytes(data), calling_ae=calling,
                               source="c-store", expected_sop_class=sop_class,
                               part=part).result()
        finally:
            part.discard()

    @staticmethod
    def drop(state: tuple) -> None:
        state[0].discard()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def serve_association(sock: socket.socket, store: Store | VerityStore,
                      lock: threading.Lock) -> None:
    kind, rq = _read_pdu(sock)
    if kind != 0x01:
        return
    calling = bytes(rq[20:36]).decode(errors="replace").strip()
    ac, accepted = accept(rq)
    sock.sendall(ac)
    command = bytearray()
    fields: dict[int, bytes] = {}
    part = None
    size = 0
    try:
        while True:
            kind, body = _read_pdu(sock)
            if kind == 0x05:  # A-RELEASE-RQ
                sock.sendall(_pdu(0x06, bytes(4)))
                return
            if kind != 0x04:
                return
            view, at = memoryview(body), 0
            while at + 6 <= len(body):
                length, ctx, control = struct.unpack_from(">IBB", body, at)
                value = view[at + 6:at + 4 + length]
                at += 4 + length
                if control & 1:  # command
                    command += value
                    if not control & 2:
                        continue
                    fields = command_fields(bytes(command))
                    command.clear()
                    cmd = struct.unpack("<H", fields[0x0100][:2])[0]
                    if cmd == 0x0030:  # C-ECHO-RQ
                        sock.sendall(response(fields, 0x8030, ctx))
                    elif cmd != 0x0001 or ctx not in accepted:
                        sock.sendall(_pdu(0x07, bytes(4)))
                        return
                    else:
                        meta = file_meta(_uid(fields[0x0002]), _uid(fields[0x1000]),
                                         accepted[ctx])
                        part = store.begin(meta)
                        size = len(meta)
                    continue
                if part is None:
                    sock.sendall(_pdu(0x07, bytes(4)))
                    return
                if isinstance(store, VerityStore):
                    store.append(part, value)
                    if control & 2:
                        store.finish(part, calling, _uid(fields[0x0002]).decode())
                        part = None
                        sock.sendall(response(fields, 0x8001, ctx))
                    continue
                fd, _path, digest = part
                rest = value
                while rest:
                    rest = rest[os.write(fd, rest):]
                digest.update(value)
                size += len(value)
                if control & 2:  # the data set's last fragment
                    with lock:  # one database connection per process
                        store.finish(*part, uid=_uid(fields[0x1000]),
                                     cls=_uid(fields[0x0002]), size=size)
                    part = None
                    sock.sendall(response(fields, 0x8001, ctx))
    finally:
        if isinstance(store, VerityStore) and part is not None:
            store.drop(part)
        elif part is not None:
            os.close(part[0])
            os.unlink(part[1])


def serve(port: int, data: Path, dsn: str, index: str) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    store = VerityStore() if index == "verity" else Store(data, dsn)
    lock = threading.Lock()

    def run(conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with contextlib.suppress(ConnectionError, OSError, KeyError, struct.error):
                serve_association(conn, store, lock)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=run, args=(conn,), daemon=True).start()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--index", choices=["lean", "verity"], default="lean",
                    help="verity: Verity's store (rv.ingest.object_receive) for each object")
    args = ap.parse_args()
    if args.index == "verity":  # Django from the checkout this file is in; its env settings
        import django

        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        django.setup()
    if args.index == "lean":
        with psycopg.connect(args.dsn, autocommit=True) as db:
            db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (sop_instance_uid text PRIMARY KEY, "
                       "sop_class_uid text NOT NULL, sha256 char(64) NOT NULL, "
                       "size bigint NOT NULL)")
    for _ in range(args.processes - 1):
        if os.fork() == 0:
            serve(args.port, Path(args.data), args.dsn, args.index)
            return 0
    serve(args.port, Path(args.data), args.dsn, args.index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
