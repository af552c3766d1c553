"""The SeeMe.ai SDK's routes (0.13.7), under /api/v1/: never a trailing slash, as the SDK builds its URLs by
concatenation and a redirect would turn its POST into a GET."""

from django.urls import path

from projects.seeme import accounts, views
from projects.seeme.protocol import endpoint
from training import seeme as training

D = "datasets/<str:dataset_id>"
M = "models/<str:model_id>"
MV = f"{M}/versions/<str:version_id>"
V = f"{D}/versions/<str:version_id>"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

urlpatterns = [
    path("register", endpoint({"POST": accounts.register}, public=True), name="seeme-register"),
    path("login", endpoint({"POST": accounts.login}, public=True), name="seeme-login"),
    path("applications", endpoint({"GET": accounts.applications}), name="seeme-applications"),
    path(
        "trainingrequests",
        endpoint({"GET": training.training_requests, "POST": training.training_request_create}),
        name="seeme-training-requests",
    ),
    path(
        "trainingrequests/<str:request_id>",
        endpoint(
            {
                "GET": training.training_request_get,
                "PUT": training.training_request_update,
                "DELETE": training.training_request_delete,
            }
        ),
        name="seeme-training-request",
    ),
    path("models", endpoint({"GET": training.models_list, "POST": training.model_create}), name="seeme-models"),
    path(
        f"{M}",
        endpoint({"GET": training.model_get, "PUT": training.model_update, "DELETE": training.model_delete}),
        name="seeme-model",
    ),
    path(f"{M}/upload", endpoint({"POST": training.model_upload}), name="seeme-model-upload"),
    path(
        f"{M}/versions",
        endpoint({"GET": training.model_versions, "POST": training.model_version_create}),
        name="seeme-model-versions",
    ),
    path(
        f"{MV}",
        endpoint(
            {
                "GET": training.model_version_get,
                "PUT": training.model_version_update,
                "DELETE": training.model_version_delete,
            }
        ),
        name="seeme-model-version",
    ),
    path(f"{MV}/upload", endpoint({"POST": training.model_version_upload}), name="seeme-model-version-upload"),
    path(f"{M}/download/<str:asset>", endpoint({"GET": training.model_download}), name="seeme-model-download"),
    path(
        f"{MV}/download/<str:asset>",
        endpoint({"GET": training.model_download}),
        name="seeme-model-version-download",
    ),
    path(
        "inferences/<str:target>",
        endpoint({"POST": training.inference_create, "GET": training.inference_get, "PUT": training.inference_update}),
        name="seeme-inference",
    ),
    path(
        "inferences/<str:target>/versions/<str:version_id>",
        endpoint({"POST": training.inference_create}),
        name="seeme-version-inference",
    ),
    path("datasets", endpoint({"GET": views.datasets_list, "POST": views.dataset_create}), name="seeme-datasets"),
    path(
        D,
        endpoint({"GET": views.dataset_get, "PUT": views.dataset_update, "DELETE": views.dataset_delete}),
        name="seeme-dataset",
    ),
    path(f"{D}/upload", endpoint({"POST": views.dataset_logo_upload}), name="seeme-dataset-upload"),
    path(f"{D}/logo", endpoint({"GET": views.dataset_logo}), name="seeme-dataset-logo"),
    path(f"{D}/versions", endpoint({"GET": views.versions_list, "POST": views.version_create}), name="seeme-versions"),
    path(
        V,
        endpoint({"GET": views.version_get, "PUT": views.version_update, "DELETE": views.version_delete}),
        name="seeme-version",
    ),
    path(f"{V}/download", endpoint({"GET": views.version_download}), name="seeme-version-download"),
    path(
        f"{V}/download/<str:split_id>", endpoint({"GET": views.version_download}), name="seeme-version-split-download"
    ),
    path(f"{V}/upload", endpoint({"POST": views.version_upload}), name="seeme-version-upload"),
    path(f"{V}/labels", endpoint({"GET": views.labels_list, "POST": views.label_create}), name="seeme-labels"),
    path(
        f"{V}/labels/<str:label_id>",
        endpoint({"GET": views.label_get, "PUT": views.label_update, "DELETE": views.label_delete}),
        name="seeme-label",
    ),
    path(f"{V}/splits", endpoint({"GET": views.splits_list, "POST": views.split_create}), name="seeme-splits"),
    path(
        f"{V}/splits/<str:split_id>",
        endpoint({"GET": views.split_get, "PUT": views.split_update, "DELETE": views.split_delete}),
        name="seeme-split",
    ),
    path(
        f"{V}/splits/<str:split_id>/items/<str:item_id>",
        endpoint({"DELETE": views.item_delete}),
        name="seeme-split-item",
    ),
    path(f"{V}/items", endpoint({"GET": views.items_list, "POST": views.item_create}), name="seeme-items"),
    path(f"{V}/items/<str:item_id>", endpoint({"GET": views.item_get, "PUT": views.item_update}), name="seeme-item"),
    path(f"{V}/items/<str:item_id>/upload", endpoint({"POST": views.item_upload}), name="seeme-item-upload"),
    path(f"{V}/items/<str:item_id>/download", endpoint({"GET": views.item_download}), name="seeme-item-download"),
    # Last: any other path is the SDK's kind of 404, a JSON message, not the REST API's {"detail"}.
    path("<path:unknown>", endpoint(dict.fromkeys(METHODS, views.no_route), public=True), name="seeme-unknown"),
]
