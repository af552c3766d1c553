"""The answers to requests that failed outside a view's own handling: JSON under /api/, and 503 with
Retry-After (never a 500) while the database is unreachable or the decoders are full."""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views import defaults

from projects.imaging import DecodeBusy

RETRY_AFTER_SECONDS = 5
# What a failure that heals by itself looks like: the database restarting, a full pool, a full decode budget.
TRANSIENT = (OperationalError, InterfaceError, DecodeBusy)
UNAVAILABLE = "Sightline is briefly unavailable (its database cannot be reached); try again in a few seconds."
BUSY = "The server is busy decoding other large images; try again in a few seconds."


def is_api(request) -> bool:
    return request.path.startswith("/api/")


def unavailable(request, exc: BaseException) -> HttpResponse:
    """503 with Retry-After: JSON for the API, a short page for people."""
    message = BUSY if isinstance(exc, DecodeBusy) else UNAVAILABLE
    if is_api(request):
        response = JsonResponse({"detail": message}, status=503)
    else:
        response = HttpResponse(
            f"<!doctype html><title>Sightline is busy</title><h1>Please try again</h1><p>{message}</p>",
            status=503,
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(request) -> HttpResponse:
    """handler500: Django calls it inside the `except` that caught the exception, so it can tell which."""
    exc = sys.exc_info()[1]
    if isinstance(exc, TRANSIENT):
        return unavailable(request, exc)
    if is_api(request):
        # Never the exception's text: it can hold paths, SQL or data.
        return JsonResponse({"detail": "Server error. It has been logged."}, status=500)
    return defaults.server_error(request)


def not_found(request, exception=None) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
