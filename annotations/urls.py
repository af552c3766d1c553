from django.urls import path

from annotations import views

app_name = "annotations"
urlpatterns = [
    path("labeling-time/", views.labeling_time, name="labeling-time"),
    path("projects/<int:project_id>/images/<int:image_id>/label/", views.labeler, name="labeler"),
    path("projects/<int:project_id>/images/<int:image_id>/label/strip/", views.labeler_strip, name="labeler-strip"),
    path("projects/<int:project_id>/transfer/", views.transfers_page, name="transfers"),
    path("projects/<int:project_id>/transfer/start/", views.transfer_start, name="transfer-start"),
    path("projects/<int:project_id>/transfer/jobs/<int:job_id>/", views.transfer_job, name="transfer-job"),
]
