"""Object attributes a label defines (text, number, checkbox, choice), and the checks on their values.

A label's `attributes` is a list of definitions, `{"name", "type", "choices"}`; every object of that
label may carry a value for each, in its own `attributes` object. Values of names a label does not
define are kept as they are (other tools' exports carry their own), but a defined one must fit.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

TYPES = ("text", "number", "checkbox", "choice")
MAX_ATTRIBUTES = 20
MAX_CHOICES = 50
MAX_TEXT = 1000


def definitions_clean(raw: Any) -> list[dict]:
    """Checked, normalised definitions; ValidationError naming the first one that is wrong."""
    if not isinstance(raw, list) or len(raw) > MAX_ATTRIBUTES:
        raise ValidationError({"attributes": f"A list of at most {MAX_ATTRIBUTES} attribute definitions."})
    cleaned, names = [], set()
    for i, item in enumerate(raw):
        where = f"Attribute {i + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise ValidationError({"attributes": f"{where} needs a name."})
        name = item["name"].strip()[:50]
        if name in names:
            raise ValidationError({"attributes": f"Attribute {name!r} is defined twice."})
        names.add(name)
        kind = item.get("type", "text")
        if kind not in TYPES:
            raise ValidationError({"attributes": f"{where} ({name}): the type is one of {', '.join(TYPES)}."})
        definition = {"name": name, "type": kind}
        if kind == "choice":
            choices = item.get("choices")
            if not isinstance(choices, list) or not 1 <= len(choices) <= MAX_CHOICES:
                raise ValidationError({"attributes": f"{where} ({name}): a choice needs 1 to {MAX_CHOICES} choices."})
            definition["choices"] = list(dict.fromkeys(str(c).strip() for c in choices if str(c).strip()))
        cleaned.append(definition)
    return cleaned


def definitions_parse(text: str) -> list[dict]:
    """The settings page's one-line form: `truncated: checkbox; count: number; colour: red | green; note`."""
    definitions = []
    for chunk in (c.strip() for c in text.split(";")):
        if not chunk:
            continue
        name, _, kind = (part.strip() for part in chunk.partition(":"))
        if "|" in kind:
            definitions.append({"name": name, "type": "choice", "choices": [c.strip() for c in kind.split("|")]})
        else:
            definitions.append({"name": name, "type": kind or "text"})
    return definitions_clean(definitions)


def definitions_text(definitions: list[dict]) -> str:
    """The inverse of definitions_parse, for the settings form."""
    parts = []
    for d in definitions:
        kind = " | ".join(d["choices"]) if d["type"] == "choice" else d["type"]
        parts.append(f"{d['name']}: {kind}")
    return "; ".join(parts)


def value_problem(definition: dict, value: Any) -> str | None:
    """Why `value` does not fit the definition, or None when it does (null always fits: not set)."""
    if value is None:
        return None
    kind = definition["type"]
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return "must be a number"
    if kind == "checkbox" and not isinstance(value, bool):
        return "must be true or false"
    if kind == "text" and (not isinstance(value, str) or len(value) > MAX_TEXT):
        return f"must be text of at most {MAX_TEXT} characters"
    if kind == "choice" and value not in definition["choices"]:
        return f"must be one of {', '.join(definition['choices'])}"
    return None
