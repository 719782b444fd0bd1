"""The web pages' side of the permission door (rv.roles.require): `requires(action)` logs
the visitor in, then asks the matrix; a refusal is Django's 403 "no access" page
(templates/403.html) with the action's one message. The check runs before the view looks
anything up, so a refused user learns nothing, not even whether the object exists."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from rv import errors
from rv.roles import Action, require

View = Callable[..., HttpResponseBase]


def requires(action: Action) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                require(request.user, action)
            except errors.PermissionDenied as exc:
                raise HttpForbidden(exc.message) from exc
            return view(request, *args, **kwargs)

        door = login_required(checked)
        door.rv_action = action  # type: ignore[attr-defined]
        return door

    return decorate
