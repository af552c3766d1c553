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
