"""The similarity app's kinds of background work, registered with the job system."""

from jobs.registry import CPU, GPU, JobKind

EMBEDDINGS = JobKind(
    name="embeddings",
    label="Similarity: embeddings",
    cluster=GPU,
    run="similarity.services.embeddings_execute",
    permission="upload_project",
)
PAIR_SEARCH = JobKind(
    name="pair-search",
    label="Similarity: pair search",
    cluster=CPU,
    run="similarity.services.pair_search_execute",
    permission="view_project",
    url="/projects/{project_id}/similar-pairs/{id}/",
)
KINDS = (EMBEDDINGS, PAIR_SEARCH)
