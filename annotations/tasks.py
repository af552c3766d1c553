"""django-q2 tasks of the annotations app: thin, idempotent, ids in."""

from annotations import smart, transfers


def transfer_run(job_id: int) -> None:
    transfers.transfer_run(job_id=job_id)


def sam_embeddings_prefetch(image_ids: list[int], requested_at: float) -> int:
    return smart.sam_embeddings_prefetch(image_ids=image_ids, requested_at=requested_at)
