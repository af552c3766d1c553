"""Training over REST: start and watch jobs, read models and their statistics, predict (spec 000's contract)."""

from __future__ import annotations

from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictSerializer
from config.parsers import RawImageParser
from projects.files import stored_response
from projects.permissions import access_child, access_project
from training import downloads, predictions, selectors, services, statistics
from training.models import (
    OBJECT_TASKS,
    Checkpoint,
    DatasetItem,
    DatasetVersion,
    ModelVersion,
    Split,
    Task,
    TrainingJob,
)
from training.statistics import thresholds_parse


class JobOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project_id = serializers.IntegerField()
    name = serializers.CharField()
    task = serializers.CharField()
    status = serializers.CharField()
    phase = serializers.CharField()
    parameters = serializers.DictField()
    epoch = serializers.IntegerField()
    epochs = serializers.IntegerField()
    progress = serializers.FloatField()
    loss = serializers.FloatField(allow_null=True)
    eta_seconds = serializers.FloatField(allow_null=True)
    best_epoch = serializers.IntegerField(allow_null=True)
    history = serializers.ListField(child=serializers.DictField())
    device = serializers.CharField()
    cancel_requested = serializers.BooleanField()
    error = serializers.CharField()
    log = serializers.CharField()
    dataset_version = serializers.SerializerMethodField()
    model_id = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_dataset_version(self, job: TrainingJob) -> dict | None:
        version = job.dataset_version
        if version is None:
            return None
        return {
            "id": version.id,
            "number": version.number,
            "labels": version.label_names,
            "counts": version.counts,
            "split_method": version.split_method,
        }

    def get_model_id(self, job: TrainingJob) -> int | None:
        model = getattr(job, "model_version", None)
        return model.id if model else None


class ModelOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project_id = serializers.IntegerField()
    name = serializers.CharField()
    task = serializers.CharField()
    multi_label = serializers.BooleanField()
    backbone = serializers.CharField()
    image_size = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField())
    best_epoch = serializers.IntegerField()
    epochs_trained = serializers.IntegerField()
    predict_with = serializers.CharField()
    metrics = serializers.DictField()
    thresholds = serializers.SerializerMethodField()
    optimized_thresholds = serializers.DictField()
    iou_threshold = serializers.FloatField(help_text="Detection: the IoU at which a predicted box is right.")
    segmentation_head = serializers.BooleanField(
        help_text="Detection: also trained a segmentation head (spec 004), so it answers a mask per label too."
    )
    job_id = serializers.IntegerField(allow_null=True, help_text="Null for a model loaded from a bundle.")
    dataset_version = serializers.SerializerMethodField()
    loaded_from = serializers.CharField(help_text="A loaded model: the bundle's file name; empty when trained here.")
    predict_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_thresholds(self, model: ModelVersion) -> dict | None:
        if model.thresholds_for(Checkpoint.BEST) is None:
            return None
        return {checkpoint: model.thresholds_for(checkpoint) for checkpoint in Checkpoint.values}

    def get_dataset_version(self, model: ModelVersion) -> dict | None:
        if model.dataset_version_id is None:
            return None
        return {"id": model.dataset_version_id, "number": model.dataset_version.number}

    def get_predict_url(self, model: ModelVersion) -> str:
        return f"/api/predict/{model.project_id}/{quote(model.name, safe='')}/"


class DatasetVersionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project_id = serializers.IntegerField()
    number = serializers.IntegerField()
    task = serializers.CharField()
    multi_label = serializers.BooleanField()
    labels = serializers.ListField(child=serializers.DictField())
    split_method = serializers.CharField()
    validation_percent = serializers.IntegerField()
    seed = serializers.IntegerField()
    counts = serializers.DictField()
    created_at = serializers.DateTimeField()


class DatasetItemOutput(serializers.Serializer):
    image_id = serializers.IntegerField(allow_null=True, help_text="Null once the image was deleted.")
    image_name = serializers.CharField()
    sha256 = serializers.CharField()
    revision = serializers.IntegerField()
    split = serializers.CharField()
    labels = serializers.SerializerMethodField()

    def get_labels(self, item: DatasetItem) -> list[str]:
        """Classification: the image's labels, the default first. Detection: the labels of its boxes."""
        names = self.context["names"]
        if isinstance(item.targets, dict):
            return [names[i] for i in sorted({row[4] for row in item.targets["boxes"]})]
        return [names[i] for i in item.targets]


class DatasetVersionListApi(APIView):
    @extend_schema(responses={200: DatasetVersionOutput(many=True)})
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id)
        return Response(DatasetVersionOutput(DatasetVersion.objects.filter(project=project), many=True).data)


class DatasetVersionDetailApi(APIView):
    """A frozen version and, a page at a time, its images with their split and labels as they were."""

    @extend_schema(responses={200: DatasetVersionOutput})
    def get(self, request, version_id: int):
        version = access_child(
            request.user,
            DatasetVersion.objects.filter(pk=version_id).first(),
            "view_project",
            "No such dataset version.",
        )
        paginator = PageNumberPagination()
        paginator.page_size = 500
        items = paginator.paginate_queryset(DatasetItem.objects.filter(dataset_version=version).order_by("id"), request)
        body = DatasetVersionOutput(version).data
        body["items"] = DatasetItemOutput(items, many=True, context={"names": version.label_names}).data
        body["items_count"], body["next"] = paginator.page.paginator.count, paginator.get_next_link()
        return Response(body)


class TrainingJobListApi(APIView):
    class InputSerializer(StrictSerializer):
        task = serializers.ChoiceField(choices=Task.values)
        multi_label = serializers.BooleanField(default=False)
        name = serializers.CharField(required=False, allow_blank=True, max_length=200)
        parameters = serializers.DictField(required=False, default=dict)
        images = serializers.ListField(
            child=serializers.IntegerField(min_value=1),
            required=False,
            max_length=100_000,
            help_text="Train on these images only (those with labels); all the project's by default.",
        )

    @extend_schema(responses={200: JobOutput(many=True)})
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id)
        jobs = TrainingJob.objects.filter(project=project).select_related("dataset_version", "model_version")[:100]
        return Response(JobOutput(jobs, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: JobOutput})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, "train_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.training_job_start(project=project, user=request.user, **data.validated_data)
        job.refresh_from_db()
        return Response(JobOutput(job).data, status=status.HTTP_201_CREATED)


class TrainingJobDetailApi(APIView):
    @extend_schema(responses={200: JobOutput})
    def get(self, request, job_id: int):
        job = selectors.job_get(user=request.user, job_id=job_id)
        return Response(JobOutput(job).data)


class TrainingJobCancelApi(APIView):
    @extend_schema(request=None, responses={200: JobOutput})
    def post(self, request, job_id: int):
        job = selectors.job_get(user=request.user, job_id=job_id, perm="train_project")
        return Response(JobOutput(services.training_job_cancel(job=job)).data)


class ModelListApi(APIView):
    """The project's models; POST a bundle that Save Trained Model downloaded to load it (Load Existing Model)."""

    parser_classes = [MultiPartParser]

    class LoadInput(serializers.Serializer):
        file = serializers.FileField(help_text="The bundle ZIP (with its checkpoint.pt and model.json).")
        name = serializers.CharField(required=False, help_text="The model's name here; the bundle's by default.")

    @extend_schema(responses={200: ModelOutput(many=True)})
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id)
        models = ModelVersion.objects.filter(project=project).select_related("dataset_version")
        return Response(ModelOutput(models, many=True).data)

    @extend_schema(request={"multipart/form-data": LoadInput}, responses={201: ModelOutput}, operation_id="model_load")
    def post(self, request, project_id: int):
        from training.services.loading import model_load

        project = access_project(request.user, project_id, perm="train_project")
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": ["Send the bundle ZIP as the `file` field."]})
        model = model_load(project=project, user=request.user, upload=upload, name=request.data.get("name") or None)
        return Response(ModelOutput(model).data, status=status.HTTP_201_CREATED)


class ModelDetailApi(APIView):
    class InputSerializer(StrictSerializer):
        predict_with = serializers.ChoiceField(choices=Checkpoint.values, required=False)
        thresholds = serializers.DictField(
            required=False,
            allow_null=True,
            help_text='Multi-label and detection: {"best": [one number per label] or null to use the optimised ones, '
            '"last": ...}',
        )
        iou_threshold = serializers.FloatField(
            required=False, min_value=0.05, max_value=0.95, help_text="Detection: when a predicted box is right."
        )

    @extend_schema(responses={200: ModelOutput})
    def get(self, request, model_id: int):
        return Response(ModelOutput(selectors.model_get(user=request.user, model_id=model_id)).data)

    @extend_schema(request=InputSerializer, responses={200: ModelOutput})
    def patch(self, request, model_id: int):
        model = selectors.model_get(user=request.user, model_id=model_id, perm="train_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.model_version_update(model=model, **data.validated_data)
        return Response(ModelOutput(model).data)

    @extend_schema(responses={204: None})
    def delete(self, request, model_id: int):
        services.model_version_delete(
            model=selectors.model_get(user=request.user, model_id=model_id, perm="train_project")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotEvaluated(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "This model was loaded from a bundle, not trained here: it has no evaluation on this project."
    default_code = "not_evaluated"


def _evaluated(model: ModelVersion) -> None:
    """Statistics, galleries and their downloads read the evaluation a training job wrote; a loaded model has none."""
    if model.is_loaded:
        raise NotEvaluated()


class NoImageList(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = (
        "A semantic segmentation model's evaluation is its confusion matrix over pixels (see its statistics); it "
        "lists no predictions per image yet."
    )
    default_code = "no_image_list"


def _listed(model: ModelVersion) -> None:
    """Per-image predictions and their ZIP exist for classifiers and detectors."""
    _evaluated(model)
    if model.task == Task.SEMANTIC:
        raise NoImageList()


def _view_query(request) -> tuple[str, str]:
    checkpoint = request.query_params.get("checkpoint", Checkpoint.BEST)
    split = request.query_params.get("split", Split.VALID)
    if checkpoint not in Checkpoint.values:
        raise ValidationError({"checkpoint": ["Choose best or last."]})
    if split not in Split.values:
        raise ValidationError({"split": ["Choose train or valid."]})
    return checkpoint, split


VIEW_PARAMETERS = [
    OpenApiParameter("checkpoint", str, enum=Checkpoint.values, description="Default best."),
    OpenApiParameter("split", str, enum=Split.values, description="Default valid."),
    OpenApiParameter("thresholds", str, description="Multi-label: one threshold, or one per label, comma-separated."),
]


def _number(request, name: str, low: float, high: float, default: float | None) -> float | None:
    """A number from the query string, within [low, high], or the default when it is not given."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValidationError({name: [f"Give a number from {low:g} to {high:g}."]})
    return value


class ModelStatisticsApi(APIView):
    @extend_schema(parameters=VIEW_PARAMETERS, responses={200: dict})
    def get(self, request, model_id: int):
        model = selectors.model_get(user=request.user, model_id=model_id)
        _evaluated(model)
        checkpoint, split = _view_query(request)
        thresholds = thresholds_parse(request.query_params.get("thresholds"), model)
        if model.task in OBJECT_TASKS:
            stats = statistics.detection_statistics(
                model=model,
                checkpoint=checkpoint,
                split=split,
                thresholds=thresholds,
                iou=_number(request, "iou", 0.05, 0.95, None),
            )
            return Response({**stats, "history": model.job.history, "best_epoch": model.best_epoch})
        if model.task == Task.SEMANTIC:
            stats = statistics.segmentation_statistics(model=model, checkpoint=checkpoint, split=split)
            return Response({**stats, "history": model.job.history, "best_epoch": model.best_epoch})
        stats = statistics.model_statistics(model=model, checkpoint=checkpoint, split=split, thresholds=thresholds)
        return Response({**stats, "history": model.job.history, "best_epoch": model.best_epoch})


class ModelPredictionsApi(APIView):
    @extend_schema(
        parameters=[
            *VIEW_PARAMETERS,
            OpenApiParameter("show", str, enum=["all", "wrong", "right"]),
            OpenApiParameter("advanced", bool, description="Every label, not only the predicted ones."),
            OpenApiParameter("iou", float, description="Detection: the IoU (0.05-0.95) a right box needs."),
        ],
        responses={200: dict},
    )
    def get(self, request, model_id: int):
        model = selectors.model_get(user=request.user, model_id=model_id)
        _listed(model)
        checkpoint, split = _view_query(request)
        rows = statistics.model_predictions(
            model=model,
            checkpoint=checkpoint,
            split=split,
            show=request.query_params.get("show", "all"),
            advanced=request.query_params.get("advanced", "") in {"1", "true", "yes"},
            thresholds=thresholds_parse(request.query_params.get("thresholds"), model),
            iou=_number(request, "iou", 0.05, 0.95, None),
        )
        return Response({"checkpoint": checkpoint, "split": split, "count": len(rows), "images": rows})


def _zip_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/zip")
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response


class ModelPredictionsDownloadApi(APIView):
    @extend_schema(parameters=VIEW_PARAMETERS[:1], responses={(200, "application/zip"): bytes})
    def get(self, request, model_id: int):
        model = selectors.model_get(user=request.user, model_id=model_id, perm="export_project")
        _listed(model)
        checkpoint, _ = _view_query(request)
        content = downloads.predictions_zip(model=model, checkpoint=checkpoint)
        return _zip_response(content, f"{model.name}-{checkpoint}-predictions.zip")


class ModelBundleApi(APIView):
    """The model for offline use. POST builds it as a job (202; 200 once built), GET downloads it (409 until then).
    A bundle is built once per checkpoint and thresholds."""

    class StateOutput(serializers.Serializer):
        status = serializers.ChoiceField(choices=["ready", "building", "missing"])
        download_url = serializers.CharField(required=False)
        job = serializers.IntegerField(required=False)
        progress = serializers.FloatField(required=False)
        phase = serializers.CharField(required=False, allow_blank=True)

    @extend_schema(parameters=VIEW_PARAMETERS[:1], responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request, model_id: int):
        from training import bundles

        model = selectors.model_get(user=request.user, model_id=model_id, perm="export_project")
        checkpoint = _bundle_checkpoint(request, model)
        state = bundles.bundle_state(model=model, checkpoint=checkpoint)
        if state["status"] != "ready":
            detail = f"The {checkpoint} model is not ready to download: POST to this URL to prepare it."
            return Response({"detail": detail, **state}, status=status.HTTP_409_CONFLICT)
        return stored_response(
            bundles.bundle_name(model=model, checkpoint=checkpoint),
            filename=f"{model.name}-{checkpoint}.zip",
            content_type="application/zip",
        )

    @extend_schema(parameters=VIEW_PARAMETERS[:1], request=None, responses={200: StateOutput, 202: StateOutput})
    def post(self, request, model_id: int):
        from training import bundles

        model = selectors.model_get(user=request.user, model_id=model_id, perm="export_project")
        state = bundles.bundle_request(model=model, checkpoint=_bundle_checkpoint(request, model), user=request.user)
        return Response(state, status=status.HTTP_200_OK if state["status"] == "ready" else status.HTTP_202_ACCEPTED)


def _bundle_checkpoint(request, model) -> str:
    checkpoint = request.query_params.get("checkpoint", model.predict_with)
    if checkpoint not in Checkpoint.values:
        raise ValidationError({"checkpoint": ["Choose best or last."]})
    return checkpoint


PREDICT_PARAMETERS = [
    OpenApiParameter(
        "threshold", float, description="Detection, instances: one score threshold (0.01-1) for every label."
    ),
    OpenApiParameter("nms", float, description="Detection, instances: the NMS IoU threshold (0.01-1), default 0.40."),
]
PREDICT_REQUEST = {
    "application/octet-stream": bytes,
    "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}},
}


class PredictApi(APIView):
    """POST an image (raw body, or the `file` field of a form): labels with scores, best first."""

    # No FormParser: `curl --data-binary @image.jpg` without a Content-Type says form-urlencoded, yet sends an image.
    parser_classes = [MultiPartParser, RawImageParser]

    @extend_schema(
        request=PREDICT_REQUEST, parameters=PREDICT_PARAMETERS, responses={200: dict}, operation_id="predict"
    )
    def post(self, request, project_id: int, model_name: str, checkpoint: str | None = None):
        model = selectors.model_by_name(user=request.user, project_id=project_id, name=model_name, perm="train_project")
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": ["Send the image as the request body or as the `file` field."]})
        checkpoint = checkpoint or model.predict_with
        if model.task == Task.DETECTION:
            [boxes] = predictions.boxes_predict(
                model=model,
                checkpoint=checkpoint,
                images=[predictions.upload_read(upload)],
                threshold=_number(request, "threshold", 0.01, 1, None),
                nms=_number(request, "nms", 0.01, 1, predictions.NMS_DEFAULT),
            )
            answer = {"model": model.name, "checkpoint": checkpoint, "task": model.task}
            if model.segmentation_head:  # its boxes, and apart from them its segmentation head's masks
                answer["masks"] = [item for item in boxes if "rle" in item]
                boxes = [item for item in boxes if "rle" not in item]
            return Response({**answer, "predictions": boxes})
        if model.task == Task.INSTANCE:
            [found] = predictions.instances_predict(
                model=model,
                checkpoint=checkpoint,
                images=[predictions.upload_read(upload)],
                threshold=_number(request, "threshold", 0.01, 1, None),
                nms=_number(request, "nms", 0.01, 1, predictions.NMS_DEFAULT),
            )
            return Response({"model": model.name, "checkpoint": checkpoint, "task": model.task, "predictions": found})
        if model.task == Task.SEMANTIC:
            [masks] = predictions.masks_predict(
                model=model, checkpoint=checkpoint, images=[predictions.upload_read(upload)]
            )
            return Response({"model": model.name, "checkpoint": checkpoint, "task": model.task, "predictions": masks})
        [result] = predictions.images_predict(
            model=model, checkpoint=checkpoint, images=[predictions.upload_read(upload)]
        )
        return Response({"model": model.name, "checkpoint": checkpoint, "predictions": result})


class PredictCheckpointApi(PredictApi):
    """The same, with the checkpoint named in the URL: `.../last` or `.../best`."""

    @extend_schema(
        request=PREDICT_REQUEST,
        parameters=PREDICT_PARAMETERS,
        responses={200: dict},
        operation_id="predict_with_checkpoint",
    )
    def post(self, request, project_id: int, model_name: str, checkpoint: str | None = None):
        return super().post(request, project_id, model_name, checkpoint)
