"""Writes to the node registry, and the echo test of a peer."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dicom_net.models import Node


@transaction.atomic
def node_add(*, name: str, ae_title: str, host: str, port: int, can_store: bool = True,
             can_query: bool = True, move_destination: bool = False,
             receives_exports: bool = False, ups_performer: bool = False,
             ups_lenient: bool = False, commit_exports: bool = False, machine: str = "",
             description: str = "") -> Node:
    from rv.models import TreatmentMachine

    if Node.objects.filter(name=name).exists():
        raise ValidationError(f"a node named {name!r} already exists")
    treatment_machine = None
    if machine:
        treatment_machine = TreatmentMachine.objects.filter(name=machine).first()
        if treatment_machine is None:
            raise ValidationError(f"there is no treatment machine {machine!r}")
    node = Node(name=name, ae_title=ae_title.strip(), host=host, port=port,
                can_store=can_store, can_query=can_query, move_destination=move_destination,
                receives_exports=receives_exports, ups_performer=ups_performer,
                ups_lenient=ups_lenient, commit_exports=commit_exports,
                treatment_machine=treatment_machine, description=description)
    node.full_clean()
    node.save()
    return node


@transaction.atomic
def node_update(*, node: Node, **changes: object) -> Node:
    """Change a node's AE title, address, roles or description (not its name)."""
    allowed = {"ae_title", "host", "port", "description", "ups_lenient", "treatment_machine",
               *Node.ROLE_FIELDS}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
    for field, value in changes.items():
        setattr(node, field, str(value).strip() if field == "ae_title" else value)
    node.full_clean()
    node.save()
    return node


@transaction.atomic
def node_remove(*, name: str) -> None:
    try:
        deleted, _ = Node.objects.filter(name=name).delete()
    except ProtectedError:
        raise ValidationError(f"node {name!r} has export jobs; they keep it (the export "
                              "history must not lose its peer)") from None
    if not deleted:
        raise ValidationError(f"there is no node named {name!r}")


@dataclass(frozen=True)
class EchoResult:
    ok: bool
    message: str


def node_echo(*, node: Node, timeout: float = 10.0) -> EchoResult:
    """C-ECHO the peer from our AE title; says what went wrong in words."""
    ae = AE(ae_title=settings.RV_AE_TITLE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(Verification)
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title)
    if not assoc.is_established:
        if assoc.is_rejected:
            return EchoResult(False, f"{node.ae_title} rejected the association")
        return EchoResult(False, f"no association with {node.host}:{node.port}")
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if status and status.Status == 0x0000:
        return EchoResult(True, f"{node.ae_title} at {node.host}:{node.port} answered C-ECHO")
    code = f"0x{status.Status:04X}" if status else "no response"
    return EchoResult(False, f"C-ECHO failed: {code}")
