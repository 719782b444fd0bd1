"""runscp --processes N replaces a child that dies while its siblings keep serving, loses no
acknowledged object when a child dies mid-stream, and still stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from dicom_net.models import AssociationLog
from tests.conftest import free_port
from tests.dicom_net.runscp_process import start_runscp
from tests.faults.procs import (
    Sender,
    alive,
    assert_acknowledged_archived,
    children_of,
    echo_and_store,
    kill_tree,
    wait_for,
)

PROCESSES = 3


def _stop(proc: subprocess.Popen, log_path: Path) -> None:
    children = children_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log_path.read_text()
    assert not [pid for pid in children if alive(pid)], "a child outlived its supervisor"


@pytest.mark.django_db(transaction=True)
def test_a_killed_child_is_replaced_and_the_others_keep_serving(data_dir: Path,
                                                                 tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "runscp.log"
    proc = start_runscp(port, data_dir, log_path, processes=PROCESSES)
    try:
        before = wait_for(lambda: c if len(c := children_of(proc.pid)) == PROCESSES else None,
                          f"{PROCESSES} children")
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), "the killed child to be gone")
        # The siblings answer at once, before (and whether or not) the replacement is up.
        for _ in range(3):
            assert echo_and_store(port)[:2] == (0x0000, 0x0000), log_path.read_text()
        line = wait_for(lambda: re.search(r"SCP process (\d+) started \(replacement\)",
                                          log_path.read_text()), "the replacement's log line")
        replacement = int(line.group(1))
        assert replacement not in before
        assert f"SCP process {victim} was killed by SIGKILL" in log_path.read_text()
        wait_for(lambda: children_of(proc.pid) == (before - {victim}) | {replacement},
                 "the supervisor's children to be the survivors and the replacement")
        wait_for(lambda: log_path.read_text().count("RV_SCP listening on") > PROCESSES,
                 "the replacement to listen")
        for _ in range(3):
            assert echo_and_store(port)[:2] == (0x0000, 0x0000), log_path.read_text()
        _stop(proc, log_path)
    finally:
        kill_tree(proc)


@pytest.mark.django_db(transaction=True)
def test_killing_a_child_mid_stream_loses_no_acknowledged_object(data_dir: Path,
                                                                 tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "runscp.log"
    proc = start_runscp(port, data_dir, log_path, processes=PROCESSES)
    senders = [Sender(port, f"STREAM_{k}", count=60) for k in range(PROCESSES)]
    try:
        for sender in senders:
            sender.start()
        for sender in senders:
            assert sender.first.wait(60), log_path.read_text()
        # Kill the process serving the first sender, in the middle of its stream.
        victim = wait_for(lambda: AssociationLog.objects.filter(
            calling_ae="STREAM_0", ended_at__isnull=True).values_list("pid", flat=True).first(),
            "the first sender's association log row")
        os.kill(victim, signal.SIGKILL)
        for sender in senders:
            sender.join(timeout=120)
            assert not sender.is_alive()
        on_victim = set(AssociationLog.objects.filter(pid=victim).values_list(
            "calling_ae", flat=True))
        assert "STREAM_0" in on_victim
        assert senders[0].broken and len(senders[0].acknowledged) < senders[0].count
        for sender in senders:
            if sender.calling not in on_victim:  # served by a sibling: undisturbed
                assert not sender.broken and sender.statuses == [0x0000] * sender.count
        # A new stream after the replacement is up goes through whole.
        wait_for(lambda: "started (replacement)" in log_path.read_text(), "a replacement")
        after = Sender(port, "STREAM_AFTER", count=20)
        after.start()
        after.join(timeout=120)
        assert after.statuses == [0x0000] * 20, log_path.read_text()
        acknowledged = [uid for s in [*senders, after] for uid in s.acknowledged]
        assert_acknowledged_archived(acknowledged)
        _stop(proc, log_path)
    finally:
        for sender in senders:
            sender.stop.set()
        kill_tree(proc)
