"""Django's admin app with Sightline's site (config/admin.py), where project owners who are not staff sign in too."""

from django.contrib.admin.apps import AdminConfig


class SightlineAdminConfig(AdminConfig):
    default_site = "config.admin.SightlineAdminSite"
