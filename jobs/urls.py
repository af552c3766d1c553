from django.urls import path

from jobs import views

app_name = "jobs"

urlpatterns = [
    path("projects/<int:project_id>/jobs/", views.jobs_page, name="jobs"),
    path("projects/<int:project_id>/jobs/<int:job_id>/cancel/", views.job_cancel, name="cancel"),
]
