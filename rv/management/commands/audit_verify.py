"""manage.py audit_verify: recompute the audit trail's hash chain (issue 12).

Prints OK with the chain's head (seq and hash: note them elsewhere to detect later removal
of the newest events), or every edited or missing event, and exits 1."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from rv.services.audit import audit_chain_head, audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain: report edited or missing events."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--expect-head", metavar="SEQ:HASH", default="",
                            help="a head noted earlier: fail if that event is gone or differs")

    def handle(self, *args: Any, **options: Any) -> None:
        problems = 0
        for problem in audit_chain_verify():
            problems += 1
            self.stderr.write(f"TAMPERED {problem}")
        seq, digest = audit_chain_head()
        expect = str(options["expect_head"])
        if expect:
            want_seq, _, want_hash = expect.partition(":")
            from rv.models import AuditEvent

            row = AuditEvent.objects.filter(seq=int(want_seq)).values_list("hash",
                                                                           flat=True).first()
            if row is None or (want_hash and row != want_hash):
                problems += 1
                self.stderr.write(f"TAMPERED seq {want_seq}: the noted head is missing or "
                                  f"differs")
        if problems:
            raise CommandError(f"audit chain broken: {problems} problem(s); head seq {seq}")
        self.stdout.write(f"OK: {seq} audit events chained; head {seq}:{digest}")
