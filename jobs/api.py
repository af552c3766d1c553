"""Jobs over REST: a project's jobs of every kind, one job, and Cancel."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import selectors, services


class ProjectJobsApi(APIView):
    """Every job of the project, of every kind, newest first (the latest 200)."""

    @extend_schema(responses={200: dict})
    def get(self, request, project_id: int):
        _, jobs = selectors.jobs_for_project(user=request.user, project_id=project_id)
        return Response([selectors.job_out(job) for job in jobs])


class JobApi(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, job_id: int):
        return Response(selectors.job_out(selectors.job_get(user=request.user, job_id=job_id)))


class JobCancelApi(APIView):
    """Cancel a job: a queued one at once, a running one at its next step. Needs the right that starts its kind."""

    @extend_schema(request=None, responses={200: dict, 400: dict})
    def post(self, request, job_id: int):
        job = selectors.job_for_cancel(user=request.user, job_id=job_id)
        return Response(selectors.job_out(services.job_cancel(job=job)))
