from django.urls import path

from annotations import api

urlpatterns = [
    path("images/<int:image_id>/annotations/", api.ImageAnnotationsApi.as_view(), name="api-image-annotations"),
]
