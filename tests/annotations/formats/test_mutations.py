"""Malformed files are refused with a FormatError (a 400 that names the place), never an unhandled exception
(a 500): hypothesis mutates valid exports of every format, one JSON node, one line, some bytes or one ZIP
member at a time, and reads them back; whole imports of mutated files end in success or a 400."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotations.formats import FORMATS
from annotations.formats.base import Dataset, DatasetImage, FormatError, LabelInfo, Shape
from annotations.geometry import encode_mask
from annotations.services.transfers import project_import

WIDTH, HEIGHT = 40, 30


def sample() -> Dataset:
    import numpy as np

    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[5:15, 5:20] = True
    ring = [[2.0, 2.0], [30.0, 2.0], [30.0, 25.0], [2.0, 25.0]]
    shapes = [
        Shape(
            "cat",
            "box",
            {"x": 1.0, "y": 2.0, "width": 10.0, "height": 8.0},
            occluded=True,
            score=0.5,
            keypoints=[{"name": "eye", "x": 3.0, "y": 4.0, "visible": True}],
        ),
        Shape("dog", "polygon", {"parts": [{"outer": ring, "holes": [[[5.0, 5.0], [9.0, 5.0], [9.0, 9.0]]]}]}),
        Shape("dog", "polygon", {"parts": [{"outer": [[1.0, 1.0], [20.0, 1.0], [10.0, 20.0]], "holes": []}]}),
        Shape("cat", "mask", {"rle": encode_mask(mask)}, attributes={"age": "adult"}),
        Shape("dog", "polyline", {"points": [[0.0, 0.0], [10.0, 10.0], [20.0, 5.0]]}),
        Shape("cat", "points", {"points": [[4.0, 4.0], [6.0, 7.0]]}),
    ]
    from tests.factories import image_bytes

    images = [
        DatasetImage("a.png", WIDTH, HEIGHT, classifications=["cat", "dog"], shapes=shapes),
        DatasetImage("b.png", WIDTH, HEIGHT, classifications=["dog"], shapes=shapes[:2], split="valid"),
    ]
    for image, colour in zip(images, [(1, 2, 3), (9, 8, 7)], strict=True):  # the classification ZIP holds them
        image.content, image.suffix = image_bytes(width=WIDTH, height=HEIGHT, color=colour), ".png"
    return Dataset(labels=[LabelInfo("cat", "#ff0000", ["eye"]), LabelInfo("dog", "#00ff00")], images=images)


KNOWN = {"a.png": (WIDTH, HEIGHT), "b.png": (WIDTH, HEIGHT)}
EXPORTS = {key: module.write(sample()).content for key, module in FORMATS.items()}
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.lists(st.integers(-5, 5), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def json_paths(node, path=()):
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        yield from json_paths(child, (*path, key))


@st.composite
def json_mutation(draw, content: bytes) -> bytes:
    document = json.loads(content)
    paths = list(json_paths(document))
    path = draw(st.sampled_from(paths[1:] or paths))
    value = draw(ODD_VALUES)
    if not path:
        return json.dumps(value).encode()
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return json.dumps(document).encode()


@st.composite
def text_mutation(draw, content: bytes) -> bytes:
    lines = content.split(b"\n")
    index = draw(st.integers(0, len(lines) - 1))
    how = draw(st.sampled_from(["replace", "cut", "bytes", "field"]))
    if how == "replace":
        lines[index] = draw(st.text(max_size=30)).encode("utf-8", "surrogatepass")
    elif how == "cut":
        lines[index] = lines[index][: draw(st.integers(0, max(len(lines[index]) - 1, 0)))]
    elif how == "bytes":
        lines[index] = draw(st.binary(min_size=1, max_size=12))
    else:
        separator = b"," if b"," in lines[index] else b" "
        fields = lines[index].split(separator)
        fields[draw(st.integers(0, len(fields) - 1))] = str(draw(ODD_VALUES)).encode()
        lines[index] = separator.join(fields)
    return b"\n".join(lines)


@st.composite
def mutation(draw, content: bytes) -> bytes:
    if content[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        name = draw(st.sampled_from(sorted(members)))
        members[name] = draw(mutation(members[name]))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)
        return out.getvalue()
    try:
        json.loads(content)
    except ValueError:
        pass
    else:
        return draw(json_mutation(content))
    if content[:4] == b"\x89PNG":
        index = draw(st.integers(0, len(content) - 1))
        return content[:index] + draw(st.binary(min_size=1, max_size=8)) + content[index + 1 :]
    return draw(text_mutation(content))


@pytest.mark.parametrize("key", sorted(FORMATS))
def test_a_mutated_file_reads_or_is_refused_with_a_format_error(key):
    @settings(
        max_examples=int(os.environ.get("MUTATIONS", "50")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(data=st.data())
    def check(data):
        content = data.draw(mutation(EXPORTS[key]))
        try:
            FORMATS[key].read(content, known=dict(KNOWN))
        except FormatError as exc:
            assert str(exc)

    check()


@pytest.mark.django_db
@pytest.mark.parametrize("key", sorted(FORMATS))
def test_a_mutated_file_imports_or_is_a_400(key, user):
    from projects.uploads import images_upload
    from tests.factories import image_file, make_project

    project = make_project(owner=user)
    images_upload(
        project=project,
        user=user,
        files=[
            image_file(name, width=WIDTH, height=HEIGHT, color=c)
            for name, c in (("a.png", (1, 2, 3)), ("b.png", (9, 8, 7)))
        ],
        labels=[],
    )

    @settings(
        max_examples=int(os.environ.get("MUTATIONS", "50")) // 3,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(data=st.data())
    def check(data):
        content = data.draw(mutation(EXPORTS[key]))
        try:
            with transaction.atomic():
                project_import(project=project, user=user, format_key=key, content=content, mode="append")
                transaction.set_rollback(True)  # every example starts from the same project
        except ValidationError as exc:
            assert exc.messages

    check()
