"""Reading stored files (images, checkpoints, evaluations, job files) by their name in the default storage."""

from django.core.files.storage import default_storage


def stored_bytes(name: str) -> bytes:
    """The whole file; FileSystemStorage locally, any django-storages backend in a team's deployment."""
    with default_storage.open(name, "rb") as stored:
        return stored.read()
