"""The smart labeling tool behind `POST /api/images/{id}/smart/`: which engine runs, SAM's embedding cache,
and computing embeddings ahead of the person labeling.

SAM's image encoder takes seconds on a CPU; its decoder tens of milliseconds. So each image's
embedding is computed once, kept on disk (shared by the web processes and the worker) and in a
small in-process cache, and the labeler page asks the worker to compute the next images' embeddings
while the person works on this one. Two processes wanting the same embedding take a PostgreSQL
advisory lock, so the second waits for the first instead of computing it again.
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
from django.db import connection, transaction
from PIL import Image as PILImage

from annotations.assist.prompts import PromptError, prompt_parse
from annotations.geometry import bbox as geometry_bbox
from annotations.geometry import encode_mask
from projects.files import stored_bytes
from projects.models import Image

log = logging.getLogger(__name__)

PREFETCH_TASK = "annotations.tasks.sam_embeddings_prefetch"
PREFETCH_STALE_SECONDS = 600  # a queued prefetch older than this (the worker was busy) is skipped
MEMORY_ENTRIES = 8  # embeddings (4 MB each as float32) and decoded images kept per process

__all__ = ["PromptError", "SmartBackend", "smart_backend", "smart_segment", "sam_prefetch_schedule"]


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

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return SamEngine.from_checkpoint(settings.SIGHTLINE_SAM_CHECKPOINT, device=device)


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
        with PILImage.open(io.BytesIO(stored_bytes(image.file.name))) as decoded:
            rgb = np.asarray(decoded.convert("RGB"))
        _pixels.put(key, rgb)
    return rgb


def _cache_path(backend: SmartBackend, image: Image) -> Path:
    return Path(settings.SIGHTLINE_SAM_CACHE_DIR) / backend.fingerprint / f"{image.sha256}.npy"


def sam_embedding(backend: SmartBackend, image: Image) -> tuple[np.ndarray, bool]:
    """The image's SAM embedding and whether it was already computed (in memory or on disk)."""
    key = (backend.fingerprint, image.sha256)
    features = _embeddings.get(key)
    if features is not None:
        return features, True
    path = _cache_path(backend, image)
    features = _cache_read(path)
    cached = features is not None
    if features is None:
        # Whoever holds the lock is computing this very embedding; wait for it and read its file.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(key)])
            features = _cache_read(path)
            cached = features is not None
            if features is None:
                features = sam_engine(backend).embed(image_rgb(image))
                _cache_write(path, features)
    features = features.astype(np.float32)  # on disk in half precision; cast once, not on every click
    _embeddings.put(key, features)
    return features, cached


def sam_embedding_ready(backend: SmartBackend, image: Image) -> bool:
    return backend.name == "sam" and _cache_path(backend, image).is_file()


def _lock_key(key: tuple[str, str]) -> int:
    return int.from_bytes(hashlib.sha256(":".join(key).encode()).digest()[:8], "big", signed=True)


def _cache_read(path: Path) -> np.ndarray | None:
    try:
        features = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # not there yet, or a damaged file: computed again
    os.utime(path)  # the cache forgets the least recently used first
    return features


def _cache_write(path: Path, features: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    with open(partial, "wb") as handle:
        np.save(handle, features, allow_pickle=False)
    os.replace(partial, path)  # readers see the whole file or none


def sam_cache_trim(limit_bytes: int | None = None) -> int:
    """Delete the least recently used embeddings beyond SIGHTLINE_SAM_CACHE_MB; returns how many."""
    files = sorted(Path(settings.SIGHTLINE_SAM_CACHE_DIR).glob("*/*.npy"), key=lambda f: f.stat().st_mtime_ns)
    total = sum(f.stat().st_size for f in files)
    limit = settings.SIGHTLINE_SAM_CACHE_MB * 1024 * 1024 if limit_bytes is None else limit_bytes
    removed = 0
    while files and total > limit:
        oldest = files.pop(0)
        total -= oldest.stat().st_size
        oldest.unlink(missing_ok=True)
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
        features, cached = sam_embedding(backend, image)
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


def sam_prefetch_schedule(*, backend: SmartBackend, image_ids: list[int]) -> bool:
    """Ask the worker for these images' embeddings (the one opened first); false when SAM is not active."""
    if not image_ids or backend.name != "sam":
        return False
    from django_q.tasks import async_task

    requested_at = time.time()
    transaction.on_commit(
        lambda: async_task(
            PREFETCH_TASK, image_ids, requested_at, task_name=f"SAM embeddings of images {image_ids[0]}+"
        )
    )
    return True


def sam_embeddings_prefetch(*, image_ids: list[int], requested_at: float) -> int:
    """Compute the embeddings not yet cached; returns how many were computed. Skips a request gone stale."""
    backend = smart_backend()
    if backend.name != "sam" or time.time() - requested_at > PREFETCH_STALE_SECONDS:
        return 0
    computed = 0
    images = {image.pk: image for image in Image.objects.filter(pk__in=image_ids)}
    for image_id in image_ids:
        if image_id in images and not sam_embedding_ready(backend, images[image_id]):
            sam_embedding(backend, images[image_id])
            computed += 1
    if computed:
        sam_cache_trim()
    return computed
