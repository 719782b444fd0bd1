"""The four roles of CONTRACT.md, as Django groups created by a migration."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

THERAPIST = "therapist"
PHYSICIST = "physicist"
PHYSICIAN = "physician"
ADMIN = "admin"
ALL_ROLES = (THERAPIST, PHYSICIST, PHYSICIAN, ADMIN)


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    if not user.is_authenticated:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return user.groups.filter(name__in=roles).exists()  # type: ignore[union-attr,attr-defined]


# The permission matrix (issue 5): which roles may do what. Service functions enforce it
# (`require`), the web UI hides what a role may not do (`may`), the API answers 403.
SCHEDULE = "schedule"
RECORD = "record"
APPROVE = "approve"
OVERRIDE = "override"
EDIT_TOLERANCE = "edit_tolerance"
COURSE_STATUS = "course_status"
MANAGE_USERS = "manage_users"
MANAGE_NODES = "manage_nodes"
VIEW_AUDIT = "view_audit"
REVIEW_IMAGE = "review_image"
ASSIGN_RECORD = "assign_record"
REVIEW_RECORD = "review_record"
VIEW_HISTORY = "view_history"
CONFIRM_COUCH = "confirm_couch"

PERMISSIONS: dict[str, tuple[str, ...]] = {
    SCHEDULE: (THERAPIST, PHYSICIST),
    RECORD: (THERAPIST,),
    APPROVE: (PHYSICIST, PHYSICIAN),
    OVERRIDE: (PHYSICIST, PHYSICIAN),
    EDIT_TOLERANCE: (PHYSICIST,),
    COURSE_STATUS: (PHYSICIST, PHYSICIAN),
    MANAGE_USERS: (ADMIN,),
    MANAGE_NODES: (ADMIN,),
    VIEW_AUDIT: (ADMIN, PHYSICIST),
    REVIEW_IMAGE: (THERAPIST, PHYSICIAN),
    ASSIGN_RECORD: (PHYSICIST,),
    REVIEW_RECORD: (PHYSICIST, PHYSICIAN),
    # Treatment history across patients (issue 7); physicians too: they prescribe and sign.
    VIEW_HISTORY: (ADMIN, PHYSICIST, PHYSICIAN),
    # A second person confirms couch positions captured at fraction 1 (issue 11).
    CONFIRM_COUCH: (THERAPIST, PHYSICIST),
}

# What each action is called in a refusal ("Only a therapist may record a treatment session.")
ACTION_WORDS: dict[str, str] = {
    SCHEDULE: "schedule treatment", RECORD: "record a treatment session",
    APPROVE: "approve a plan for treatment", OVERRIDE: "authorise an override",
    EDIT_TOLERANCE: "change tolerance tables", COURSE_STATUS: "change a course's status",
    MANAGE_USERS: "manage users and roles", MANAGE_NODES: "manage DICOM nodes",
    VIEW_AUDIT: "view the audit trail",
    REVIEW_IMAGE: "approve or reject an image",
    ASSIGN_RECORD: "assign a treatment record to a plan",
    REVIEW_RECORD: "review what a treatment record flagged",
    VIEW_HISTORY: "view the treatment history",
    CONFIRM_COUCH: "confirm captured couch positions",
}


# A superuser (the Django admin's owner) may administer, never act clinically without a role.
_SUPERUSER_ACTIONS = (MANAGE_USERS, MANAGE_NODES, VIEW_AUDIT, VIEW_HISTORY)


def allowed_actions(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    """The actions of PERMISSIONS the user's roles allow (one query)."""
    if not user.is_authenticated:
        return set()
    roles = set(roles_of(user))
    superuser = bool(getattr(user, "is_superuser", False))
    return {action for action, allowed in PERMISSIONS.items()
            if roles & set(allowed) or (superuser and action in _SUPERUSER_ACTIONS)}


def may(user: AbstractBaseUser | AnonymousUser, action: str) -> bool:
    """Whether the user's role allows the action (rv.roles.PERMISSIONS)."""
    return action in allowed_actions(user)


def roles_of(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    if not user.is_authenticated:
        return []
    return sorted(user.groups.filter(name__in=ALL_ROLES)  # type: ignore[union-attr,attr-defined]
                  .values_list("name", flat=True))


def require(user: AbstractBaseUser | AnonymousUser, action: str) -> None:
    """Raise rv.errors.PermissionDenied unless the user's role allows the action."""
    from rv.errors import PermissionDenied

    if not may(user, action):
        roles = " or ".join(PERMISSIONS[action])
        raise PermissionDenied(f"Only a {roles} may {ACTION_WORDS[action]}.")
