"""Filters through the API and the grid: label expressions, types and per-user status."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotations.filters import tokenize
from projects.models import Label
from projects.uploads import images_upload
from tests.conftest import client_for
from tests.factories import UserFactory, image_file, make_project

pytestmark = pytest.mark.django_db

BOX = {"x": 1, "y": 1, "width": 5, "height": 5}


@pytest.fixture
def world(user, api):
    """cat (classification), dog (object), cat+outdoor, dog+outdoor, an unlabeled image."""
    project = make_project(owner=user)
    names = ["cat", "dog", "cat_out", "dog_out", "blank"]
    files = [image_file(f"{n}.png", color=(i, 5, 5)) for i, n in enumerate(names)]
    images = {
        i.name.removesuffix(".png"): i for i in images_upload(project=project, user=user, files=files, labels=[]).stored
    }
    labels = {n: Label.objects.create(project=project, name=n) for n in ["cat", "dog", "outdoor", "big cat"]}
    documents = {
        "cat": ([labels["cat"]], []),
        "dog": ([], [labels["dog"]]),
        "cat_out": ([labels["cat"], labels["outdoor"]], []),
        "dog_out": ([labels["outdoor"]], [labels["dog"]]),
    }
    for name, (classes, objects) in documents.items():
        api.put(
            f"/api/images/{images[name].id}/annotations/",
            {
                "revision": 0,
                "classifications": [{"label": label.id} for label in classes],
                "shapes": [{"label": label.id, "kind": "box", "geometry": BOX} for label in objects],
            },
            format="json",
        )
    return project, images


def names(api, project, **params):
    response = api.get(f"/api/projects/{project.id}/images/", params)
    assert response.status_code == 200, response.json()
    return sorted(i["name"].removesuffix(".png") for i in response.json()["results"])


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cat", ["cat", "cat_out"]),
        ("dog", ["dog", "dog_out"]),
        ("cat OR dog", ["cat", "cat_out", "dog", "dog_out"]),
        ("cat AND NOT outdoor", ["cat"]),
        ("(cat OR dog) AND outdoor", ["cat_out", "dog_out"]),
        ("NOT (cat OR dog)", ["blank"]),
        ("not cat and not dog", ["blank"]),
        ('"big cat" OR outdoor', ["cat_out", "dog_out"]),
        ("NOT NOT cat", ["cat", "cat_out"]),
    ],
)
def test_label_expressions(api, world, expression, expected):
    project, _ = world
    assert names(api, project, labels=expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cat AND", "Expected a label name in the label filter, found the end."),
        ("(cat OR dog", "A '(' in the label filter is never closed."),
        ("cat dog", "Unexpected 'dog' in the label filter."),
        ("horse", "No label named 'horse' in this project."),
        ("AND cat", "Expected a label name in the label filter, found 'AND'."),
        # Bounded, so no filter is expensive (or a 500) for anyone who may view the project.
        ("(" * 333 + "cat" + ")" * 333, "The label filter nests parentheses and NOTs more than 10 deep."),
        ("NOT " * 1000 + "cat", "The label filter has 4,003 characters; the limit is 1,000."),
        ("NOT " * 11 + "cat", "The label filter nests parentheses and NOTs more than 10 deep."),
        (" OR ".join(["cat"] * 51), "The label filter names 51 labels; the limit is 50."),
        (" OR ".join(["cat"] * 3000), "The label filter has 20,996 characters; the limit is 1,000."),
    ],
)
def test_bad_expressions_are_400(api, world, expression, message):
    project, _ = world
    response = api.get(f"/api/projects/{project.id}/images/", {"labels": expression})
    assert response.status_code == 400
    assert response.json() == {"labels": [message]}


def test_the_bounds_still_allow_what_a_person_writes(api, world):
    project, _ = world
    deep = "NOT " * 10 + "cat"  # ten NOTs: an even number, so cat
    assert names(api, project, labels=deep) == names(api, project, labels="cat")
    assert names(api, project, labels=" OR ".join(["cat"] * 50)) == names(api, project, labels="cat")


def test_types(api, world):
    project, _ = world
    assert names(api, project, type="none") == ["blank"]
    assert names(api, project, type="single") == ["cat", "dog"]
    assert names(api, project, type="multiple") == ["cat_out", "dog_out"]
    assert names(api, project, type="mine") == ["cat", "cat_out", "dog", "dog_out"]
    assert names(api, project, type="others") == []


def test_status_is_per_user(api, world, user):
    project, images = world
    other = UserFactory()
    from projects.models import Role
    from projects.services import membership_grant

    membership_grant(project=project, email=other.email, role=Role.objects.get(name="Labeler"))
    other_api = client_for(other)
    assert names(other_api, project, status="not-seen") == ["blank", "cat", "cat_out", "dog", "dog_out"]
    assert other_api.post(f"/api/images/{images['blank'].id}/seen/").status_code == 204
    assert names(other_api, project, status="seen") == ["blank"]
    assert names(other_api, project, status="labeled") == []
    assert names(api, project, status="labeled") == ["cat", "cat_out", "dog", "dog_out"]
    assert names(api, project, status="not-seen") == ["blank"]
    assert names(other_api, project, type="others") == ["cat", "cat_out", "dog", "dog_out"]
    assert names(api, project, labels="outdoor", type="multiple", status="labeled") == ["cat_out", "dog_out"]


def test_unknown_type_or_status_is_400(api, world):
    project, _ = world
    assert api.get(f"/api/projects/{project.id}/images/", {"type": "odd"}).json() == {
        "type": ["Unknown type 'odd'; use one of none, single, multiple, mine, others."]
    }
    assert api.get(f"/api/projects/{project.id}/images/", {"status": "odd"}).status_code == 400


def test_the_grid_filters_with_htmx_and_keeps_the_filter_in_page_links(client, user, world):
    project, _ = world
    client.force_login(user)
    partial = client.get(f"/projects/{project.id}/", {"labels": "cat OR dog"}, HTTP_HX_REQUEST="true").content.decode()
    assert "4 images match the filter" in partial
    error = client.get(f"/projects/{project.id}/", {"labels": "horse"}).content.decode()
    assert "No label named &#x27;horse&#x27; in this project." in error


@given(st.lists(st.sampled_from(["cat", "dog", "AND", "OR", "NOT", "(", ")", '"big cat"']), max_size=12))
def test_the_tokenizer_reads_whatever_the_parts_were(parts):
    tokens = tokenize(" ".join(parts))
    assert [t.text if t.kind != "label" or not t.text.startswith("big") else '"big cat"' for t in tokens] == parts


def test_a_filter_over_the_bounds_is_explained_on_the_grid_and_in_the_labeler(client, user, world):
    project, images = world
    client.force_login(user)
    deep = "(" * 333 + "cat" + ")" * 333
    grid = client.get(f"/projects/{project.id}/", {"labels": deep})
    assert grid.status_code == 200
    assert "The label filter nests parentheses and NOTs more than 10 deep." in grid.content.decode()
    image = next(iter(images.values()))
    labeler = client.get(f"/projects/{project.id}/images/{image.pk}/label/", {"labels": deep}, follow=True)
    assert labeler.status_code == 200
    assert "The label filter nests parentheses and NOTs more than 10 deep." in labeler.content.decode()
