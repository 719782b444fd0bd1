"""runscp on PostgreSQL takes its connections from a pool (dicom_net.dbpool, issue 16): one
association after another reuses a connection instead of opening its own, and a pooled
connection the server dropped is replaced before an association gets it."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive.models import Instance
from dicom_net.models import AssociationLog
from tests.conftest import free_port
from tests.dicom_net.runscp_process import runscp, stop_runscp
from tests.faults.procs import (
    assert_acknowledged_archived,
    echo_and_store,
    needs_postgresql,
    other_backends,
    terminate_backends,
    wait_for,
)

pytestmark = [needs_postgresql, pytest.mark.django_db(transaction=True)]

ASSOCIATIONS = 12


def test_associations_reuse_pooled_connections_and_survive_their_loss(
        data_dir: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "runscp.log"
    port = free_port()
    with runscp(port, data_dir, log_path) as proc:
        acknowledged: list[str] = []
        seen: set[int] = set()
        for _ in range(ASSOCIATIONS):
            echo, store, uid = echo_and_store(port, "POOL_SCU")
            assert (echo, store) == (0x0000, 0x0000), log_path.read_text()
            acknowledged.append(uid)
            seen |= set(other_backends())
        # Without the pool each association opened and closed a backend of its own.
        assert len(seen) <= 4, f"{len(seen)} backends for {ASSOCIATIONS} associations"
        kept = wait_for(other_backends, "the pool's connections, kept open")
        terminate_backends(kept)
        wait_for(lambda: not set(other_backends()) & set(kept), "the backends to be gone")
        echo, store, uid = echo_and_store(port, "POOL_SCU")
        assert (echo, store) == (0x0000, 0x0000), log_path.read_text()
        acknowledged.append(uid)
        assert_acknowledged_archived(acknowledged)
        assert Instance.objects.count() == ASSOCIATIONS + 1
        wait_for(lambda: AssociationLog.objects.filter(
            calling_ae="POOL_SCU", outcome=AssociationLog.Outcome.RELEASED).count()
            == ASSOCIATIONS + 1, "every association logged as released")
        stop_runscp(proc, log_path)
