"""What the SeeMe.ai SDK (0.13.7) does on the wire, absorbed in one place: its `Authorization: username:apikey`
header (no scheme word; `:` after logout), JSON bodies sent with no Content-Type or a stale multipart one, URLs
without a trailing slash, string ids, errors it reads as `{"message": ...}`, and a JSON body on every answer,
DELETE included. docs/seeme.md has the whole mapping."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authtoken.models import Token

from accounts.models import User

MAX_JSON_BYTES = 2 * 1024 * 1024


class Refused(Exception):
    """A 4xx the SDK can read: `message` for a person, `status` for requests' raise_for_status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


def answer(body, status: int = 200) -> JsonResponse:
    return JsonResponse(body, status=status, safe=False)


def body_json(request) -> dict:
    """The request's JSON object, whatever its Content-Type says: the SDK sends none, or after an upload the
    multipart one of that upload. An empty body is {}."""
    raw = request.body
    if len(raw) > MAX_JSON_BYTES:
        raise Refused(f"The request body is over {MAX_JSON_BYTES // 1024 // 1024} MB.", 413)
    if not raw.strip():
        return {}
    if b"\\u0000" in raw or b"\x00" in raw:
        raise Refused("The request body holds a NUL character, which no field may hold.")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refused("The request body is not JSON.") from None
    if not isinstance(data, dict):
        raise Refused("The request body must be a JSON object.")
    return data


def authenticated_user(request) -> User | None:
    """The user named by `Authorization: <username>:<apikey>` (the apikey is their API token), or None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    username, _, key = header.partition(":")
    if not username or not key or " " in username:
        return None
    token = Token.objects.select_related("user").filter(key=key.strip()).first()
    if token is None or token.user.username != username or not token.user.is_active:
        return None
    return token.user


def _message(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    return " ".join(exc.messages)


def endpoint(methods: dict[str, Callable], *, public: bool = False):
    """A view answering `methods` ({"GET": handler, ...}); each handler takes (request, **kwargs) with
    request.user set from the SDK's header (unless `public`) and returns a JSON-able body or a response."""

    allowed = tuple(methods)  # (the permission matrix reads a view's methods from its closure)

    @csrf_exempt
    def view(request, **kwargs):
        if request.method not in allowed:
            return answer({"message": f"{request.method} is not allowed here."}, 405)
        if not public:
            user = authenticated_user(request)
            if user is None:
                return answer({"message": "Log in: send Authorization: <username>:<apikey>."}, 401)
            request.user = user
        try:
            result = methods[request.method](request, **kwargs)
        except Refused as exc:
            return answer({"message": exc.message}, exc.status)
        except ValidationError as exc:
            return answer({"message": _message(exc)}, 400)
        except Http404 as exc:
            return answer({"message": str(exc) or "Not found."}, 404)
        except PermissionDenied as exc:
            return answer({"message": str(exc) or "Your role does not allow this."}, 403)
        return result if hasattr(result, "status_code") else answer(result)

    return view


def string_id(value) -> int:
    """An id from a URL or a body: the SDK sends strings of digits; anything else names nothing (404)."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise Http404("Not found.")
    return int(text)


def query_flag(request, name: str) -> bool | None:
    """A true/false query parameter as the SDK writes one (Python's `True`, or `true`, `1`, `yes`); None when it is
    absent or empty, which filters nothing."""
    value = request.GET.get(name, "").strip().lower()
    if not value:
        return None
    if value in {"true", "1", "yes"}:
        return True
    if value in {"false", "0", "no"}:
        return False
    raise Refused(f"{name} is true or false.")
