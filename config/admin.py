"""Sightline's admin site: staff see everything, as Django's does; a project's owners and admins who are not staff
see the projects whose members they manage, and only those (projects/admin.py scopes each model's admin).

Signing in goes through the app's one log-in page, which is throttled against brute force; admin's own form is not
used."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.contenttypes import views as contenttype_views
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

NOT_MANAGER = "Admin is for staff, and for the owners and admins of a project: your account manages no project."


def managed_project_ids(request) -> frozenset[int]:
    """The projects whose members the requesting user manages (once per request)."""
    if not hasattr(request, "_managed_projects"):
        from projects.permissions import projects_for_user

        request._managed_projects = frozenset(
            projects_for_user(request.user, "manage_members_project").values_list("pk", flat=True)
        )
    return request._managed_projects


def is_scoped(request) -> bool:
    """A signed-in user who is not staff sees only the projects they manage."""
    return not (request.user.is_staff or request.user.is_superuser)


class SightlineAdminSite(admin.AdminSite):
    index_title = "Projects, members and roles"

    def has_permission(self, request) -> bool:
        user = request.user
        if not user.is_active or not user.is_authenticated:
            return False
        return user.is_staff or user.is_superuser or bool(managed_project_ids(request))

    def login(self, request, extra_context=None):
        """The app's log-in page (throttled), then back here; a signed-in user with nothing to manage is refused."""
        if request.user.is_authenticated:
            if self.has_permission(request):
                wanted = request.GET.get("next", "")
                safe = url_has_allowed_host_and_scheme(wanted, {request.get_host()}, request.is_secure())
                return redirect(wanted if safe else reverse("admin:index", current_app=self.name))
            raise PermissionDenied(NOT_MANAGER)
        return redirect(f"{reverse('login')}?{urlencode({'next': request.GET.get('next', reverse('admin:index'))})}")

    def autocomplete_view(self, request):
        # Scoped admins use no autocomplete widget; the endpoint would list another model's rows.
        if is_scoped(request):
            raise PermissionDenied("Autocomplete is for staff.")
        return super().autocomplete_view(request)

    def get_urls(self):
        # "View on site" redirects by any object's id: staff only, so ids of other projects tell an owner nothing.
        return [
            path("r/<int:content_type_id>/<path:object_id>/", self.admin_view(self._view_on_site)),
            *super().get_urls(),
        ]

    def _view_on_site(self, request, content_type_id, object_id):
        if is_scoped(request):
            raise Http404("Not found.")
        return contenttype_views.shortcut(request, content_type_id, object_id)
