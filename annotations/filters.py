"""Image filters: a label expression (`(cat OR dog) AND NOT indoor`), label-count type, and per-user status.

An image "has" a label when it is one of its classification labels or the label of one of its
objects. Everything compiles to EXISTS subqueries, so combined filters stay index-driven.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL

from annotations.models import Annotation, Classification, ImageStatus
from projects.models import Label

TYPES = ("none", "single", "multiple", "mine", "others")
# The grid's and the labeler's filter parameters (images_filter's keywords).
FILTER_KEYS = ("labels", "type", "status", "predicted", "predicted_label", "score_below")
STATUSES = ("not-seen", "seen", "labeled")

# Bounds that keep a filter cheap for anyone who may view a project: a person writes a few terms.
MAX_EXPRESSION_CHARS = 1000
MAX_TERMS = 50  # label names in one filter
MAX_DEPTH = 10  # nested parentheses and NOTs

_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([^\s()"]+))')
KEYWORDS = {"AND", "OR", "NOT"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "(", ")", "AND", "OR", "NOT", "label"
    text: str


def tokenize(expression: str) -> list[_Token]:
    tokens, position = [], 0
    expression = expression.rstrip()
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValidationError(
            {"labels": [f"The label filter has {len(expression):,} characters; the limit is {MAX_EXPRESSION_CHARS:,}."]}
        )
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise ValidationError({"labels": [f"Cannot read the label filter at character {position + 1}."]})
        position = match.end()
        opening, closing, quoted, word = match.groups()
        if opening or closing:
            tokens.append(_Token(opening or closing, opening or closing))
        elif quoted is not None:
            tokens.append(_Token("label", quoted.replace('\\"', '"')))
        elif word.upper() in KEYWORDS:
            tokens.append(_Token(word.upper(), word))
        else:
            tokens.append(_Token("label", word))
    terms = sum(1 for token in tokens if token.kind == "label")
    if terms > MAX_TERMS:
        raise ValidationError({"labels": [f"The label filter names {terms} labels; the limit is {MAX_TERMS}."]})
    return tokens


class _Parser:
    """Recursive descent: or := and (OR and)*; and := not (AND not)*; not := NOT not | ( or ) | label."""

    def __init__(self, tokens: list[_Token], label_ids: dict[str, int]):
        self.tokens, self.position, self.label_ids, self.depth = tokens, 0, label_ids, 0

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValidationError(
                {"labels": [f"The label filter nests parentheses and NOTs more than {MAX_DEPTH} deep."]}
            )

    def parse(self) -> Q:
        if not self.tokens:
            raise ValidationError({"labels": ["The label filter is empty."]})
        query = self._or()
        if self.position != len(self.tokens):
            raise ValidationError({"labels": [f"Unexpected {self.tokens[self.position].text!r} in the label filter."]})
        return query

    def _peek(self) -> str | None:
        return self.tokens[self.position].kind if self.position < len(self.tokens) else None

    def _or(self) -> Q:
        query = self._and()
        while self._peek() == "OR":
            self.position += 1
            query = query | self._and()
        return query

    def _and(self) -> Q:
        query = self._not()
        while self._peek() == "AND":
            self.position += 1
            query = query & self._not()
        return query

    def _not(self) -> Q:
        kind = self._peek()
        if kind == "NOT":
            self.position += 1
            self._deeper()
            query = ~self._not()
            self.depth -= 1
            return query
        if kind == "(":
            self.position += 1
            self._deeper()
            query = self._or()
            if self._peek() != ")":
                raise ValidationError({"labels": ["A '(' in the label filter is never closed."]})
            self.position += 1
            self.depth -= 1
            return query
        if kind == "label":
            name = self.tokens[self.position].text
            self.position += 1
            if name not in self.label_ids:
                raise ValidationError({"labels": [f"No label named {name!r} in this project."]})
            return has_label(self.label_ids[name])
        found = "the end" if kind is None else repr(self.tokens[self.position].text)
        raise ValidationError({"labels": [f"Expected a label name in the label filter, found {found}."]})


def has_label(*label_ids: int, image: str = "pk") -> Q:
    """Rows whose image (the outer query's `image` column) has any of the labels, on itself or on an object."""
    return Q(Exists(Classification.objects.filter(image=OuterRef(image), label_id__in=label_ids))) | Q(
        Exists(Annotation.objects.filter(image=OuterRef(image), label_id__in=label_ids))
    )


def has_any_label(image: str = "pk") -> Q:
    """Rows whose image carries any label at all: a classification or an object (a labeled image)."""
    return Q(Exists(Classification.objects.filter(image=OuterRef(image)))) | Q(
        Exists(Annotation.objects.filter(image=OuterRef(image)))
    )


def label_expression(expression: str, *, label_ids: dict[str, int]) -> Q:
    """Compile `cat AND NOT dog` into a Q on images; unknown labels and bad syntax are ValidationErrors."""
    return _Parser(tokenize(expression), label_ids).parse()


# The number of distinct labels an image carries, classification and object labels together.
_LABEL_COUNT_SQL = """
    SELECT COUNT(*) FROM (
        SELECT label_id FROM annotations_classification c WHERE c.image_id = projects_image.id
        UNION SELECT label_id FROM annotations_annotation a WHERE a.image_id = projects_image.id
    ) labels
"""


def images_filter(
    images: QuerySet,
    *,
    project,
    user,
    labels: str = "",
    type: str = "",
    status: str = "",
    predicted: str = "",
    predicted_label: str = "",
    score_below: str = "",
) -> QuerySet:
    """Apply the grid's and the API's filters to a project's images. The label filters read annotations only; the
    `predicted*` and `score_below` ones read a model's predictions, which are never labels until accepted."""
    if labels.strip():
        label_ids = dict(Label.objects.filter(project=project).values_list("name", "id"))
        images = images.filter(label_expression(labels, label_ids=label_ids))
    if type:
        images = _by_type(images, type, user)
    if status:
        images = _by_status(images, status, user)
    if predicted or predicted_label or score_below:
        images = _by_predictions(images, project, predicted, predicted_label, score_below)
    return images


def _by_predictions(images: QuerySet, project, predicted: str, label_name: str, score_below: str) -> QuerySet:
    from training.models import Prediction

    rows = Prediction.objects.filter(image=OuterRef("pk"))
    if predicted not in {"", "yes", "no"}:
        raise ValidationError({"predicted": [f"Unknown value {predicted!r}; use yes or no."]})
    if predicted:
        images = images.filter(Exists(rows)) if predicted == "yes" else images.exclude(Exists(rows))
    if label_name:
        label = Label.objects.filter(project=project, name=label_name).first()
        if label is None:
            raise ValidationError({"predicted_label": [f"No label named {label_name!r} in this project."]})
        images = images.filter(Exists(rows.filter(label=label)))
    if score_below:
        try:
            threshold = float(score_below)
        except ValueError:
            threshold = -1.0
        if not 0 <= threshold <= 1:
            raise ValidationError({"score_below": ["Give a number from 0 to 1."]})
        # Uncertain: the model predicted something, yet nothing on the image reaches the threshold.
        images = images.filter(Exists(rows)).exclude(Exists(rows.filter(score__gte=threshold)))
    return images


def _by_type(images: QuerySet, kind: str, user) -> QuerySet:
    if kind not in TYPES:
        raise ValidationError({"type": [f"Unknown type {kind!r}; use one of {', '.join(TYPES)}."]})
    if kind in {"none", "single", "multiple"}:
        images = images.annotate(label_count=RawSQL(_LABEL_COUNT_SQL, []))
        return images.filter(
            **{"none": {"label_count": 0}, "single": {"label_count": 1}, "multiple": {"label_count__gte": 2}}[kind]
        )
    labeled = ImageStatus.objects.filter(image=OuterRef("pk"), status=ImageStatus.Status.LABELED)
    if kind == "mine":
        return images.filter(Exists(labeled.filter(user=user)))
    return images.filter(Exists(labeled.exclude(user=user)))


def _by_status(images: QuerySet, status: str, user) -> QuerySet:
    if status not in STATUSES:
        raise ValidationError({"status": [f"Unknown status {status!r}; use one of {', '.join(STATUSES)}."]})
    mine = ImageStatus.objects.filter(image=OuterRef("pk"), user=user)
    if status == "not-seen":
        return images.filter(~Exists(mine))
    return images.filter(Exists(mine.filter(status=status)))


def status_rank(user):
    """The requesting user's status of each image as a number to sort by: not seen 0, seen 1, labeled 2."""
    mine = ImageStatus.objects.filter(image=OuterRef("pk"), user=user)
    return Case(
        When(Exists(mine.filter(status=ImageStatus.Status.LABELED)), then=Value(2)),
        When(Exists(mine), then=Value(1)),
        default=Value(0),
        output_field=IntegerField(),
    )
