from django.urls import path, re_path

from training import api, api_assist

urlpatterns = [
    path(
        "projects/<int:project_id>/dataset-versions/", api.DatasetVersionListApi.as_view(), name="api-dataset-versions"
    ),
    path("dataset-versions/<int:version_id>/", api.DatasetVersionDetailApi.as_view(), name="api-dataset-version"),
    path("projects/<int:project_id>/training-jobs/", api.TrainingJobListApi.as_view(), name="api-training-jobs"),
    path("training-jobs/<int:job_id>/", api.TrainingJobDetailApi.as_view(), name="api-training-job"),
    path("training-jobs/<int:job_id>/cancel/", api.TrainingJobCancelApi.as_view(), name="api-training-job-cancel"),
    path("projects/<int:project_id>/models/", api.ModelListApi.as_view(), name="api-models"),
    path("models/<int:model_id>/", api.ModelDetailApi.as_view(), name="api-model"),
    path("models/<int:model_id>/statistics/", api.ModelStatisticsApi.as_view(), name="api-model-statistics"),
    path("models/<int:model_id>/predictions/", api.ModelPredictionsApi.as_view(), name="api-model-predictions"),
    path(
        "models/<int:model_id>/predictions/download/",
        api.ModelPredictionsDownloadApi.as_view(),
        name="api-model-predictions-download",
    ),
    path("models/<int:model_id>/bundle/", api.ModelBundleApi.as_view(), name="api-model-bundle"),
    path("predict/<int:project_id>/<str:model_name>/", api.PredictApi.as_view(), name="api-predict"),
    path("images/<int:image_id>/predictions/", api_assist.ImagePredictionsApi.as_view(), name="api-image-predictions"),
    path(
        "images/<int:image_id>/predictions/accept/",
        api_assist.ImagePredictionsAcceptApi.as_view(),
        name="api-image-predictions-accept",
    ),
    path("projects/<int:project_id>/prelabel/", api_assist.PrelabelApi.as_view(), name="api-prelabel"),
    path(
        "projects/<int:project_id>/predictions/accept/",
        api_assist.ProjectPredictionsAcceptApi.as_view(),
        name="api-project-predictions-accept",
    ),
    # Spec 000: `.../{model_name}/last` predicts with the last checkpoint (and `/best` with the best one).
    re_path(
        r"^predict/(?P<project_id>[0-9]+)/(?P<model_name>[^/]+)/(?P<checkpoint>best|last)/?$",
        api.PredictCheckpointApi.as_view(),
        name="api-predict-checkpoint",
    ),
]
