"""Similarity over REST: 1vN by an image of the project or an uploaded file, NvN pairs, indexing status."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.parsers import RawImageParser
from projects.models import Project
from projects.permissions import access_project
from projects.selectors import image_in_project
from similarity import searches, selectors
from training.predictions import image_check, upload_read


class QueryInput(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=selectors.MAX_LIMIT, default=selectors.DEFAULT_LIMIT)
    threshold = serializers.FloatField(min_value=-1, max_value=1, default=selectors.DEFAULT_THRESHOLD)
    labels = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Label names, comma-separated."
    )
    op = serializers.ChoiceField(
        choices=["and", "or"], default="or", help_text="Images with all (and) or any (or) label."
    )


class PairsInput(QueryInput):
    limit = serializers.IntegerField(min_value=1, max_value=selectors.MAX_PAIRS, default=100)
    threshold = serializers.FloatField(min_value=-1, max_value=1, default=selectors.DEFAULT_PAIR_THRESHOLD)


QUERY_PARAMETERS = [
    OpenApiParameter("limit", int, description="At most this many results (default 20)."),
    OpenApiParameter("threshold", float, description="Lowest cosine similarity shown (default 0.5)."),
    OpenApiParameter("labels", str, description="Only images with these classification labels, comma-separated."),
    OpenApiParameter("op", str, enum=["and", "or"], description="All of the labels, or any (default)."),
]


class SimilarApi(APIView):
    """1vN: the images most like one image of the project (GET ?image=) or like an uploaded file (POST)."""

    parser_classes = [MultiPartParser, RawImageParser]

    def _query(self, request) -> dict:
        data = QueryInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        return data.validated_data

    @extend_schema(parameters=[OpenApiParameter("image", int, required=True), *QUERY_PARAMETERS], responses={200: dict})
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id)
        image = image_in_project(project, request.query_params.get("image", ""))
        if image is None:
            raise ValidationError({"image": ["Give the id of an image of this project."]})
        return Response(searches.similar_to_image(project=project, image=image, **self._query(request)))

    @extend_schema(
        parameters=QUERY_PARAMETERS,
        request={
            "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        responses={200: dict},
    )
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id)
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": ["Send the image as the request body or as the `file` field."]})
        data = upload_read(upload)
        image_check(data)
        return Response(searches.similar_to_bytes(project=project, data=data, **self._query(request)))


class SimilarPairsApi(APIView):
    """NvN: the most similar pairs of the project's images.

    GET answers at once for a project of up to SIGHTLINE_SYNC_PAIR_IMAGES indexed images, and never
    starts work; a larger project answers 409. POST starts a background search (or joins the live one
    with the same parameters) and answers 202 with the job to poll; it needs the right to annotate.
    """

    @extend_schema(parameters=QUERY_PARAMETERS, responses={200: dict, 409: dict})
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id)
        parameters = _pair_parameters(request.query_params)
        pairs = searches.pairs_now(project=project, parameters=parameters)
        if pairs is None:
            return Response(
                {
                    "detail": "This project is too large to compare every image now; start a background "
                    "search with POST to this URL (the same parameters, in the body)."
                },
                status=status.HTTP_409_CONFLICT,
            )
        return Response({"status": "finished", "parameters": parameters, "pairs": pairs})

    @extend_schema(request=PairsInput, responses={202: dict})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, searches.PAIR_SEARCH_PERMISSION)
        parameters = _pair_parameters(request.data)
        search = searches.pair_search_begin(project=project, user=request.user, parameters=parameters)
        return Response(searches.pair_search_out(search), status=status.HTTP_202_ACCEPTED)


def _pair_parameters(data) -> dict:
    parsed = PairsInput(data=data)
    parsed.is_valid(raise_exception=True)
    return {**parsed.validated_data, "labels": searches.label_names(parsed.validated_data["labels"])}


class PairSearchApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, search_id: int):
        return Response(searches.pair_search_out(searches.pair_search_get(user=request.user, search_id=search_id)))


class IndexStatusApi(APIView):
    """How many of the project's images are in the similarity index (they are added in the background)."""

    @extend_schema(responses={200: dict})
    def get(self, request, project_id: int):
        project: Project = access_project(request.user, project_id)
        return Response(searches.index_status(project=project))
