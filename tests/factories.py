"""factory_boy factories; projects go through the service so memberships and permissions are real."""

import io

import factory
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from accounts.models import User
from projects import services
from projects.models import Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def make_project(owner=None, name="Birds", **members_by_role):
    """A project owned by `owner`, with extra members given as role_name=user."""
    project = services.project_create(owner=owner or UserFactory(), name=name)
    for role_name, member in members_by_role.items():
        services.membership_grant(project=project, email=member.email, role=Role.objects.get(name=role_name))
    return project


def image_bytes(width=64, height=48, color=(200, 30, 30), fmt="PNG", **save_kwargs) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), color).save(out, fmt, **save_kwargs)
    return out.getvalue()


def image_file(name="red.png", **kwargs) -> SimpleUploadedFile:
    fmt = "JPEG" if name.lower().endswith((".jpg", ".jpeg")) else "PNG"
    return SimpleUploadedFile(name, image_bytes(fmt=fmt, **kwargs))


def builtin_roles_seed() -> None:
    """Tests on a flushed (transactional) database: put back the roles the migration seeds."""
    import importlib

    from django.apps import apps

    if not Role.objects.filter(name=Role.OWNER).exists():
        importlib.import_module("projects.migrations.0002_builtin_roles").seed_roles(apps, None)
