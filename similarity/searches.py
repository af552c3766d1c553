"""The searches pages and the API run, shaped for output: by an image, by uploaded bytes, pairs, index status."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from projects.files import stored_bytes
from projects.models import Image, Project
from projects.permissions import access_child
from similarity import selectors, services
from similarity.models import ImageEmbedding, PairSearch, UnindexedImage


def _vector_of(image: Image):
    """The image's stored embedding, or one computed now when the background indexer has not reached it."""
    stored = ImageEmbedding.objects.current().filter(image=image).values_list("vector", flat=True).first()
    if stored is not None:
        return stored
    try:
        return services.embedder().embed([stored_bytes(image.file.name)])[0]
    except Exception as exc:  # a missing or damaged file is the image's problem, not a server error
        raise ValidationError(
            {"image": [f"{image.name} cannot be read, so it cannot be searched with ({exc})."]}
        ) from None


def label_names(labels: str | list[str]) -> list[str]:
    """The label names of a query: a comma-separated string (forms, query strings) or a list already."""
    return [name.strip() for name in labels.split(",") if name.strip()] if isinstance(labels, str) else list(labels)


def _run(project: Project, vector, *, limit, threshold, labels, op, exclude_image_id=None) -> dict:
    names = label_names(labels)
    label_ids = selectors.labels_resolve(project=project, names=names) if names else []
    results = selectors.similar_images(
        project=project,
        vector=vector,
        limit=limit,
        threshold=threshold,
        label_ids=label_ids,
        op=op,
        exclude_image_id=exclude_image_id,
    )
    images = Image.objects.in_bulk([image_id for image_id, _ in results])
    return {
        "parameters": {"limit": limit, "threshold": threshold, "labels": names, "op": op},
        "index": index_status(project=project),
        "results": [{"image": image_out(images[i]), "score": round(score, 6)} for i, score in results if i in images],
    }


def similar_to_image(*, project: Project, image: Image, **query) -> dict:
    """1vN for an image of the project; the image itself is not among its results."""
    return {"query": image_out(image), **_run(project, _vector_of(image), exclude_image_id=image.pk, **query)}


def similar_to_bytes(*, project: Project, data: bytes, **query) -> dict:
    """1vN for an uploaded image (checked by the caller), which is not stored."""
    return {"query": None, **_run(project, services.embedder().embed([data])[0], **query)}


def image_out(image: Image) -> dict:
    return {
        "id": image.pk,
        "name": image.name,
        "thumbnail_url": f"/api/images/{image.pk}/thumbnail/",
        "file_url": f"/api/images/{image.pk}/file/",
    }


def pairs_out(pairs: list) -> list[dict]:
    images = Image.objects.in_bulk({i for a, b, _ in pairs for i in (a, b)})
    return [
        {"a": image_out(images[a]), "b": image_out(images[b]), "score": score}
        for a, b, score in pairs
        if a in images and b in images
    ]


def pair_search_out(search: PairSearch) -> dict:
    body = {
        "id": search.pk,
        "status": search.status,
        "progress": search.progress,
        "parameters": search.parameters,
        "error": search.error,
        "url": f"/api/pair-searches/{search.pk}/",
    }
    if search.status == PairSearch.Status.FINISHED:
        body["pairs"] = pairs_out(search.pairs)
    return body


PAIR_SEARCH_PERMISSION = "annotate_project"  # a search is work on the data: a Viewer only reads its results


def pairs_now(*, project: Project, parameters: dict) -> list[dict] | None:
    """The pairs at once, for a project of up to SIGHTLINE_SYNC_PAIR_IMAGES indexed images; None for a larger one,
    whose search is a background job someone starts (pair_search_begin). `parameters` are similar_pairs'."""
    if ImageEmbedding.objects.for_project(project).count() > settings.SIGHTLINE_SYNC_PAIR_IMAGES:
        return None
    return pairs_out(selectors.similar_pairs(project=project, **parameters))


def pair_search_begin(*, project: Project, user, parameters: dict) -> PairSearch:
    """Start (or join the live) background search; a label name the project lacks is refused now, not in the job."""
    if parameters["labels"]:
        selectors.labels_resolve(project=project, names=parameters["labels"])
    return services.pair_search_start(project=project, user=user, parameters=parameters)


def pair_search_get(*, user, search_id: int, project_id: int | None = None) -> PairSearch:
    """A pair search the user may see (404 otherwise)."""
    return access_child(
        user,
        PairSearch.objects.filter(pk=search_id).first(),
        "view_project",
        "No such pair search.",
        project_id=project_id,
    )


def index_status(*, project: Project) -> dict:
    """Images, how many are indexed, and how many could not be (unreadable or undecodable files)."""
    images = Image.objects.for_project(project).count()
    indexed = ImageEmbedding.objects.for_project(project).count()
    unreadable = UnindexedImage.objects.filter(project=project).count()
    return {"images": images, "indexed": indexed, "unreadable": unreadable, "complete": indexed + unreadable >= images}
