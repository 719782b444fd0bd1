"""Every API error is JSON with a human-readable "message" (CONTRACT.md), and this is the one
place that maps rv's domain errors (rv.errors) to HTTP statuses: a view lets them rise.

- PermissionDenied (role, signature) 403
- ValidationError (input, state) 400
- Conflict (someone got there first) 409
- VerificationFailed 422 {"message", "violations": [... "key", "hard"], "hard_stop"}
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from rv import errors

DOMAIN_STATUS: tuple[tuple[type[errors.DomainError], int], ...] = (
    (errors.VerificationFailed, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (errors.PermissionDenied, status.HTTP_403_FORBIDDEN),
    (errors.Conflict, status.HTTP_409_CONFLICT),
    (errors.ValidationError, status.HTTP_400_BAD_REQUEST),
    (errors.DomainError, status.HTTP_400_BAD_REQUEST),
)


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key in ("detail", "non_field_errors") else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def domain_response(exc: errors.DomainError) -> Response:
    code = next(code for kind, code in DOMAIN_STATUS if isinstance(exc, kind))
    body: dict[str, Any] = {"message": exc.message}
    violations = getattr(exc, "violations", None)
    if violations is not None:
        body["violations"] = [{**x.as_dict(), "key": x.key()} for x in violations]
        body["hard_stop"] = isinstance(exc, errors.HardStop) or any(x.hard for x in violations)
    return Response(body, status=code)


def json_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, errors.DomainError):
        return domain_response(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    body: dict[str, Any] = {"message": _first_message(data)}
    if isinstance(data, dict) and set(data) != {"detail"}:
        body["errors"] = data
    response.data = body
    return response
