"""django-q2 tasks of the annotations app: thin, idempotent, ids in."""

from annotations import transfers


def transfer_run(job_id: int) -> None:
    transfers.transfer_run(job_id=job_id)
