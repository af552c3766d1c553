"""The background indexer: unreadable files and images deleted mid-batch do not stop it."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from projects.models import Image
from projects.uploads import images_upload
from similarity import services
from similarity.models import ImageEmbedding, UnindexedImage
from tests.factories import image_bytes, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def three(user):
    """Three images, not indexed yet (the task queued after commit never ran)."""
    project = make_project(owner=user)
    files = [SimpleUploadedFile(f"{i}.png", image_bytes(color=(40 * i, 10, 10))) for i in range(3)]
    return project, images_upload(project=project, user=user, files=files, labels=[]).stored


def test_unreadable_and_undecodable_files_are_marked_and_the_rest_are_indexed(three, api):
    project, images = three
    images[0].file.storage.delete(images[0].file.name)
    with images[1].file.storage.open(images[1].file.name, "wb") as damaged:
        damaged.write(b"\x89PNG\r\n\x1a\n not the rest of a png")
    assert services.embeddings_compute(project_id=project.id) == 1
    assert list(ImageEmbedding.objects.values_list("image_id", flat=True)) == [images[2].pk]
    assert sorted(UnindexedImage.objects.values_list("image_id", flat=True)) == [images[0].pk, images[1].pk]
    assert services.embeddings_compute(project_id=project.id) == 0  # not retried forever
    status = api.get(f"/api/projects/{project.id}/similarity-index/").json()
    assert status == {"images": 3, "indexed": 1, "unreadable": 2, "complete": True}


def test_an_image_deleted_while_it_is_embedded_is_skipped(three, monkeypatch):
    project, images = three
    real = services.embedder()

    class DeletingEmbedder:
        def embed(self, data):
            Image.objects.filter(pk=images[1].pk).delete()  # someone deletes it meanwhile
            return real.embed(data)

    monkeypatch.setattr(services, "embedder", lambda: DeletingEmbedder())
    assert services.embeddings_compute(project_id=project.id) == 2
    assert sorted(ImageEmbedding.objects.values_list("image_id", flat=True)) == [images[0].pk, images[2].pk]


def test_a_second_task_leaves_a_project_another_is_indexing_and_the_first_finishes_it(three):
    """Uploads in quick succession queue several tasks; only one embeds, none embeds a batch twice."""
    import psycopg
    from django.db import connection

    project, images = three
    other = psycopg.connect(**connection.get_connection_params(), autocommit=True)  # another worker's session
    try:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [services.INDEXING_LOCK, project.id])
        assert services.embeddings_compute(project_id=project.id) == 0
        assert ImageEmbedding.objects.count() == 0
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [services.INDEXING_LOCK, project.id])
    finally:
        other.close()
    assert services.embeddings_compute(project_id=project.id) == 3
    assert sorted(ImageEmbedding.objects.values_list("image_id", flat=True)) == sorted(image.pk for image in images)
    with connection.cursor() as cursor:  # and the lock was let go
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s", [project.id])
        assert cursor.fetchone()[0] == 0


def test_searches_compare_vectors_of_one_embedder_only_and_older_ones_are_embedded_again(user):
    from similarity import selectors
    from similarity.models import ImageEmbedding
    from training.ml.embedder import EMBEDDER_NAME

    project = make_project(owner=user)
    images = images_upload(
        project=project,
        user=user,
        labels=[],
        files=[SimpleUploadedFile(f"{i}.png", image_bytes(color=(40 * i, 90, 200))) for i in range(3)],
    ).stored
    assert services.embeddings_compute(project_id=project.id) == 3
    assert set(ImageEmbedding.objects.values_list("embedder", "precision")) == {(EMBEDDER_NAME, "float32")}
    vector = ImageEmbedding.objects.get(image=images[0]).vector
    ImageEmbedding.objects.filter(image=images[1]).update(embedder="an-older-model", vector=vector)
    found = [image_id for image_id, _ in selectors.similar_images(project=project, vector=vector, threshold=-1)]
    assert found == [images[0].pk, images[2].pk]  # the older model's vector is not compared, however close
    assert selectors.project_vectors(project=project)[0].tolist() == [images[0].pk, images[2].pk]
    assert services.embeddings_compute(project_id=project.id) == 1  # it is embedded again, with today's model
    assert ImageEmbedding.objects.get(image=images[1]).embedder == EMBEDDER_NAME
