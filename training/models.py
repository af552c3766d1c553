"""Training: frozen dataset versions, background training jobs, and the model versions they make.

One shape for every task (classification, detection, semantic segmentation): a job freezes a
DatasetVersion of the project's images and targets, trains on it in django-q2, and on success
leaves a ModelVersion with its best and last checkpoints and their evaluations.
"""

import uuid

from django.conf import settings
from django.db import models

from jobs.models import Job, JobQuerySet


class Task(models.TextChoices):
    CLASSIFICATION = "classification"
    DETECTION = "detection"
    SEMANTIC = "semantic-segmentation"  # every pixel one label or background
    INSTANCE = "instance-segmentation"  # every object its own mask


OBJECT_TASKS = (Task.DETECTION, Task.INSTANCE)  # models that find objects: scores per label, thresholds, IoU
SHAPE_TASKS = (Task.SEMANTIC, Task.INSTANCE)  # models that learn from polygons and masks


class Split(models.TextChoices):
    TRAIN = "train"
    VALID = "valid"


class DatasetVersion(models.Model):
    """Exactly what one training run learned from: images, their targets and splits, the label map."""

    class SplitMethod(models.TextChoices):
        PERCENT = "percent", "stratified percentage"
        USER = "user", "user-defined validation set"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="dataset_versions")
    number = models.PositiveIntegerField(help_text="Counts up within the project: v1, v2, ...")
    task = models.CharField(max_length=32, choices=Task.choices)
    multi_label = models.BooleanField(default=False)
    labels = models.JSONField(help_text='The label map in output order: [{"id": 3, "name": "cat", "color": "#..."}].')
    split_method = models.CharField(max_length=8, choices=SplitMethod.choices)
    validation_percent = models.PositiveSmallIntegerField(default=20)
    seed = models.IntegerField(default=0)
    counts = models.JSONField(default=dict, help_text="Images per split and per label, for the page.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="dataset_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.project} dataset v{self.number} ({self.task})"

    @property
    def label_names(self) -> list[str]:
        return [label["name"] for label in self.labels]


class DatasetItem(models.Model):
    """One image in a dataset version, with its targets as they were when the version was frozen."""

    dataset_version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="items")
    # The image may be deleted later; the version still says what was trained on.
    image = models.ForeignKey("projects.Image", null=True, on_delete=models.SET_NULL, related_name="dataset_items")
    image_name = models.CharField(max_length=255)
    file = models.CharField(max_length=300, help_text="The stored file's name in the default storage.")
    sha256 = models.CharField(max_length=64)
    revision = models.PositiveIntegerField(help_text="The image's annotation revision when frozen.")
    split = models.CharField(max_length=5, choices=Split.choices)
    targets = models.JSONField(help_text="Classification: label indices, the default first. Detection: shapes.")

    class Meta:
        ordering = ["dataset_version_id", "id"]
        indexes = [models.Index(fields=["dataset_version", "split"])]

    def __str__(self) -> str:
        return f"{self.image_name} ({self.split}) in {self.dataset_version}"


class TrainingJob(Job):
    """A training run: what was asked, and the epochs, curves and log it made (status and progress are the Job's)."""

    KIND = "training"

    task = models.CharField(max_length=32, choices=Task.choices)
    name = models.CharField(max_length=100, help_text="The model's name, as the predict endpoint takes it.")
    parameters = models.JSONField(help_text="Every parameter, defaults filled in.")
    dataset_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_jobs"
    )
    epoch = models.PositiveIntegerField(default=0, help_text="Epochs completed.")
    epochs = models.PositiveIntegerField(default=0, help_text="Epochs planned.")
    loss = models.FloatField(null=True, blank=True, help_text="The latest training loss.")
    history = models.JSONField(default=list, blank=True, help_text="One entry per epoch: losses and accuracies.")
    best_epoch = models.PositiveIntegerField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=64, blank=True)
    log = models.TextField(blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.task}, {self.status})"


def checkpoint_upload_path(model: "ModelVersion", filename: str) -> str:
    # A loaded model's folder is its own: loaded checkpoints are cached by file name in every process.
    folder = model.job_id or f"loaded-{uuid.uuid4().hex}"
    return f"models/{model.project_id}/{folder}/{filename}"


class Checkpoint(models.TextChoices):
    BEST = "best", "best model (lowest validation loss)"
    LAST = "last", "last model"


class ModelVersion(models.Model):
    """A trained model: its checkpoints, label map, what it learned from, and how good it is.

    A model loaded from a bundle (ML Mode's Load Existing Model) has no job, dataset version or evaluation: its
    outputs were mapped to this project's labels by name when it was loaded (`loaded_label_ids`)."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="model_versions")
    job = models.OneToOneField(
        TrainingJob, null=True, blank=True, on_delete=models.CASCADE, related_name="model_version"
    )
    dataset_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.RESTRICT, related_name="model_versions"
    )
    loaded_from = models.CharField(
        max_length=255, blank=True, help_text="A loaded model: the file it came from. Empty for one trained here."
    )
    loaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    loaded_label_ids = models.JSONField(
        default=list, blank=True, help_text="A loaded model: the project label of each output, in output order."
    )
    name = models.CharField(max_length=100)
    task = models.CharField(max_length=32, choices=Task.choices)
    multi_label = models.BooleanField(default=False)
    segmentation_head = models.BooleanField(
        default=False,
        help_text="A detector with spec 004's segmentation head beside its detection head: it answers boxes and a "
        "mask per label.",
    )
    backbone = models.CharField(max_length=100)
    image_size = models.PositiveIntegerField()
    labels = models.JSONField(help_text="Output names in order.")
    best_epoch = models.PositiveIntegerField()
    epochs_trained = models.PositiveIntegerField()
    best_checkpoint = models.FileField(upload_to=checkpoint_upload_path, max_length=300)
    last_checkpoint = models.FileField(upload_to=checkpoint_upload_path, max_length=300)
    best_evaluation = models.FileField(upload_to=checkpoint_upload_path, max_length=300, blank=True)
    last_evaluation = models.FileField(upload_to=checkpoint_upload_path, max_length=300, blank=True)
    metrics = models.JSONField(default=dict, help_text="Summary per checkpoint and split, for lists and the API.")
    optimized_thresholds = models.JSONField(
        default=dict, help_text="Multi-label: per checkpoint, the F1-best threshold per label."
    )
    thresholds = models.JSONField(
        default=dict, blank=True, help_text="Multi-label: thresholds a person set, per checkpoint."
    )
    iou_threshold = models.FloatField(
        default=0.5, help_text="Detection: the IoU at which a predicted box matches a true one, everywhere."
    )
    predict_with = models.CharField(
        max_length=4,
        choices=Checkpoint.choices,
        default=Checkpoint.BEST,
        help_text="Which checkpoint answers predictions that do not name one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="model_version_unique_name"),
            models.CheckConstraint(
                condition=models.Q(segmentation_head=False) | models.Q(task="detection"),
                name="model_version_segmentation_head_on_a_detector",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.task}{', multi-label' if self.multi_label else ''})"

    @property
    def is_loaded(self) -> bool:
        return self.job_id is None

    def label_ids(self) -> dict[str, int]:
        """Each output's project label id by output name (a one-class model's 'background' has none)."""
        if self.dataset_version_id is None:
            pairs = zip(self.labels, self.loaded_label_ids, strict=True)
            return {name: label for name, label in pairs if label is not None}
        return {entry["name"]: entry["id"] for entry in self.dataset_version.labels if entry["id"] is not None}

    def checkpoint_file(self, checkpoint: str):
        return self.best_checkpoint if checkpoint == Checkpoint.BEST else self.last_checkpoint

    def evaluation_file(self, checkpoint: str):
        return self.best_evaluation if checkpoint == Checkpoint.BEST else self.last_evaluation

    def thresholds_for(self, checkpoint: str) -> list[float] | None:
        """Multi-label and detection score thresholds in use: the person's if set, else the F1-optimised ones."""
        if not self.multi_label and self.task not in OBJECT_TASKS:
            return None
        return self.thresholds.get(checkpoint) or self.optimized_thresholds.get(checkpoint)


class Prediction(models.Model):
    """A model's suggestion on one image: an image label, or an object with its geometry, and its score.

    Never ground truth: training, statistics, filters, exports and an image's status read annotations, not these.
    Predicting an image again with the same model replaces its earlier predictions."""

    class Kind(models.TextChoices):
        LABEL = "label", "image label"
        BOX = "box"
        POLYGON = "polygon"
        MASK = "mask"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    checkpoint = models.CharField(max_length=4, choices=Checkpoint.choices)
    image = models.ForeignKey("projects.Image", on_delete=models.CASCADE, related_name="predictions")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    label = models.ForeignKey("projects.Label", on_delete=models.CASCADE, related_name="predictions")
    geometry = models.JSONField(
        default=dict, blank=True, help_text="As an annotation's: a box's x, y, width, height; empty for a label."
    )
    score = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "-score", "id"]
        indexes = [models.Index(fields=["model_version", "image"], name="prediction_model_image")]
        constraints = [
            models.CheckConstraint(condition=models.Q(score__gte=0, score__lte=1), name="prediction_score_0_to_1")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.label_id} {self.score:.2f} on image {self.image_id} by {self.model_version_id}"


class SeemeModel(models.Model):
    """A model the SeeMe.ai SDK created (POST /api/v1/models, docs/seeme.md): a named group of versions, kept in a
    project of its own that is made with it, so its versions are on that project's Models page. A version is empty
    until a file is uploaded to it; the file, checked as Load Existing Model checks it, becomes a ModelVersion.

    Its id, and its versions', are taken from ModelVersion's sequence, so that a SeeMe model id names one thing:
    one of these, or a model trained here (whose one version is itself)."""

    id = models.BigIntegerField(primary_key=True)
    project = models.OneToOneField("projects.Project", on_delete=models.CASCADE, related_name="seeme_model")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    application = models.CharField(max_length=32, default="image_classification")
    active_version = models.ForeignKey(
        "SeemeVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    logo = models.FileField(upload_to="seeme/logos/", max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class SeemeVersion(models.Model):
    """A version of a SeemeModel: `model` once a file was uploaded to it (empty again if that model is deleted)."""

    id = models.BigIntegerField(primary_key=True)
    seeme_model = models.ForeignKey(SeemeModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    model = models.OneToOneField(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="seeme_version"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["seeme_model_id", "number"]
        constraints = [models.UniqueConstraint(fields=["seeme_model", "number"], name="seeme_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.seeme_model.name} {self.name}"


class Inference(models.Model):
    """One image predicted through the SeeMe API (POST /api/v1/inferences/...), as spec 002 tracks a deployment's
    usage: what was answered, how long the model took, and whether its user reported the answer wrong. The image
    itself is not kept."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="inferences")
    seeme_version = models.ForeignKey(
        SeemeVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="inferences",
        help_text="The SeeMe model version it was asked of, when that was not the trained model itself.",
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=255, blank=True, help_text="The image's file name, as sent.")
    extension = models.CharField(max_length=10, blank=True)
    prediction = models.CharField(max_length=200, blank=True, help_text="The best label; empty when nothing found.")
    confidence = models.FloatField(default=0)
    inference_ms = models.FloatField(help_text="The model's time for this image.")
    total_ms = models.FloatField(help_text="The request's time, reading and checking the image included.")
    items = models.JSONField(default=list, blank=True, help_text="Detection: each box's label, score, cx cy w h.")
    error_reported = models.BooleanField(default=False)
    error = models.TextField(blank=True, help_text="What the user said was wrong.")
    description = models.TextField(blank=True)
    hidden = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["model_version", "-created_at"], name="inference_model_newest")]

    def __str__(self) -> str:
        return f"{self.prediction or '-'} ({self.confidence:.2f}) by {self.model_version_id}"
