"""Image embeddings in pgvector, searched by cosine distance through an HNSW index; pair searches as jobs."""

from django.db import models
from pgvector.django import HnswIndex, VectorField

from jobs.models import Job
from training.ml.embedder import DIMENSIONS, EMBEDDER_NAME, PRECISION


class ImageEmbeddingQuerySet(models.QuerySet):
    def for_project(self, project):
        """The project's embeddings that searches compare: those of today's embedder, at its precision."""
        return self.filter(project=project).current()

    def current(self):
        return self.filter(embedder=EMBEDDER_NAME, precision=PRECISION)


class ImageEmbedding(models.Model):
    """One image's unit-length feature vector; its cosine distance to another is 1 - their similarity."""

    image = models.OneToOneField("projects.Image", on_delete=models.CASCADE, primary_key=True, related_name="embedding")
    # Denormalised from the image, so a search filters by project without a join.
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    embedder = models.CharField(max_length=64, help_text="The model that made the vector; searches compare one only.")
    precision = models.CharField(max_length=16, default="float32", help_text="The vector's number format.")
    vector = VectorField(dimensions=DIMENSIONS)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ImageEmbeddingQuerySet.as_manager()

    class Meta:
        ordering = ["image_id"]
        indexes = [
            HnswIndex(
                name="embedding_vector_hnsw",
                fields=["vector"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["project"], name="embedding_project"),
        ]

    def __str__(self) -> str:
        return f"embedding of image {self.image_id} ({self.embedder})"


class UnindexedImage(models.Model):
    """An image the indexer could not read or decode: skipped from then on, and counted on the project page."""

    image = models.OneToOneField("projects.Image", on_delete=models.CASCADE, primary_key=True, related_name="unindexed")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id"]

    def __str__(self) -> str:
        return f"image {self.image_id} not indexed: {self.reason}"


class PairSearch(Job):
    """An NvN search run in the background for a large project, and the pairs it found."""

    KIND = "pair-search"

    parameters = models.JSONField(help_text="threshold, limit, labels, op")
    pairs = models.JSONField(default=list, blank=True, help_text="[[image_a, image_b, score], ...], best first")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"pair search in {self.project} ({self.status})"
