from django.urls import path

from annotations import api

urlpatterns = [
    path("images/<int:image_id>/annotations/", api.ImageAnnotationsApi.as_view(), name="api-image-annotations"),
    path("images/<int:image_id>/history/", api.HistoryApi.as_view(), name="api-image-history"),
    path(
        "images/<int:image_id>/history/<int:entry_id>/restore/",
        api.HistoryRestoreApi.as_view(),
        name="api-image-history-restore",
    ),
    path("images/<int:image_id>/seen/", api.ImageSeenApi.as_view(), name="api-image-seen"),
    path("images/<int:image_id>/heartbeat/", api.HeartbeatApi.as_view(), name="api-heartbeat"),
    path("labeling-time/", api.LabelingTimeApi.as_view(), name="api-labeling-time"),
    path("projects/<int:project_id>/export/", api.ExportApi.as_view(), name="api-export"),
    path("projects/<int:project_id>/import/", api.ImportApi.as_view(), name="api-import"),
    path("projects/<int:project_id>/import/preview/", api.ImportPreviewApi.as_view(), name="api-import-preview"),
    path("transfers/<int:job_id>/", api.TransferApi.as_view(), name="api-transfer-job"),
    path("transfers/<int:job_id>/file/", api.TransferFileApi.as_view(), name="api-transfer-file"),
    path("images/<int:image_id>/rasterize/", api.RasterizeApi.as_view(), name="api-rasterize"),
    path("images/<int:image_id>/smart/", api.SmartApi.as_view(), name="api-smart"),
    path("images/<int:image_id>/smart/prepare/", api.SmartPrepareApi.as_view(), name="api-smart-prepare"),
    path("images/<int:image_id>/polygonize/", api.PolygonizeApi.as_view(), name="api-polygonize"),
    path("projects/<int:project_id>/annotations/bulk/", api.BulkAnnotationsApi.as_view(), name="api-bulk-annotations"),
]
