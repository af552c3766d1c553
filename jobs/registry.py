"""The kinds of background work. Each app registers its own in AppConfig.ready(); the runner, the reaper
and the Jobs page only ever ask this registry, so no app imports another app's job code."""

from __future__ import annotations

from dataclasses import dataclass

GPU, CPU = "gpu", "cpu"


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str
    cluster: str  # gpu: model work; cpu: files and searches
    run: str  # dotted path of `run(job, context) -> str`: the work; its return is the message it ends with
    permission: str  # what a person needs to start, and so to cancel, a job of this kind
    url: str = ""  # the page that shows one job, formatted with the job: "/projects/{project_id}/..."


_KINDS: dict[str, JobKind] = {}


def kinds_register(*kinds: JobKind) -> None:
    for kind in kinds:
        if kind.cluster not in (GPU, CPU):
            raise ValueError(f"Job kind {kind.name}: cluster must be {GPU} or {CPU}, not {kind.cluster!r}.")
        _KINDS[kind.name] = kind


def kind_get(name: str) -> JobKind:
    return _KINDS[name]


def kind_find(name: str) -> JobKind | None:
    """The kind, or None for rows of a kind whose app is no longer installed."""
    return _KINDS.get(name)


def kinds() -> list[JobKind]:
    return list(_KINDS.values())
