"""The registry of DICOM peers and the association log."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from dicom_net.validation import parse_network, validate_ae_title, validate_host

ae_title_validator = validate_ae_title  # PS3.5 6.2 (dicom_net.validation)


class Node(models.Model):
    """A DICOM peer. Roles say what it may do with us and what we do with it."""

    name = models.SlugField(max_length=64, unique=True)
    ae_title = models.CharField(max_length=16, validators=[validate_ae_title], unique=True)
    host = models.CharField(max_length=255, validators=[validate_host],
                            help_text="host name, IP address or CIDR network it connects from")
    port = models.PositiveIntegerField(validators=[MinValueValidator(1),
                                                   MaxValueValidator(65535)])
    can_store = models.BooleanField(default=True, help_text="may send objects to us (C-STORE)")
    can_query = models.BooleanField(default=True, help_text="may query and retrieve from us")
    move_destination = models.BooleanField(default=False,
                                           help_text="may be named as a C-MOVE destination")
    receives_exports = models.BooleanField(default=False,
                                           help_text="gets our treatment records by C-STORE")
    # IHE-RO TDW-II (issue 13): a Treatment Delivery Device claims and updates worklist
    # steps (UPS N-ACTION / N-SET); tied to a machine, only that machine's steps.
    ups_performer = models.BooleanField(
        default=False, help_text="may claim, update and end UPS worklist steps (TDW-II TDD)")
    treatment_machine = models.ForeignKey(
        "rv.TreatmentMachine", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+", help_text="the machine whose steps it performs (any, if empty)")
    # IHE-RO TDW-II (issue 13): a device whose final UPS update lacks attributes PS3.4
    # Table CC.2.5-3 requires gets them supplied from the schedule (audited) instead of 0xC304.
    ups_lenient = models.BooleanField(
        default=False, help_text="UPS final state: supply missing performed-procedure "
                                 "attributes from the schedule (audited) instead of refusing")
    # PS3.4 Annex J (issue 14): our exports to it count only once it commits to keep them.
    commit_exports = models.BooleanField(
        default=False, help_text="exports are asked for Storage Commitment and count as done "
                                 "only once it confirmed them (needs receives_exports)")
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    ROLE_FIELDS = ("can_store", "can_query", "move_destination", "receives_exports",
                   "ups_performer", "commit_exports")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.ae_title}@{self.host}:{self.port})"

    def clean(self) -> None:
        network = parse_network(self.host or "")
        single = network is None or network.num_addresses == 1
        if not single and (self.move_destination or self.receives_exports):
            raise ValidationError({"host": "a network cannot be connected to: a C-MOVE "
                                           "destination or export peer needs one address"})
        if self.commit_exports and not self.receives_exports:
            raise ValidationError({"commit_exports": "only a node that receives exports "
                                                     "can commit them (add the exports role)"})

    @property
    def roles(self) -> list[str]:
        return [field for field in self.ROLE_FIELDS if getattr(self, field)]


class AssociationLog(models.Model):
    """One row per association: who, when, what, and how it ended."""

    class Outcome(models.TextChoices):
        OPEN = "open"
        RELEASED = "released"
        ABORTED = "aborted"
        REJECTED = "rejected"

    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    calling_ae = models.CharField(max_length=16, db_index=True)
    called_ae = models.CharField(max_length=16)
    peer_host = models.CharField(max_length=255)
    peer_port = models.PositiveIntegerField(null=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.OPEN)
    reason = models.CharField(max_length=200, blank=True)
    stored = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    echoes = models.PositiveIntegerField(default=0)
    failures = models.JSONField(default=list, blank=True,
                                help_text="the first failures: SOP Instance UID, status, comment")
    pid = models.PositiveIntegerField(null=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.calling_ae} {self.started_at:%Y-%m-%d %H:%M:%S} {self.outcome}"


class ExportJob(models.Model):
    """One instance to send to one peer by C-STORE: the outbox (DESIGN.md: side effects as
    rows of the same transaction). Written by `export_enqueue` in the caller's transaction,
    claimed and sent by `manage.py export_worker`."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        # Sent to a node that commits exports; DONE once the node confirmed it keeps it.
        COMMITTING = "committing"
        DONE = "done"
        FAILED = "failed"

    class Commitment(models.TextChoices):
        NONE = "", "not asked"  # the node does not commit exports
        AWAITED = "awaited", "awaited"  # sent; the node has not confirmed it yet
        COMMITTED = "committed", "committed"  # the node reported it committed
        REFUSED = "refused", "refused"  # the node reported a failure: sent again

    instance = models.ForeignKey("archive.Instance", on_delete=models.PROTECT,
                                 related_name="export_jobs")
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="export_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(help_text="not sent before this time")
    claimed_at = models.DateTimeField(null=True, blank=True,
                                      help_text="when a worker took it; its lease starts here")
    claimed_by = models.CharField(max_length=100, blank=True)
    last_error = models.CharField(max_length=300, blank=True,
                                  help_text="the peer's status and comment, or the network error")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Storage Commitment (issue 14), for a node with commit_exports.
    commitment = models.CharField(max_length=16, choices=Commitment.choices, blank=True,
                                  default=Commitment.NONE)
    commit_attempts = models.PositiveIntegerField(
        default=0, help_text="Storage Commitment requests made for it")
    commitment_request = models.ForeignKey(
        "CommitmentRequest", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="export_jobs", help_text="the latest request asking the node to commit it")
    committed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "next_attempt_at"],
                                name="dicom_net_export_due_idx")]

    def __str__(self) -> str:
        return f"export #{self.pk} to {self.node_id}: {self.status}"


class CommitmentRequest(models.Model):
    """One Storage Commitment Push Model transaction (PS3.4 Annex J), either way.

    RECEIVED: a peer asked us (N-ACTION); the row is written before the N-ACTION response and
    a worker sends the N-EVENT-REPORT (dicom_net.commitment_scp). SENT: we asked a node that
    commits our exports (dicom_net.commitment_scu); its report is matched by Transaction UID.
    """

    class Direction(models.TextChoices):
        RECEIVED = "received"
        SENT = "sent"

    class Status(models.TextChoices):
        # RECEIVED: the report is due, being sent, delivered, or cannot be delivered.
        PENDING = "pending"
        SENDING = "sending"
        REPORTED = "reported"
        UNDELIVERABLE = "undeliverable"  # no registered address, or attempts used up
        # SENT: awaiting the node's report, its verdict, or no verdict.
        REQUESTED = "requested"
        COMMITTED = "committed"  # event type 1: all committed
        FAILURES = "failures"  # event type 2: failures exist
        REFUSED = "refused"  # the N-ACTION was not accepted (or no association)
        EXPIRED = "expired"  # no report in RV_COMMIT_REPORT_TIMEOUT: asked again

    direction = models.CharField(max_length=8, choices=Direction.choices)
    transaction_uid = models.CharField(max_length=64, db_index=True)
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="commitment_requests")
    peer_ae = models.CharField(max_length=16, help_text="the peer's AE title")
    status = models.CharField(max_length=16, choices=Status.choices)
    references = models.JSONField(
        default=list, help_text="[[SOP Class UID, SOP Instance UID], ...] as requested")
    committed = models.JSONField(default=list, blank=True,
                                 help_text="[[SOP Class UID, SOP Instance UID], ...] committed")
    failed = models.JSONField(
        default=list, blank=True,
        help_text="[[SOP Class UID, SOP Instance UID, Failure Reason, why], ...]")
    event_type = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1: all committed; 2: failures exist")
    duplicate = models.BooleanField(
        default=False, help_text="RECEIVED: the Transaction UID was used before (0x0131)")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    via = models.CharField(max_length=16, blank=True,
                           help_text="the association the report went or came on: same, new")
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    reported_at = models.DateTimeField(null=True, blank=True,
                                       help_text="when the report was sent or received")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["direction", "status", "next_attempt_at"],
                                name="dicom_net_commit_due_idx")]
        constraints = [
            # Ours are generated; a peer's may repeat (0x0131), so only ours are unique.
            models.UniqueConstraint(fields=["transaction_uid"],
                                    condition=models.Q(direction="sent"),
                                    name="dicom_net_commit_sent_uid_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} commitment {self.transaction_uid}: {self.status}"
