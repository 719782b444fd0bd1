"""manage.py dicom_node add|list|remove|echo: the registry of DICOM peers."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dicom_net.models import Node
from dicom_net.services import node_add, node_echo, node_remove

ROLE_FLAGS = {
    "store": "can_store",
    "query": "can_query",
    "move-destination": "move_destination",
    "exports": "receives_exports",
    "commit": "commit_exports",        # exports count once the node commits them (PS3.4 J)
    "worklist": "ups_performer",       # IHE-RO TDW-II: claims and updates worklist steps
    "ups-lenient": "ups_lenient",      # supply missing UPS final-state attributes (audited)
}


class Command(BaseCommand):
    help = "Manage the DICOM peers Verity knows (add, list, remove, echo)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="register a peer")
        add.add_argument("name")
        add.add_argument("--ae", required=True, help="the peer's AE title")
        add.add_argument("--host", required=True)
        add.add_argument("--port", required=True, type=int)
        add.add_argument("--description", default="")
        add.add_argument("--machine", default="",
                         help="the treatment machine whose worklist steps it performs")
        add.add_argument(
            "--roles", default="store,query",
            help="comma-separated, from: " + ", ".join(ROLE_FLAGS) + " (default store,query)")
        for flag in ROLE_FLAGS:
            add.add_argument(f"--{flag}", action="store_true", help=f"add the {flag} role")
        sub.add_parser("list", help="list the peers")
        remove = sub.add_parser("remove", help="forget a peer")
        remove.add_argument("name")
        echo = sub.add_parser("echo", help="C-ECHO a peer")
        echo.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            getattr(self, f"_{action}")(options)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc

    def _add(self, options: dict[str, Any]) -> None:
        roles = {r.strip() for r in options["roles"].split(",") if r.strip()}
        roles |= {flag for flag in ROLE_FLAGS if options[flag.replace("-", "_")]}
        unknown = roles - set(ROLE_FLAGS)
        if unknown:
            raise CommandError(f"unknown role(s): {', '.join(sorted(unknown))}; "
                               f"choose from {', '.join(ROLE_FLAGS)}")
        node = node_add(name=options["name"], ae_title=options["ae"], host=options["host"],
                        port=options["port"], description=options["description"],
                        machine=options["machine"],
                        **{field: flag in roles for flag, field in ROLE_FLAGS.items()})
        self.stdout.write(f"added {node}: {', '.join(_role_names(node)) or 'no roles'}")

    def _list(self, options: dict[str, Any]) -> None:
        nodes = list(Node.objects.all())
        if not nodes:
            self.stdout.write("no nodes registered (add one with: dicom_node add NAME --ae AE "
                              "--host HOST --port PORT)")
            return
        self.stdout.write(f"{'NAME':20} {'AE TITLE':16} {'HOST:PORT':28} ROLES")
        for node in nodes:
            self.stdout.write(f"{node.name:20} {node.ae_title:16} "
                              f"{node.host + ':' + str(node.port):28} "
                              f"{','.join(_role_names(node))}")

    def _remove(self, options: dict[str, Any]) -> None:
        node_remove(name=options["name"])
        self.stdout.write(f"removed {options['name']}")

    def _echo(self, options: dict[str, Any]) -> None:
        node = Node.objects.filter(name=options["name"]).first()
        if node is None:
            raise CommandError(f"there is no node named {options['name']!r}")
        result = node_echo(node=node)
        if not result.ok:
            raise CommandError(result.message)
        self.stdout.write(result.message)


def _role_names(node: Node) -> list[str]:
    return [flag for flag, field in ROLE_FLAGS.items() if getattr(node, field)]
