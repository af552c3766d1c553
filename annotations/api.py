"""Annotations over REST: an image's whole document, read and saved against its revision."""

import json
import mimetypes

from django.http import FileResponse, Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import operations, selectors, services, smart
from annotations.formats import FORMATS
from annotations.formats.base import FormatError
from annotations.models import ReplacedDocument
from annotations.services import documents, history, transfers
from config.api import PlainListField, StrictSerializer
from projects.files import stored_response
from projects.permissions import access_image, access_project


def stale_response(sent: int, stale: documents.StaleRevision, *, outcome: str = "") -> Response:
    """409 for a save (or an accept) based on an old revision, with the document as it is now."""
    detail = f"Someone saved this image since revision {sent}; it is now at revision {stale.current['revision']}."
    return Response(
        {"detail": f"{detail} {outcome}".strip(), "current": stale.current}, status=status.HTTP_409_CONFLICT
    )


def _document_response(image_id: int) -> HttpResponse:
    return HttpResponse(documents.document_json(image_id=image_id), content_type="application/json")


class ImageAnnotationsApi(APIView):
    class InputSerializer(StrictSerializer):
        revision = serializers.IntegerField(min_value=0)
        classifications = PlainListField(required=False, default=list)
        shapes = PlainListField(required=False, default=list)
        image = serializers.IntegerField(
            required=False, help_text="Ignored; allowed so a read document can be sent back."
        )

    @extend_schema(responses={200: dict})
    def get(self, request, image_id: int):
        return _document_response(access_image(request.user, image_id).pk)

    @extend_schema(request=InputSerializer, responses={200: dict, 409: dict})
    def put(self, request, image_id: int):
        image = access_image(request.user, image_id, "annotate_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            documents.document_save(
                image=image,
                user=request.user,
                revision=data.validated_data["revision"],
                classifications=data.validated_data["classifications"],
                shapes=data.validated_data["shapes"],
            )
        except documents.StaleRevision as stale:
            return stale_response(data.validated_data["revision"], stale)
        return _document_response(image.pk)


class RasterizeApi(APIView):
    """Box or polygon -> mask. Keypoints and attributes do not survive (spec 000, "Rasterization")."""

    class InputSerializer(StrictSerializer):
        kind = serializers.ChoiceField(choices=["box", "polygon"])
        geometry = serializers.JSONField()

    @extend_schema(request=InputSerializer, responses={200: dict})
    def post(self, request, image_id: int):
        image = access_image(request.user, image_id, "annotate_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(operations.shape_rasterize(image=image, **data.validated_data))


class PolygonizeApi(APIView):
    """Mask -> polygon parts with holes; `simplify` is the allowed deviation in pixels (0 keeps every step)."""

    class InputSerializer(StrictSerializer):
        geometry = serializers.JSONField()
        simplify = serializers.FloatField(min_value=0, max_value=50, required=False, default=1.0)

    @extend_schema(request=InputSerializer, responses={200: dict})
    def post(self, request, image_id: int):
        image = access_image(request.user, image_id, "annotate_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(operations.shape_polygonize(image=image, **data.validated_data))


class SmartApi(APIView):
    """The smart labeling tool (spec 000): a work area and marks in, a mask out. Nothing is saved here;
    the labeler saves the mask (source `smart`) when the person presses Done.

    `box` is {x, y, width, height} in image pixels (the whole image when left out); `foreground` and
    `background` are lists of clicks `[x, y]` or strokes `[[x, y], ...]`. The reply's `rle` is COCO RLE
    the size of the image, ready to be a mask shape's `geometry.rle`."""

    class InputSerializer(StrictSerializer):
        box = serializers.JSONField(required=False, default=None)
        foreground = PlainListField(required=False, default=list)
        background = PlainListField(required=False, default=list)

    @extend_schema(responses={200: dict})
    def get(self, request, image_id: int):
        """Which engine would answer, and whether this image's SAM embedding is ready."""
        image = access_image(request.user, image_id, "annotate_project")
        backend = smart.smart_backend()
        return Response({**backend.as_dict(), "embedding_cached": smart.sam_embedding_ready(backend, image)})

    @extend_schema(request=InputSerializer, responses={200: dict, 202: dict, 400: dict})
    def post(self, request, image_id: int):
        """The mask; with SAM, 202 and the job to wait for while a worker computes this image's embedding."""
        image = access_image(request.user, image_id, "annotate_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            return Response(smart.smart_segment(image=image, **data.validated_data))
        except smart.PromptError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except smart.EmbeddingNotReady:
            job = smart.sam_prefetch_schedule(
                backend=smart.smart_backend(), project=image.project, user=request.user, image_ids=[image.pk]
            )
            return Response(_preparing(job), status=status.HTTP_202_ACCEPTED)


def _preparing(job) -> dict:
    return {
        "preparing": job is not None,
        "job": job.pk if job is not None else None,
        "job_url": f"/api/jobs/{job.pk}/" if job is not None else None,
        "detail": "Preparing the smart tool: a worker is computing this image's SAM embedding." if job else "",
    }


class SmartPrepareApi(APIView):
    """Ask a worker for SAM embeddings of this image and the ones after it (the labeler calls this as it opens)."""

    class InputSerializer(StrictSerializer):
        ahead = serializers.ListField(
            child=serializers.IntegerField(),
            required=False,
            default=list,
            max_length=20,
            help_text="Images of the same project the person will likely open next.",
        )

    @extend_schema(request=InputSerializer, responses={200: dict})
    def post(self, request, image_id: int):
        image = access_image(request.user, image_id, "annotate_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        backend = smart.smart_backend()
        job = smart.sam_prefetch_schedule(
            backend=backend,
            project=image.project,
            user=request.user,
            image_ids=[image.pk, *data.validated_data["ahead"]],
        )
        return Response(
            {"backend": backend.name, "ready": smart.sam_embedding_ready(backend, image), **_preparing(job)}
        )


# Replacing many images' annotations at once (other people's too) needs more than annotating.
REPLACE = "replace_annotations_project"


class BulkAnnotationsApi(APIView):
    """Annotations of many images in one request and one transaction (pre-labeling scripts)."""

    class InputSerializer(StrictSerializer):
        mode = serializers.ChoiceField(choices=["replace", "append"], default="append")
        images = PlainListField()

        def validate_images(self, images: list) -> list:
            if not images or len(images) > 10_000:
                raise serializers.ValidationError("Send from 1 to 10,000 images per request.")
            return images

    @extend_schema(request=InputSerializer, responses={200: dict, 409: dict})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, "annotate_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["mode"] == "replace":
            access_project(request.user, project_id, REPLACE)
        try:
            saved = documents.documents_save_many(
                project=project,
                user=request.user,
                items=data.validated_data["images"],
                mode=data.validated_data["mode"],
            )
        except documents.StaleRevisions as stale:
            body = {
                "detail": f"{len(stale.current)} image(s) were saved since the revisions you sent; nothing was saved.",
                "stale": [{"image": pk, "revision": revision} for pk, revision in sorted(stale.current.items())],
            }
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response({"saved": saved})


class ImageSeenApi(APIView):
    """The labeler says the requesting user has opened this image (status 'seen' unless already labeled)."""

    @extend_schema(request=None, responses={204: None})
    def post(self, request, image_id: int):
        services.image_seen(image=access_image(request.user, image_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HeartbeatApi(APIView):
    """The labeler's "still here" every few seconds; the server measures the active time."""

    class OutputSerializer(serializers.Serializer):
        active_seconds = serializers.FloatField(help_text="This user's active seconds on this image today.")

    @extend_schema(request=None, responses={200: OutputSerializer})
    def post(self, request, image_id: int):
        image = access_image(request.user, image_id, "annotate_project")
        return Response({"active_seconds": round(services.labeling_heartbeat(image=image, user=request.user), 1)})


class LabelingTimeApi(APIView):
    """Spec 000's two tables; `?download=per_day` or `?download=totals` gives one of them as CSV."""

    class QuerySerializer(serializers.Serializer):
        start = serializers.DateField(required=False)
        end = serializers.DateField(required=False)
        user = serializers.IntegerField(required=False)
        project = serializers.IntegerField(required=False)
        download = serializers.ChoiceField(choices=["per_day", "totals"], required=False)

    @extend_schema(
        parameters=[QuerySerializer],
        responses={(200, "application/json"): dict, (200, "text/csv"): OpenApiTypes.BINARY},
    )
    def get(self, request):
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        tables = selectors.labeling_time(
            request.user,
            selectors.TimeFilter(
                start=params.get("start"),
                end=params.get("end"),
                user_id=params.get("user"),
                project_id=params.get("project"),
            ),
        )
        if "download" in params:
            return selectors.labeling_time_csv(
                tables[params["download"]], filename=f"labeling-time-{params['download']}"
            )
        return Response(tables)


def _job_body(job) -> dict:
    return {
        "id": job.pk,
        "project": job.project_id,
        "direction": job.direction,
        "format": job.format,
        "mode": job.mode,
        "status": job.status,
        "progress": job.progress,
        "summary": job.summary,
        "error": job.error,
        "download_url": f"/api/transfers/{job.pk}/file/"
        if job.direction == "export" and job.status == "finished"
        else None,
        "created_at": job.created_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


class ExportApi(APIView):
    """GET: the file at once, for a project of up to 2,000 images. POST: an export job (202), for any project;
    its file is downloaded from the job when it has finished. A GET never starts background work."""

    class QuerySerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=list(FORMATS))
        include_images = serializers.BooleanField(
            required=False, default=False, help_text="COCO and YOLO: the images too."
        )

    class InputSerializer(StrictSerializer):
        format = serializers.ChoiceField(choices=list(FORMATS))
        include_images = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        parameters=[QuerySerializer],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "application/zip"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, "export_project")
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        format_key, include_images = query.validated_data["format"], query.validated_data["include_images"]
        if project.images.count() > transfers.SYNC_EXPORT_IMAGES:
            return Response(
                {
                    "detail": f"The project has more than {transfers.SYNC_EXPORT_IMAGES:,} images: export it in the "
                    f"background with POST /api/projects/{project.pk}/export/, then download the job's file."
                },
                status=status.HTTP_409_CONFLICT,
            )
        try:
            exported = transfers.project_export(project=project, format_key=format_key, include_images=include_images)
        except FormatError as exc:
            return Response({"format": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
        # Streamed from the export's (temporary) file; FileResponse closes it when sent.
        response = FileResponse(
            exported.file, as_attachment=True, filename=exported.filename, content_type=exported.media_type
        )
        response["X-Sightline-Summary"] = json.dumps(exported.summary.as_dict(), separators=(",", ":"))
        return response

    @extend_schema(request=InputSerializer, responses={202: dict})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, "export_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = transfers.transfer_start(
            project=project,
            user=request.user,
            direction="export",
            format_key=data.validated_data["format"],
            include_images=data.validated_data["include_images"],
        )
        return Response(_job_body(job), status=status.HTTP_202_ACCEPTED)


class ImportApi(APIView):
    """Small files are imported at once (200 with the summary); larger ones, or ?background=1, as a job (202)."""

    parser_classes = [MultiPartParser]

    class InputSerializer(StrictSerializer):
        format = serializers.ChoiceField(choices=list(FORMATS))
        file = serializers.FileField()
        mode = serializers.ChoiceField(choices=["append", "replace"], default="append")
        background = serializers.BooleanField(required=False, default=False)

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={200: dict, 202: dict})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, "annotate_project")
        data = self.InputSerializer(data={**{k: request.POST.get(k) for k in request.POST}, **request.FILES.dict()})
        data.is_valid(raise_exception=True)
        upload, format_key, mode = (data.validated_data[k] for k in ("file", "format", "mode"))
        if mode == "replace":
            access_project(request.user, project_id, REPLACE)
        if data.validated_data["background"] or upload.size > transfers.SYNC_IMPORT_BYTES:
            job = transfers.transfer_start(
                project=project, user=request.user, direction="import", format_key=format_key, upload=upload, mode=mode
            )
            return Response(_job_body(job), status=status.HTTP_202_ACCEPTED)
        summary = transfers.project_import(
            project=project, user=request.user, format_key=format_key, content=upload.read(), mode=mode
        )
        return Response({"summary": summary.as_dict()})


class ImportPreviewApi(APIView):
    """What a replace would overwrite: the images of the project the file names, and their annotations now."""

    parser_classes = [MultiPartParser]

    class InputSerializer(StrictSerializer):
        format = serializers.ChoiceField(choices=list(FORMATS))
        file = serializers.FileField()

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={200: dict})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, REPLACE)
        data = self.InputSerializer(data={**{k: request.POST.get(k) for k in request.POST}, **request.FILES.dict()})
        data.is_valid(raise_exception=True)
        preview = transfers.import_preview(
            project=project, format_key=data.validated_data["format"], upload=data.validated_data["file"]
        )
        return Response(preview)


class TransferApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, job_id: int):
        return Response(_job_body(_job(request, job_id)))


class TransferFileApi(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, job_id: int):
        job = _job(request, job_id)
        if job.direction != "export" or job.status != "finished":
            raise Http404("This job has no file to download (yet).")
        media_type = mimetypes.guess_type(job.filename)[0] or "application/octet-stream"
        return stored_response(job.file.name, filename=job.filename, content_type=media_type, attachment=True)


def _job(request, job_id: int):
    from annotations.models import TransferJob

    job = TransferJob.objects.filter(pk=job_id).first()
    if job is None:
        raise Http404("No such job.")
    try:
        access_project(request.user, job.project_id, f"{'export' if job.direction == 'export' else 'annotate'}_project")
    except Http404:
        raise Http404("No such job.") from None
    return job


class HistoryApi(APIView):
    """What bulk replaces overwrote on this image, newest first; each entry can be restored."""

    @extend_schema(responses={200: dict})
    def get(self, request, image_id: int):
        image = access_image(request.user, image_id)
        entries = ReplacedDocument.objects.filter(image=image).select_related("replaced_by")
        return Response({"history": [_history_body(entry) for entry in entries]})


class HistoryRestoreApi(APIView):
    """Put what a replace overwrote back on the image, as a new revision (today's version goes to the history)."""

    @extend_schema(request=None, responses={200: dict})
    def post(self, request, image_id: int, entry_id: int):
        image = access_image(request.user, image_id, "annotate_project")
        entry = ReplacedDocument.objects.filter(image=image, pk=entry_id).first()
        if entry is None:
            raise Http404("No such history entry for this image.")
        history.history_restore(entry=entry, user=request.user)
        return _document_response(image.pk)


def _history_body(entry: ReplacedDocument) -> dict:
    return {
        "id": entry.pk,
        "revision": entry.revision,
        "reason": entry.reason,
        "replaced_by": entry.replaced_by.username if entry.replaced_by else None,
        "replaced_at": entry.replaced_at.isoformat(),
        "shapes": len(entry.shapes),
        "classifications": len(entry.classifications),
    }
