"""Reading stored files (images, checkpoints, evaluations, job files) by their name in the default storage,
and handing them to browsers: streamed from local disk, or by a short-lived presigned URL from object storage."""

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from django.utils.http import content_disposition_header


def stored_bytes(name: str) -> bytes:
    """The whole file; FileSystemStorage locally, any django-storages backend in a team's deployment."""
    with default_storage.open(name, "rb") as stored:
        return stored.read()


def storage_is_remote(storage=default_storage) -> bool:
    """Object storage (S3 and the like) has no local paths; its files reach browsers by presigned URLs."""
    try:
        storage.path("probe")
    except NotImplementedError:
        return True
    return False


def stored_response(
    name: str, *, filename: str, content_type: str, attachment: bool = False, cache_control: str = "private, no-cache"
) -> HttpResponse:
    """A stored file for a browser. The caller has checked the permission: this only says where the bytes come from.

    From object storage the answer is a redirect to a presigned URL that expires after
    SIGHTLINE_PRESIGNED_SECONDS, carrying the type, name and caching the file is served with; the
    redirect itself is cached for less than that, so a browser never holds an expired URL.
    """
    disposition = content_disposition_header(attachment, filename)
    if storage_is_remote():
        parameters = {
            "ResponseContentType": content_type,
            "ResponseContentDisposition": disposition,
            "ResponseCacheControl": cache_control,
        }
        url = default_storage.url(name, parameters=parameters, expire=settings.SIGHTLINE_PRESIGNED_SECONDS)
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = f"private, max-age={settings.SIGHTLINE_PRESIGNED_SECONDS // 2}"
        return response
    response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    response["Content-Disposition"] = disposition
    response["Cache-Control"] = cache_control
    return response
