from django.urls import path

from similarity import views

app_name = "similarity"
urlpatterns = [
    path("projects/<int:project_id>/similar/", views.similar_page, name="similar"),
    path("projects/<int:project_id>/similar-pairs/", views.pairs_page, name="pairs"),
    path("projects/<int:project_id>/similar-pairs/<int:search_id>/", views.pair_search_page, name="pair-search"),
    path("projects/<int:project_id>/similarity-index/", views.index_page, name="index"),
]
