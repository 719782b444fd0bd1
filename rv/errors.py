"""Why rv refuses something. Plan import refusals are archive StoreErrors, so a C-STORE
answers with their status and comment; the rest are raised by service functions."""

from __future__ import annotations

from datetime import datetime

from archive.errors import StoreError


class PlanRejected(StoreError):
    """An RT Plan that cannot become clinical data: refused whole, nothing of it stored.

    The comment leads with the point (only 64 characters reach the wire)."""

    status = 0xA900  # PS3.4 B.2.3: Error, data set does not match SOP class / IOD


class DomainError(Exception):
    """A clinical rule refused the action; the message says why, for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermissionDenied(DomainError):
    """The user's role or re-entered password does not allow this action."""


class ValidationError(DomainError):
    """The action does not fit the object's state (e.g. approving a retired plan)."""


class Conflict(DomainError):
    """Someone else got there first: e.g. the fraction was recorded at another console."""


class ScheduleRefused(Conflict):
    """The machine's hours or capacity leave no room there (rv.services.schedule);
    `next_free` is the next free slot (naive local datetime), when there is one."""

    def __init__(self, message: str, next_free: datetime | None = None) -> None:
        if next_free is not None:
            message += f" The next free slot is {next_free:%Y-%m-%d %H:%M}."
        super().__init__(message)
        self.next_free = next_free


class VerificationFailed(DomainError):
    """Verification found violations and no override covers them; nothing was saved.

    `violations` are rv.verification.Violation values, as found inside the locked
    transaction."""

    def __init__(self, message: str, violations: list) -> None:  # type: ignore[type-arg]
        super().__init__(message)
        self.violations = list(violations)


class OverrideRefused(PermissionDenied):
    """The override's signer is wrong (password, role, the recording therapist themselves)
    or gave no reason; `violations` are what it was meant to cover, still blocking."""

    def __init__(self, message: str, violations: list) -> None:  # type: ignore[type-arg]
        super().__init__(message)
        self.violations = list(violations)


class HardStop(VerificationFailed):
    """A violation nobody may override (plan not the approved revision, course suspended or
    stopped, wrong patient, all fractions delivered, a machine neither planned nor
    beam-matched, a day beyond tomorrow): nothing was saved and no override is offered."""
