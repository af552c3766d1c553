from django.urls import path

from similarity import api

urlpatterns = [
    path("projects/<int:project_id>/similar/", api.SimilarApi.as_view(), name="api-similar"),
    path("projects/<int:project_id>/similar-pairs/", api.SimilarPairsApi.as_view(), name="api-similar-pairs"),
    path("projects/<int:project_id>/similarity-index/", api.IndexStatusApi.as_view(), name="api-similarity-index"),
    path("pair-searches/<int:search_id>/", api.PairSearchApi.as_view(), name="api-pair-search"),
]
