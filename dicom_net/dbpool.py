"""The SCP's database connections, from a pool (issue 16).

pynetdicom runs each association in a thread of its own, and Django gives each thread its
own connection: every association opened a new PostgreSQL connection (a backend process
forked, authentication, Django's set-up queries) and closed it at the end. For senders
that open one association per object (a TPS exporting a plan, `storescu` run once per
file) that was about a tenth of the SCP's time per object in issue 16's profile.

`use_pool()` makes the SCP process take its connections from a psycopg pool instead
(Django's own support, `OPTIONS["pool"]`): a finished association hands its connection
back (`connections.close_all()` in the association's thread, which ae.py makes sure of)
and the next one reuses it. What stays as it was:

- at most one connection per association, as before: the pool may open as many
  connections as the SCP accepts associations (`ae.maximum_associations`) plus its own
  worker threads, so an association never waits for another's connection;
- a connection is checked (one empty query) before it is handed out, and a broken one
  replaced: a database restart costs what it cost before (CONN_HEALTH_CHECKS);
- connections idle for `RV_SCP_DB_POOL_IDLE` seconds beyond the few kept open are closed.

Only PostgreSQL; only in the SCP's listener processes, made after `fork()` (a pool's
threads and sockets must not cross one). Elsewhere, and when psycopg_pool is missing,
nothing changes.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

log = logging.getLogger(__name__)

KEEP_OPEN = 2  # connections kept open while idle


def use_pool(*, max_size: int) -> bool:
    """From now on this process's connections to the default database come from a pool of
    at most `max_size`; True when the pool is in use."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql" or not settings.RV_SCP_DB_POOL:
        return False
    try:
        import psycopg_pool  # noqa: F401
    except ImportError:
        log.warning("psycopg_pool is not installed: one database connection per association")
        return False
    connections.close_all()  # the connections opened so far were not pooled
    db = connections.settings[DEFAULT_DB_ALIAS]  # shared by every thread's DatabaseWrapper
    db["CONN_MAX_AGE"] = 0  # a pooled connection goes back to the pool when closed
    db["OPTIONS"] = {**db.get("OPTIONS", {}), "pool": {
        "min_size": min(KEEP_OPEN, max_size), "max_size": max_size,
        "max_idle": settings.RV_SCP_DB_POOL_IDLE, "timeout": settings.RV_DICOM_READ_TIMEOUT,
        "name": "scp"}}
    return True


def close_pool() -> None:
    """Close this process's pool (at the SCP's stop), if there is one."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor == "postgresql" and getattr(connection, "pool", None) is not None:
        connection.close_pool()  # type: ignore[attr-defined]  # the PostgreSQL backend's
