"""A URLconf with one view that fails, to see that a 500 leaves a traceback on stderr."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom-for-the-log")


urlpatterns = [path("boom/", boom)]
