"""What every Sightline API view shares: strict input, Django validation errors as 400s."""

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular import openapi
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know, instead of silently ignoring them."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


@extend_schema_field({"type": "array", "items": {"type": "object"}})
class PlainListField(serializers.Field):
    """A JSON list passed through as parsed, for a service that validates its items itself.

    DRF's ListField(child=JSONField()) re-encodes every element to check it, which costs more
    than saving a thousand shapes.
    """

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise ValidationError("Expected a list.")
        return data

    def to_representation(self, value):
        return value


def exception_handler(exc, context):
    """Services raise Django's ValidationError; the API answers it as DRF would its own."""
    if isinstance(exc, (TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig)):
        return Response({"detail": f"The request is too large: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = ValidationError(detail)
    return drf_exception_handler(exc, context)


class AutoSchema(openapi.AutoSchema):
    """Names nested `SomeApi.InputSerializer` components `SomeInput`, so they never collide."""

    def get_serializer_name(self, serializer, direction) -> str:
        outer, _, inner = type(serializer).__qualname__.rpartition(".")
        if not outer:
            return super().get_serializer_name(serializer, direction)
        return outer.removesuffix("Api") + inner.removesuffix("Serializer")


ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "description": "What went wrong, for a person; a 400 names each bad field instead.",
    "additionalProperties": True,
}
ERRORS = {
    "400": "The input is invalid: each bad field (or non_field_errors, or file) with its messages.",
    "401": "No valid credentials: send Authorization: Token <key> (or log in).",
    "403": "A member of the project whose role does not allow this.",
    "404": "No such object, or one in a project the user may not see.",
    "409": "The state has moved on: a stale revision, a job still running, a result not ready yet.",
    "413": "The request body is larger than the server accepts.",
    "415": "The body's content type is not one this operation reads.",
    "429": "Too many requests (the log-in limits): wait for Retry-After seconds.",
    "503": "Briefly unavailable (database restarting, decoders busy): retry after Retry-After seconds.",
}


def errors_documented(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation documents the errors Sightline can answer, with one
    shared schema, so clients (and schemathesis) know every status code the API uses."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, description in ERRORS.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": reference}}}
                )
    return result
