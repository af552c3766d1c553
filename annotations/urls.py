from django.urls import path

from annotations import views

app_name = "annotations"
urlpatterns = [
    path("", views.labeling_time, name="labeling-time"),
]
