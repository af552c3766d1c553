"""What people say about images: classification labels, shapes, per-user status and labeling time."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotations.fields import FastJSONField
from jobs.models import Job


class Classification(models.Model):
    image = models.ForeignKey("projects.Image", on_delete=models.CASCADE, related_name="classifications")
    label = models.ForeignKey("projects.Label", on_delete=models.CASCADE, related_name="classifications")
    is_default = models.BooleanField(default=False, help_text="Single-label training uses the default label.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "-is_default", "label__name"]
        constraints = [
            models.UniqueConstraint(fields=["image", "label"], name="classification_unique_label"),
            models.UniqueConstraint(fields=["image"], condition=Q(is_default=True), name="classification_one_default"),
        ]

    def __str__(self) -> str:
        return f"{self.image} is {self.label}{' (default)' if self.is_default else ''}"


class AnnotationQuerySet(models.QuerySet):
    def for_image(self, image):
        return self.filter(image=image)


class Annotation(models.Model):
    """One object on an image: a shape of some kind with a label, in image pixel coordinates."""

    class Kind(models.TextChoices):
        BOX = "box"
        POLYGON = "polygon"
        POLYLINE = "polyline"
        POINTS = "points"
        MASK = "mask"

    class Source(models.TextChoices):
        MANUAL = "manual"
        SMART = "smart"
        PREDICTION = "prediction"

    image = models.ForeignKey("projects.Image", on_delete=models.CASCADE, related_name="annotations")
    label = models.ForeignKey("projects.Label", on_delete=models.CASCADE, related_name="annotations")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    geometry = FastJSONField(help_text="See docs/formats.md: pixels; polygons as parts with holes; masks as RLE.")
    occluded = models.BooleanField(default=False)
    keypoints = FastJSONField(default=list, blank=True)
    attributes = FastJSONField(default=dict, blank=True)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.MANUAL)
    score = models.FloatField(null=True, blank=True)
    # Set by accepting a prediction (training.services.assisting), never by a client's save; kept when the model goes.
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="accepted_annotations"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AnnotationQuerySet.as_manager()

    class Meta:
        ordering = ["image_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=0, score__lte=1), name="annotation_score_0_to_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.label} on {self.image}"


class ImageStatus(models.Model):
    """Where one user stands with one image: seen it, or labeled it. No row means not seen."""

    class Status(models.TextChoices):
        SEEN = "seen"
        LABELED = "labeled"

    image = models.ForeignKey("projects.Image", on_delete=models.CASCADE, related_name="statuses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="image_statuses")
    status = models.CharField(max_length=8, choices=Status.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["image_id", "user_id"]
        constraints = [models.UniqueConstraint(fields=["image", "user"], name="image_status_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} {self.status} {self.image}"


class LabelingSession(models.Model):
    """Active labeling seconds of one user on one image on one day, counted on the server from heartbeats."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labeling_sessions")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="labeling_sessions")
    image = models.ForeignKey("projects.Image", on_delete=models.CASCADE, related_name="labeling_sessions")
    day = models.DateField()
    active_seconds = models.FloatField(default=0)
    last_heartbeat_at = models.DateTimeField()

    class Meta:
        ordering = ["-day", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "image", "day"], name="labeling_session_unique_day"),
        ]
        indexes = [models.Index(fields=["project", "day"])]

    def __str__(self) -> str:
        return f"{self.user} on {self.image}, {self.day}: {self.active_seconds:.0f} s"


def transfer_upload_path(job: "TransferJob", filename: str) -> str:
    return f"transfers/{job.project_id}/{job.direction}-{job.format}-{filename}"


class TransferJob(Job):
    """An import or export that runs in the background (status and progress are the Job's)."""

    class Direction(models.TextChoices):
        EXPORT = "export"
        IMPORT = "import"

    direction = models.CharField(max_length=6, choices=Direction.choices)
    format = models.CharField(max_length=32)
    mode = models.CharField(max_length=8, default="append", help_text="Imports: append to, or replace, annotations.")
    include_images = models.BooleanField(default=False, help_text="Exports: the image files in the same ZIP.")
    file = models.FileField(upload_to=transfer_upload_path, blank=True, max_length=300)
    filename = models.CharField(max_length=200, blank=True)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.direction} {self.format} of {self.project} ({self.status})"

    @property
    def format_name(self) -> str:
        from annotations.formats import FORMAT_NAMES

        return FORMAT_NAMES.get(self.format, self.format)


class ReplacedDocument(models.Model):
    """An image's annotations as they were before a bulk replace (an import or a script) overwrote them.

    Kept until someone purges it (admin, or `manage.py annotations_history_purge`), so a replace
    can always be undone image by image.
    """

    image = models.ForeignKey("projects.Image", on_delete=models.CASCADE, related_name="replaced_documents")
    revision = models.PositiveIntegerField(help_text="The revision that was replaced.")
    shapes = FastJSONField(default=list)
    classifications = FastJSONField(default=list)
    reason = models.CharField(max_length=40, help_text="What replaced it: an import or a bulk save.")
    replaced_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    replaced_at = models.DateTimeField()

    class Meta:
        ordering = ["-replaced_at", "-id"]
        indexes = [models.Index(fields=["image", "-replaced_at"])]

    def __str__(self) -> str:
        return f"{self.image} at revision {self.revision}, replaced by {self.reason}"
