"""The API's side of the permission door (rv.roles.require). `ActionRequired` is the
default permission class (config/settings.py): a view states the action its reads need
(`required_action`, or `required_action_for(request)`), and a view that states none is
refused (fail closed), so a new endpoint cannot leak by forgetting. Writes are checked
again by the service they call."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions

from rv import errors
from rv.roles import Action, require

UNDECLARED = "This endpoint declares no permission; it is refused."


class ActionRequired(permissions.BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # 401/403 "Authentication credentials were not provided."
        chooser = getattr(view, "required_action_for", None)
        action: Action | None = chooser(request) if chooser else getattr(
            view, "required_action", None)
        if action is None:
            raise exceptions.PermissionDenied(UNDECLARED)
        try:
            require(request.user, action)
        except errors.PermissionDenied as exc:
            raise exceptions.PermissionDenied(exc.message) from exc
        return True
