"""Input hygiene for every request (issue 12): no NUL character in a path, query, form or
JSON body (PostgreSQL cannot store one; nothing Verity takes needs one), and a value the
database refuses as out of range (an id of 20 digits) is the client's 400, not a 500."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DataError
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger("rv.web")


def _bad(message: str) -> JsonResponse:
    return JsonResponse({"message": message}, status=400)


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path_info:
        return True
    for query in (request.GET,):
        if any("\x00" in k or any("\x00" in v for v in vs) for k, vs in query.lists()):
            return True
    content_type = request.META.get("CONTENT_TYPE", "")
    if request.method in ("POST", "PUT", "PATCH"):
        if content_type.startswith("application/json"):
            body = request.body
            return b"\x00" in body or b"\\u0000" in body.lower()
        if content_type.startswith(("application/x-www-form-urlencoded",
                                    "multipart/form-data")):
            return any("\x00" in k or any("\x00" in v for v in vs)
                       for k, vs in request.POST.lists())
    return False


class InputHygieneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            return _bad("NUL characters are not accepted in a request.")
        return self.get_response(request)

    def process_exception(self, request: HttpRequest,
                          exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DataError | OverflowError):
            log.warning("400 for %s %s: %s", request.method, request.path, exception,
                        exc_info=exception)
            return _bad("A value in the request is out of range or malformed.")
        return None
