"""The demo account and project that `manage.py serve` creates once: scikit-image's bundled photos."""

from __future__ import annotations

import io
from collections.abc import Iterator

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from accounts.models import User
from accounts.services import token_get_or_create
from projects.models import Project

DEMO_USERNAME = "demo"
DEMO_EMAIL = "demo@sightline.local"
DEMO_PASSWORD = "sightline-demo"
DEMO_PROJECT = "Demo: scikit-image sample photos"

# name -> classification label; these ship inside scikit-image, so nothing is downloaded.
SAMPLES = {
    "astronaut": "photo",
    "chelsea": "photo",
    "coffee": "photo",
    "rocket": "photo",
    "camera": "photo",
    "coins": "photo",
    "clock": "photo",
    "colorwheel": "graphic",
    "brick": "texture",
    "grass": "texture",
    "gravel": "texture",
    "moon": "astronomy",
    "hubble_deep_field": "astronomy",
    "cell": "microscopy",
    "immunohistochemistry": "microscopy",
    "retina": "microscopy",
    "page": "document",
    "text": "document",
}


def sample_photos(names: list[str] | None = None) -> Iterator[tuple[str, bytes, str]]:
    """(file name, PNG bytes, label) for scikit-image's bundled sample images."""
    import skimage.data
    from PIL import Image

    for name in names or list(SAMPLES):
        pixels = getattr(skimage.data, name)()
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "PNG")
        yield f"{name}.png", out.getvalue(), SAMPLES[name]


@transaction.atomic
def demo_seed() -> tuple[User, Project, bool]:
    """Create the demo user and project once; return them and whether they were new."""
    from projects.services import project_create
    from projects.uploads import images_upload

    user = User.objects.filter(username=DEMO_USERNAME).first()
    if user is not None:
        project = Project.objects.filter(owner=user, name=DEMO_PROJECT).first()
        return user, project, False
    user = User.objects.create_user(DEMO_USERNAME, DEMO_EMAIL, DEMO_PASSWORD)
    token_get_or_create(user=user)
    project = project_create(
        owner=user, name=DEMO_PROJECT, description="Photos, textures, microscopy and documents from scikit-image."
    )
    by_label: dict[str, list[SimpleUploadedFile]] = {}
    for filename, data, label in sample_photos():
        by_label.setdefault(label, []).append(SimpleUploadedFile(filename, data, content_type="image/png"))
    for label, files in by_label.items():
        images_upload(project=project, user=user, files=files, labels=[label])
    return user, project, True
