import pytest

from projects.demo import DEMO_PASSWORD, SAMPLES, demo_seed

pytestmark = pytest.mark.django_db


def test_demo_seed_creates_the_user_and_project_once():
    user, project, created = demo_seed()
    assert created is True
    assert user.check_password(DEMO_PASSWORD)
    assert project.images.count() == len(SAMPLES) == 18
    labels = dict(project.images.values_list("name", "classifications__label__name"))
    assert labels["astronaut.png"] == "photo"
    assert labels["cell.png"] == "microscopy"
    assert sorted(project.labels.values_list("name", flat=True)) == [
        "astronomy",
        "document",
        "graphic",
        "microscopy",
        "photo",
        "texture",
    ]
    again_user, again_project, created_again = demo_seed()
    assert (again_user, again_project, created_again) == (user, project, False)
    assert project.images.count() == 18
