"""Model-assisted labeling through the API: an image's predictions (list, predict now, accept, clear) and bulk
pre-labeling. Running a model needs the train permission; accepting and clearing need the annotate permission, or
the review permission ("review and accept labels and predictions": a reviewer accepts what a model suggests without
drawing)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.api import stale_response
from annotations.services.documents import StaleRevision, document_read
from config.api import StrictSerializer
from projects.permissions import access_image, access_project
from training import selectors
from training.models import Checkpoint, Prediction
from training.predictions import NMS_DEFAULT
from training.services import assisting


class PredictionOutput(serializers.ModelSerializer):
    label_name = serializers.CharField(source="label.name")
    model = serializers.IntegerField(source="model_version_id")
    model_name = serializers.CharField(source="model_version.name")

    class Meta:
        model = Prediction
        fields = ["id", "kind", "label", "label_name", "geometry", "score", "model", "model_name", "checkpoint"]


ACCEPTERS = ("annotate_project", "review_project")  # who may accept or clear a model's suggestions
MODEL_PARAMETER = OpenApiParameter("model", int, description="Only this model's predictions.")


def _model_id(request) -> int | None:
    raw = request.query_params.get("model", "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ValidationError({"model": ["Give a model id."]})
    return int(raw)


def _listed(image, model_id: int | None = None) -> Response:
    rows = assisting.image_predictions(image=image, model_id=model_id)
    return Response({"image": image.pk, "predictions": PredictionOutput(rows, many=True).data})


class ImagePredictionsApi(APIView):
    """An image's predictions, best first; POST runs a model on it now; DELETE clears them."""

    class PredictInput(StrictSerializer):
        model = serializers.IntegerField()
        checkpoint = serializers.ChoiceField(choices=Checkpoint.choices, required=False)
        nms = serializers.FloatField(required=False, min_value=0.01, max_value=1)

    @extend_schema(parameters=[MODEL_PARAMETER], responses={200: dict}, operation_id="image_predictions_list")
    def get(self, request, image_id: int):
        image = access_image(request.user, image_id)
        return _listed(image, _model_id(request))

    @extend_schema(request=PredictInput, responses={200: dict}, operation_id="image_predict")
    def post(self, request, image_id: int):
        image = access_image(request.user, image_id, "train_project")
        data = self.PredictInput(data=request.data)
        data.is_valid(raise_exception=True)
        model = selectors.model_get(
            user=request.user, model_id=data.validated_data["model"], perm="train_project", project_id=image.project_id
        )
        assisting.image_predict(
            model=model,
            image=image,
            checkpoint=data.validated_data.get("checkpoint"),
            nms=data.validated_data.get("nms", NMS_DEFAULT),
        )
        return _listed(image)

    @extend_schema(parameters=[MODEL_PARAMETER], responses={200: dict}, operation_id="image_predictions_clear")
    def delete(self, request, image_id: int):
        image = access_image(request.user, image_id, ACCEPTERS)
        cleared = assisting.predictions_clear(image=image, model_id=_model_id(request))
        return Response({"image": image.pk, "cleared": cleared})


class ImagePredictionsAcceptApi(APIView):
    """Accept predictions as annotations: `ids`, or every one scoring at least `threshold` (of `model`, if given),
    against the revision the image was read at; answers the counts and the saved document. A stale revision is a
    409 with the current document."""

    class AcceptInput(StrictSerializer):
        revision = serializers.IntegerField()
        ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=10_000)
        threshold = serializers.FloatField(required=False, min_value=0, max_value=1)
        model = serializers.IntegerField(required=False)

    @extend_schema(request=AcceptInput, responses={200: dict, 409: dict}, operation_id="image_predictions_accept")
    def post(self, request, image_id: int):
        image = access_image(request.user, image_id, ACCEPTERS)
        data = self.AcceptInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            accepted = assisting.predictions_accept(
                image=image,
                user=request.user,
                revision=values["revision"],
                ids=values.get("ids"),
                threshold=values.get("threshold"),
                model_id=values.get("model"),
            )
        except StaleRevision as stale:
            return stale_response(values["revision"], stale, outcome="Nothing was accepted.")
        return Response({"image": image.pk, **accepted, "document": document_read(image=image)})


class ProjectPredictionsAcceptApi(APIView):
    """Accept in bulk: on each of `images`, every prediction scoring at least `threshold` becomes an annotation,
    at the image's current revision."""

    class AcceptManyInput(StrictSerializer):
        images = serializers.ListField(child=serializers.IntegerField(), max_length=assisting.ACCEPT_MANY_MAX_IMAGES)
        threshold = serializers.FloatField(min_value=0, max_value=1)

    @extend_schema(request=AcceptManyInput, responses={200: dict}, operation_id="predictions_accept_many")
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, ACCEPTERS)
        data = self.AcceptManyInput(data=request.data)
        data.is_valid(raise_exception=True)
        done = assisting.predictions_accept_many(
            project=project,
            user=request.user,
            image_ids=data.validated_data["images"],
            threshold=data.validated_data["threshold"],
        )
        return Response(done)


class PrelabelApi(APIView):
    """Pre-label images with a model, as a job: `images` (ids), or `filter` (the grid's filter parameters)."""

    class PrelabelInput(StrictSerializer):
        model = serializers.IntegerField()
        checkpoint = serializers.ChoiceField(choices=Checkpoint.choices, required=False)
        images = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=10_000)
        filter = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)

    @extend_schema(request=PrelabelInput, responses={202: dict}, operation_id="prelabel")
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, "train_project")
        data = self.PrelabelInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        model = selectors.model_get(
            user=request.user, model_id=values["model"], perm="train_project", project_id=project.pk
        )
        job = assisting.prelabel_start(
            model=model,
            user=request.user,
            image_ids=values.get("images"),
            filters=values.get("filter"),
            checkpoint=values.get("checkpoint"),
        )
        body = {"job": job.pk, "url": f"/api/jobs/{job.pk}/", "images": len(job.payload["image_ids"])}
        return Response(body, status=status.HTTP_202_ACCEPTED)
