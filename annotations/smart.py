"""The smart labeling tool behind `POST /api/images/{id}/smart/`: which engine runs, SAM's embedding cache,
and computing embeddings ahead of the person labeling.

SAM's image encoder takes seconds on a CPU; its decoder tens of milliseconds. So the encoder runs
only in a worker (a "sam-embeddings" job), never in a request: each image's embedding is computed
once, kept in the default storage (shared by every web host and worker, S3 included) and in a small
in-process cache. The labeler asks for this image's and the next images' embeddings as it opens;
an Extract that comes before its embedding is ready is answered 202 with the job to wait for. Two
workers wanting the same embedding take a PostgreSQL advisory lock, so the second waits for the first.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction

from annotations.assist.prompts import PromptError, prompt_parse
from annotations.geometry import bbox as geometry_bbox
from annotations.geometry import encode_mask
from projects.files import stored_bytes
from projects.imaging import open_guarded
from projects.models import Image

log = logging.getLogger(__name__)

SAM_KIND = "sam-embeddings"
PREFETCH_STALE_SECONDS = 600  # a queued prefetch older than this (the worker was busy) is skipped
PREFETCH_QUEUE = 12  # images one waiting prefetch job holds at most
MEMORY_ENTRIES = 8  # embeddings (4 MB each as float32) and decoded images kept per process

__all__ = [
    "EmbeddingNotReady",
    "PromptError",
    "SmartBackend",
    "smart_backend",
    "smart_segment",
    "sam_prefetch_schedule",
]


@dataclass(frozen=True)
class SmartBackend:
    """What the smart tool runs on: "sam" or "grabcut", a line for people, and why SAM is unusable if it is."""

    name: str
    description: str
    error: str = ""
    fingerprint: str = ""  # of the checkpoint file: names its embedding cache

    def as_dict(self) -> dict:
        return {"backend": self.name, "description": self.description, "error": self.error}


def smart_backend() -> SmartBackend:
    """SAM when SIGHTLINE_SAM_CHECKPOINT names a usable checkpoint; GrabCut otherwise, with the reason."""
    path = settings.SIGHTLINE_SAM_CHECKPOINT
    if not path:
        return SmartBackend("grabcut", "GrabCut (OpenCV): foreground and background scribbles")
    try:
        stat = Path(path).stat()
    except OSError as exc:
        return _unusable(path, f"{path} cannot be opened ({exc.strerror}).")
    return _checkpoint_backend(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def _unusable(path: str, error: str) -> SmartBackend:
    return SmartBackend(
        "grabcut", "GrabCut (OpenCV), because the SAM checkpoint is unusable", f"SIGHTLINE_SAM_CHECKPOINT: {error}"
    )


@lru_cache(maxsize=4)
def _checkpoint_backend(path: str, size: int, mtime_ns: int) -> SmartBackend:
    """Checked once per version of the file: names and shapes of every tensor, without loading them."""
    from annotations.assist.sam import SamCheckpointError, checkpoint_check, checkpoint_read

    try:
        arch = checkpoint_check(checkpoint_read(path))
    except SamCheckpointError as exc:
        log.error("The smart tool cannot use SAM: %s", exc)
        return _unusable(path, str(exc))
    fingerprint = hashlib.sha256(f"{path}:{size}:{mtime_ns}".encode()).hexdigest()[:16]
    return SmartBackend("sam", f"Segment Anything {arch.name} ({Path(path).name})", fingerprint=fingerprint)


_engine_lock = threading.Lock()


@lru_cache(maxsize=1)
def _engine(fingerprint: str):
    """The loaded model for one checkpoint version (weights memory-mapped: milliseconds, shared pages)."""
    import torch

    from annotations.assist.sam import SamEngine
    from training.ml.runtime import loaded_objects_freeze

    device = "cuda" if torch.cuda.is_available() else "cpu"
    engine = SamEngine.from_checkpoint(settings.SIGHTLINE_SAM_CHECKPOINT, device=device)
    loaded_objects_freeze()  # torch and the model stay loaded: keep the collector off them
    return engine


def sam_engine(backend: SmartBackend):
    with _engine_lock:
        return _engine(backend.fingerprint)


# --- image pixels and embeddings -------------------------------------------------------------


class _Recent:
    """A small thread-safe LRU: the last few decoded images and embeddings of this process."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_pixels = _Recent(MEMORY_ENTRIES)
_embeddings = _Recent(MEMORY_ENTRIES)


def image_rgb(image: Image) -> np.ndarray:
    """HxWx3 uint8 of a stored image (stored upright, so no EXIF turn is needed); a repeated Extract reuses it."""
    key = (image.pk, image.sha256)
    rgb = _pixels.get(key)
    if rgb is None:
        with open_guarded(stored_bytes(image.file.name), copies=2) as decoded:
            rgb = np.asarray(decoded.convert("RGB"))
        _pixels.put(key, rgb)
    return rgb


class EmbeddingNotReady(Exception):
    """SAM's encoder has not run on this image yet: that takes seconds, so a worker does it, never a request."""


def _cache_name(backend: SmartBackend, image: Image) -> str:
    return f"{settings.SIGHTLINE_SAM_CACHE_PREFIX}/{backend.fingerprint}/{image.sha256}.npy"


def sam_embedding(backend: SmartBackend, image: Image, *, compute: bool = True) -> tuple[np.ndarray, bool]:
    """The image's SAM embedding and whether it was already computed (in memory or in storage).

    With `compute=False` (a request) a missing one raises EmbeddingNotReady instead of running the encoder.
    """
    key = (backend.fingerprint, image.sha256)
    features = _embeddings.get(key)
    if features is not None:
        return features, True
    name = _cache_name(backend, image)
    features = _cache_read(name)
    cached = features is not None
    if features is None:
        if not compute:
            raise EmbeddingNotReady(image.pk)
        # Whoever holds the lock is computing this very embedding; wait for it and read its file.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(key)])
            features = _cache_read(name)
            cached = features is not None
            if features is None:
                features = sam_engine(backend).embed(image_rgb(image))
                _cache_write(name, features)
    features = features.astype(np.float32)  # stored in half precision; cast once, not on every click
    _embeddings.put(key, features)
    return features, cached


def sam_embedding_ready(backend: SmartBackend, image: Image) -> bool:
    if backend.name != "sam":
        return False
    return _embeddings.get((backend.fingerprint, image.sha256)) is not None or default_storage.exists(
        _cache_name(backend, image)
    )


def _lock_key(key: tuple[str, str]) -> int:
    return int.from_bytes(hashlib.sha256(":".join(key).encode()).digest()[:8], "big", signed=True)


def _cache_read(name: str) -> np.ndarray | None:
    """The stored embedding, or None: not there yet, or a damaged (or half-written) file, computed again."""
    try:
        with default_storage.open(name, "rb") as handle:
            features = np.load(io.BytesIO(handle.read()), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    _touch(name)
    return features


def _touch(name: str) -> None:
    """On local disk the cache forgets the least recently used first; object storage keeps write times (oldest first)."""
    try:
        os.utime(default_storage.path(name))
    except (NotImplementedError, OSError):
        pass


def _cache_write(name: str, features: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, features, allow_pickle=False)
    default_storage.delete(name)  # a damaged file of this name would make the storage pick another name
    saved = default_storage.save(name, ContentFile(buffer.getvalue()))
    if saved != name:  # another process wrote it between the two calls: keep theirs
        default_storage.delete(saved)


def _cache_files() -> list[tuple[str, int, float]]:
    """(name, bytes, last used or written) of every cached embedding, of every checkpoint."""
    prefix = settings.SIGHTLINE_SAM_CACHE_PREFIX
    try:
        folders, _ = default_storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = []
    for folder in folders:
        for file in default_storage.listdir(f"{prefix}/{folder}")[1]:
            name = f"{prefix}/{folder}/{file}"
            if name.endswith(".npy"):
                files.append((name, default_storage.size(name), default_storage.get_modified_time(name).timestamp()))
    return files


def sam_cache_trim(limit_bytes: int | None = None) -> int:
    """Delete the least recently used embeddings beyond SIGHTLINE_SAM_CACHE_MB; returns how many."""
    files = sorted(_cache_files(), key=lambda f: f[2])
    total = sum(size for _, size, _ in files)
    limit = settings.SIGHTLINE_SAM_CACHE_MB * 1024 * 1024 if limit_bytes is None else limit_bytes
    removed = 0
    while files and total > limit:
        name, size, _ = files.pop(0)
        total -= size
        default_storage.delete(name)
        removed += 1
    return removed


# --- segmenting and prefetching --------------------------------------------------------------


def smart_segment(*, image: Image, box, foreground, background) -> dict:
    """A mask for the marks, inside the work area, from the active engine. Reads only; nothing is saved."""
    prompt = prompt_parse(box, foreground, background, width=image.width, height=image.height)
    backend = smart_backend()
    started = time.perf_counter()
    result = {"backend": backend.name, "description": backend.description, "score": None, "embedding_cached": None}
    if backend.name == "sam":
        features, cached = sam_embedding(backend, image, compute=False)
        mask, score = sam_engine(backend).decode(features, prompt, (image.height, image.width))
        result.update(score=round(score, 4), embedding_cached=cached)
    else:
        from annotations.assist.grabcut import grabcut_segment

        mask = grabcut_segment(image_rgb(image), prompt, max_side=settings.SIGHTLINE_GRABCUT_MAX_SIDE)
    mask = prompt.bound(mask)
    rle, area = encode_mask(mask), int(mask.sum())
    bbox = None
    if area:
        bbox = dict(zip(("x", "y", "width", "height"), map(int, geometry_bbox("mask", {"rle": rle})), strict=True))
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    result.update(rle=rle, bbox=bbox, area=area, elapsed_ms=elapsed_ms)
    return result


def sam_prefetch_schedule(*, backend: SmartBackend, project, user, image_ids: list[int]):
    """Ask a worker for these images' embeddings, the first one first; the job, or None when SAM is not active
    or every one is ready. One queued job per project: a newer request puts its images in front of the older's.
    """
    if backend.name != "sam":
        return None
    images = {
        i.pk: i for i in Image.objects.filter(project=project, pk__in=image_ids[: settings.SIGHTLINE_SAM_PREFETCH + 1])
    }
    wanted = [pk for pk in image_ids if pk in images and not sam_embedding_ready(backend, images[pk])]
    if not wanted:
        return None
    from jobs.models import Job
    from jobs.services import job_submit

    with transaction.atomic():
        waiting = (
            Job.objects.select_for_update().filter(project=project, kind=SAM_KIND, status=Job.Status.QUEUED).first()
        )
        if waiting is not None:
            merged = list(dict.fromkeys([*wanted, *waiting.payload.get("image_ids", [])]))[:PREFETCH_QUEUE]
            Job.objects.filter(pk=waiting.pk).update(payload={"image_ids": merged})
            return waiting
        job = Job.objects.create(kind=SAM_KIND, project=project, created_by=user, payload={"image_ids": wanted})
        return job_submit(job)


def sam_embeddings_execute(job, context) -> str:
    """The SAM-embeddings kind's work (jobs.registry): compute the embeddings not yet cached."""
    backend = smart_backend()
    if backend.name != "sam":
        return "SAM is not configured any more; nothing to compute."
    if (time.time() - job.created_at.timestamp()) > PREFETCH_STALE_SECONDS:
        return "Skipped: asked for too long ago (the person has moved on)."
    image_ids = list(job.payload.get("image_ids", []))
    images = {image.pk: image for image in Image.objects.filter(pk__in=image_ids, project_id=job.project_id)}
    computed = 0
    for done, image_id in enumerate(image_ids):
        context.check()
        context.progress(done / max(len(image_ids), 1), f"Image {done + 1} of {len(image_ids)}")
        if image_id in images and not sam_embedding_ready(backend, images[image_id]):
            sam_embedding(backend, images[image_id])
            computed += 1
    if computed:
        sam_cache_trim()
    return f"Computed {computed} embedding(s); {len(image_ids) - computed} were ready."
