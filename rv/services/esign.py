"""Electronic signatures: a user name and password entered again for one action (plan
approval, an override's authorisation). One function checks them all, and every refusal
says the same thing whatever was wrong (unknown user, wrong password, inactive account,
a role that may not sign this, the person who may not sign their own work), so the form
is no oracle on another user's password. The real cause goes to the audit trail only.

A refusal is audited in a transaction of its own, so it outlives the rollback of the
action it refused: `esign_verify` writes it at once when called outside a transaction;
inside one (the override is checked under the plan lock) the action's door calls
`esign_refusal_audit` after its transaction has rolled back."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models, transaction

from rv.errors import PermissionDenied
from rv.roles import Action, can
from rv.services.audit import audit_record

User = AbstractBaseUser | AnonymousUser

REFUSED = ("The signature is refused: the user name or password is wrong, or that user "
           "may not sign this.")


class SignatureRefused(PermissionDenied):
    """An e-signature did not hold. The message is always REFUSED; `cause` says why, for
    the audit trail only."""

    def __init__(self, *, cause: str, signer: str, action: Action, by: User | None,
                 subject: models.Model | None) -> None:
        super().__init__(REFUSED)
        self.cause = cause
        self.signer = signer
        self.action = action
        self.by = by
        self.subject = subject
        self.audited = False


def esign_verify(*, username: str, password: str, action: Action,
                 not_user: User | None = None, by: User | None = None,
                 subject: models.Model | None = None,
                 also: tuple[Action, ...] = ()) -> AbstractBaseUser:
    """The signing user, if `username` names an active user whose `password` it is, whose
    role may do `action` (rv.roles) and each action of `also` (an override of a rule that
    demands more, rv.verification.OVERRIDE_ACTION), and who is not `not_user` (the person
    whose work is signed off). Otherwise SignatureRefused, with the one message. `by` is the
    logged-in user asking, `subject` what is signed; both go into the refusal's audit
    event."""
    name = (username or "").strip()
    user = get_user_model().objects.filter(username=name).first() if name else None
    if user is None:
        get_user_model()().set_password(password or "-")  # as long as a real check takes
        cause = "unknown user"
    elif not password or not user.check_password(password):
        cause = "wrong password"
    elif not user.is_active:
        cause = "inactive user"
    elif not_user is not None and user.pk == getattr(not_user, "pk", None):
        cause = "signer is the user whose work is signed"
    elif not can(user, action):
        cause = "role may not sign this"
    elif not all(can(user, extra) for extra in also):
        cause = f"role may not sign this ({', '.join(str(a) for a in also)})"
    else:
        return user
    refused = SignatureRefused(cause=cause, signer=name[:150], action=action, by=by,
                               subject=subject)
    if not transaction.get_connection().in_atomic_block:
        esign_refusal_audit(refused)
    raise refused


def esign_refusal_audit(refused: SignatureRefused) -> None:
    """Write the refusal's audit event in a transaction of its own (once). Call it after
    the refused action's transaction has rolled back."""
    if refused.audited:
        return
    details: dict[str, Any] = {"action": str(refused.action), "signer": refused.signer,
                               "cause": refused.cause}
    with transaction.atomic():
        audit_record(action="esign.refused", obj=refused.subject, user=refused.by,
                     details=details, object_type="" if refused.subject else "auth.user",
                     object_id="" if refused.subject else refused.signer)
    refused.audited = True
