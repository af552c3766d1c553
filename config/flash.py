"""Errors shown on the next page as Django messages, the same way in every app's HTML views."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError


def flash_errors(request, exc: ValidationError) -> None:
    for text in exc.messages:
        messages.error(request, text)


def flash_form_errors(request, form) -> None:
    for field, texts in form.errors.items():
        messages.error(request, f"{field}: {' '.join(texts)}")
