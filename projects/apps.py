from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Projects"

    def ready(self) -> None:
        from django.conf import settings
        from PIL import Image

        from projects import signals  # noqa: F401  (file clean-up receivers)

        # Pillow's own bomb check uses this; projects.imaging turns its warning into an error.
        Image.MAX_IMAGE_PIXELS = settings.SIGHTLINE_MAX_IMAGE_PIXELS
