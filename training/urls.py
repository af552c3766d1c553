from django.urls import path

from training import views

app_name = "training"
urlpatterns = [
    path("projects/<int:project_id>/models/", views.models_page, name="models"),
    path("projects/<int:project_id>/models/load/", views.model_load, name="model-load"),
    path("projects/<int:project_id>/models/training-images/", views.ml_training_images, name="ml-training-images"),
    path("projects/<int:project_id>/models/<int:model_id>/", views.model_page, name="model"),
    path("projects/<int:project_id>/models/<int:model_id>/predictions/", views.predictions_page, name="predictions"),
    path("projects/<int:project_id>/models/<int:model_id>/gallery/", views.gallery_page, name="gallery"),
    path(
        "projects/<int:project_id>/models/<int:model_id>/predict-with/",
        views.model_predict_with,
        name="model-predict-with",
    ),
    path(
        "projects/<int:project_id>/models/<int:model_id>/thresholds/", views.model_thresholds, name="model-thresholds"
    ),
    path("projects/<int:project_id>/models/<int:model_id>/delete/", views.model_delete, name="model-delete"),
    path("projects/<int:project_id>/models/<int:model_id>/bundle/", views.model_bundle, name="model-bundle"),
    path("projects/<int:project_id>/training/<int:job_id>/", views.job_page, name="job"),
    path("projects/<int:project_id>/training/<int:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("projects/<int:project_id>/predict/", views.predict_page, name="predict"),
]
