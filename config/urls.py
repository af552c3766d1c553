"""Top-level routes: pages, the REST API with its schema, admin and the health check."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from jobs.health import healthz

api = [
    path("", include("accounts.api_urls")),
    path("", include("projects.api_urls")),
    path("", include("annotations.api_urls")),
    path("", include("training.api_urls")),
    path("", include("similarity.api_urls")),
    path("", include("jobs.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="projects:list", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("projects.seeme.urls")),  # the SeeMe.ai SDK's protocol (docs/seeme.md)
    path("api/", include(api)),
    path("accounts/", include("accounts.urls")),
    path("projects/", include("projects.urls")),
    path("", include("annotations.urls")),
    path("", include("training.urls")),
    path("", include("similarity.urls")),
    path("", include("jobs.urls")),
]

admin.site.site_header = "Sightline administration"
admin.site.site_title = "Sightline admin"

handler404 = "config.errors.not_found"
handler500 = "config.errors.server_error"
