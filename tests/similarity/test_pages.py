"""Similarity pages: 1vN from the grid, an uploaded file, pairs with one of each ticked, the index's progress."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from projects.models import Image, Role
from projects.services import membership_grant
from similarity.models import ImageEmbedding
from tests.factories import UserFactory
from tests.similarity.near_duplicates import near_duplicate
from tests.similarity.test_similarity_api import PHOTOS, photos  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def test_the_grid_links_each_image_to_its_similar_images(browser, photos):  # noqa: F811
    grid = browser.get(f"/projects/{photos.id}/").content.decode()
    copy = Image.objects.get(name="copy-chelsea.jpg")
    assert f"/projects/{photos.id}/similar/?image={copy.id}" in grid and 'id="pairs-link"' in grid
    page = browser.get(f"/projects/{photos.id}/similar/", {"image": copy.id}).content.decode()
    first = page.split('class="tile"')[1]
    assert "chelsea.png" in first and "copy-chelsea.jpg" not in first.split("</li>")[0]
    labeler = browser.get(f"/projects/{photos.id}/images/{copy.id}/label/").content.decode()
    assert f"/projects/{photos.id}/similar/?image={copy.id}" in labeler


def test_searching_with_an_uploaded_file(browser, photos):  # noqa: F811
    upload = SimpleUploadedFile("mine.jpg", near_duplicate(PHOTOS["coins.png"], 5))
    page = browser.post(f"/projects/{photos.id}/similar/?limit=2", {"file": upload}).content.decode()
    assert "Like your image" in page
    assert page.split('class="tile"')[1].split("</li>")[0].count("coins.png") >= 1


def test_pairs_page_ticks_the_newer_image_of_each_pair(browser, photos):  # noqa: F811
    page = browser.get(f"/projects/{photos.id}/similar-pairs/", {"search": "1"}).content.decode()
    assert "3 pairs; the newer image of each is ticked." in page
    ticked = [
        int(chunk.split('"')[0]) for chunk in page.split('name="image" value="')[1:] if "checked" in chunk.split(">")[0]
    ]
    assert sorted(Image.objects.filter(pk__in=ticked).values_list("name", flat=True)) == [
        "copy-astronaut.jpg",
        "copy-chelsea.jpg",
        "copy-coffee.jpg",
    ]
    response = browser.post(f"/projects/{photos.id}/images/delete/", {"image": ticked})
    assert response.status_code == 302
    assert not Image.objects.filter(name__startswith="copy-").exists()
    assert ImageEmbedding.objects.filter(project=photos).count() == 9  # embeddings go with their images


def test_the_index_status_polls_until_complete(browser, photos):  # noqa: F811
    ImageEmbedding.objects.filter(image__name="moon.png").delete()
    partial = browser.get(f"/projects/{photos.id}/similarity-index/").content.decode()
    assert "11 of 12" in partial and 'hx-trigger="every 2s, images-uploaded from:body"' in partial
    ImageEmbedding.objects.filter(image__name="moon.png").exists() or _index_moon(photos)
    done = browser.get(f"/projects/{photos.id}/similarity-index/").content.decode()
    assert "all 12 images" in done and 'hx-trigger="images-uploaded from:body"' in done  # waits for the next upload


def _index_moon(project):
    from similarity.services import embeddings_compute

    embeddings_compute(project_id=project.pk)


def test_a_stranger_sees_nothing_and_a_viewer_searches_but_cannot_delete(client, photos):  # noqa: F811
    viewer, stranger = UserFactory(), UserFactory()
    membership_grant(project=photos, email=viewer.email, role=Role.objects.get(name="Viewer"))
    client.force_login(stranger)
    image = Image.objects.get(name="moon.png")
    for url in (
        f"/projects/{photos.id}/similar/?image={image.id}",
        f"/projects/{photos.id}/similar-pairs/?search=1",
        f"/projects/{photos.id}/similarity-index/",
    ):
        assert client.get(url).status_code == 404, url
    from tests.conftest import client_for

    assert client_for(stranger).get(f"/api/projects/{photos.id}/similar/", {"image": image.id}).status_code == 404
    assert client_for(stranger).get(f"/api/projects/{photos.id}/similar-pairs/").status_code == 404
    client.force_login(viewer)
    page = client.get(f"/projects/{photos.id}/similar-pairs/?search=1").content.decode()
    assert "3 pairs" in page and "Delete ticked images" not in page
    assert client_for(viewer).get(f"/api/projects/{photos.id}/similar-pairs/").status_code == 200


def test_a_large_project_searches_pairs_in_the_background_and_the_page_polls(
    browser,
    photos,  # noqa: F811
    settings,
    django_capture_on_commit_callbacks,
):
    from jobs.runner import job_run
    from similarity.models import PairSearch

    settings.SIGHTLINE_SYNC_PAIR_IMAGES = 5
    asked = browser.get(f"/projects/{photos.id}/similar-pairs/", {"search": "1", "limit": "10"}).content.decode()
    assert PairSearch.objects.count() == 0  # a GET starts nothing: it offers the background search
    assert "comparing every one with every other runs in the background" in asked and 'id="pairs-start"' in asked
    with django_capture_on_commit_callbacks(execute=False):
        page = browser.post(f"/projects/{photos.id}/similar-pairs/", {"limit": "10"}).content.decode()
    search = PairSearch.objects.get()
    assert search.parameters == {"limit": 10, "threshold": 0.6, "labels": [], "op": "or"}
    assert f'hx-get="/projects/{photos.id}/similar-pairs/{search.id}/"' in page and "Searching 12 images" in page

    job_run(search.id)  # the worker's turn
    partial = browser.get(f"/projects/{photos.id}/similar-pairs/{search.id}/").content.decode()
    assert (
        partial.lstrip().startswith('<section class="card" id="pair-results"') and "hx-get" not in partial.split(">")[0]
    )
    assert "3 pairs; the newer image of each is ticked." in partial
