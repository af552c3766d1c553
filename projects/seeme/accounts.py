"""SeeMe's register, login and applications. The apikey is the user's Sightline API token, so one key works for
both APIs; login answers it (making it on first use) and never replaces it, so other scripts keep working."""

from __future__ import annotations

from importlib.metadata import version

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError

from accounts import services as accounts
from accounts.throttles import auth_attempt_allowed
from projects.seeme.protocol import Refused, answer, body_json

SIGHTLINE_VERSION = "0.1.0"
TORCH_VERSION = ".".join(version("torch").split("+")[0].split(".")[:2])  # get_application_id tests "in"

# What Sightline trains, as SeeMe's application list names it: one entry per task.
APPLICATIONS = [
    {
        "id": name,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "base_framework": "pytorch",
        "base_framework_version": TORCH_VERSION,
        "framework": "sightline",
        "framework_version": SIGHTLINE_VERSION,
        "application": name,
        "inference_host": "sightline",
        "can_convert_to_onnx": True,
        "can_convert_to_coreml": False,
        "can_convert_to_tensorflow": False,
        "can_convert_to_tflite": False,
        "has_labels_file": True,
        "inference_extensions": "pkl",
    }
    for name in ("image_classification", "object_detection")
]


def user_body(user) -> dict:
    return {
        "id": str(user.pk),
        "username": user.username,
        "email": user.email,
        "firstname": user.first_name,
        "name": user.last_name,
        "created_at": user.date_joined.isoformat(),
    }


def _throttled(request) -> None:
    allowed, wait = auth_attempt_allowed(request)
    if not allowed:
        raise Refused(f"Too many attempts from your address. Try again in {wait} seconds.", 429)


def register(request):
    """Refusals carry `message` (the SDK raises it); success has none (the SDK ignores the status code)."""
    if not settings.SIGHTLINE_ALLOW_REGISTRATION:
        raise Refused("Registration is turned off on this server.", 403)
    _throttled(request)
    data = body_json(request)
    fields = {name: data.get(name) for name in ("username", "email", "password")}
    missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        raise Refused(f"Give {', '.join(missing)}.")
    try:
        user = accounts.user_register(**fields)
    except ValidationError as exc:
        raise Refused(" ".join(f"{field}: {' '.join(m)}" for field, m in exc.message_dict.items())) from None
    accounts.user_names_set(user=user, first=str(data.get("firstname") or ""), last=str(data.get("name") or ""))
    return answer(user_body(user), 201)


def login(request):
    _throttled(request)
    data = body_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise Refused("Give username and password.")
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise Refused("Wrong username or password.", 401)
    return {**user_body(user), "apikey": accounts.token_get_or_create(user=user).key}


def applications(request):
    return APPLICATIONS
