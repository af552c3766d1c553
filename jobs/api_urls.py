from django.urls import path

from jobs import api

urlpatterns = [
    path("projects/<int:project_id>/jobs/", api.ProjectJobsApi.as_view(), name="api-project-jobs"),
    path("jobs/<int:job_id>/", api.JobApi.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel/", api.JobCancelApi.as_view(), name="api-job-cancel"),
]
