"""The web pages' side of the permission door (rv.roles.require): `requires(action)` logs
the visitor in, then asks the matrix; a refusal is Django's 403 "no access" page
(templates/403.html) with the action's one message. The check runs before the view looks
anything up, so a refused user learns nothing, not even whether the object exists.

`page_actions(request)`: what the matrix allows the visitor, read once per request (one
query) for the door, the menu and the page's buttons alike."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as HttpForbidden
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from rv.roles import MESSAGES, Action, allowed_actions

View = Callable[..., HttpResponseBase]


def page_actions(request: HttpRequest) -> frozenset[Action]:
    """rv.roles.allowed_actions(request.user), asked once per request and user: the door,
    the menu (rv.context) and each `may_...` of the page read the same answer."""
    user = getattr(request, "user", None)
    key = (getattr(user, "pk", None), getattr(user, "is_authenticated", False))
    cached = getattr(request, "_rv_actions", None)
    if cached is None or cached[0] != key:
        cached = (key, frozenset(allowed_actions(user)))
        request._rv_actions = cached  # type: ignore[attr-defined]
    return cached[1]


def requires(action: Action) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if Action(action) not in page_actions(request):  # rv.roles.require's answer
                raise HttpForbidden(MESSAGES[Action(action)])
            return view(request, *args, **kwargs)

        door = login_required(checked)
        door.rv_action = action  # type: ignore[attr-defined]
        return door

    return decorate
