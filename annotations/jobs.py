"""The annotations app's kinds of background work, registered with the job system."""

from jobs.registry import CPU, GPU, JobKind

EXPORT = JobKind(
    name="export",
    label="Export",
    cluster=CPU,
    run="annotations.services.transfers.transfer_execute",
    permission="export_project",
    url="/projects/{project_id}/transfer/",
)
IMPORT = JobKind(
    name="import",
    label="Import",
    cluster=CPU,
    run="annotations.services.transfers.transfer_execute",
    permission="annotate_project",
    url="/projects/{project_id}/transfer/",
)
SAM_EMBEDDINGS = JobKind(
    name="sam-embeddings",
    label="Smart tool: SAM embeddings",
    cluster=GPU,
    run="annotations.smart.sam_embeddings_execute",
    permission="annotate_project",
)
KINDS = (EXPORT, IMPORT, SAM_EMBEDDINGS)
