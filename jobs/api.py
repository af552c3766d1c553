"""Jobs over REST: a project's jobs of every kind, one job, and Cancel."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors, services
from jobs.models import Job


class JobRowOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="training, export, import, pair-search, embeddings, sam-embeddings, ...")
    label = serializers.CharField(help_text="The kind, for a person.")
    project = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Job.Status.choices)
    progress = serializers.FloatField(min_value=0, max_value=1)
    phase = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    cancel_requested = serializers.BooleanField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.CharField(allow_null=True, help_text="The kind's own page for this job, if it has one.")


class ProjectJobsApi(APIView):
    """Every job of the project, of every kind, newest first (the latest 200)."""

    @extend_schema(responses={200: JobRowOutput(many=True)})
    def get(self, request, project_id: int):
        _, jobs = selectors.jobs_for_project(user=request.user, project_id=project_id)
        return Response([selectors.job_out(job) for job in jobs])


class JobApi(APIView):
    @extend_schema(responses={200: JobRowOutput})
    def get(self, request, job_id: int):
        return Response(selectors.job_out(selectors.job_get(user=request.user, job_id=job_id)))


class JobCancelApi(APIView):
    """Cancel a job: a queued one at once, a running one at its next step. Needs the right that starts its kind."""

    @extend_schema(request=None, responses={200: JobRowOutput})
    def post(self, request, job_id: int):
        job = selectors.job_for_cancel(user=request.user, job_id=job_id)
        return Response(selectors.job_out(services.job_cancel(job=job)))
