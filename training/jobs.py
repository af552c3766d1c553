"""Training's kind of background work, registered with the job system."""

from jobs.registry import GPU, JobKind

TRAINING = JobKind(
    name="training",
    label="Training",
    cluster=GPU,
    run="training.services.runs.training_job_execute",
    permission="train_project",
    url="/projects/{project_id}/training/{id}/",
)
KINDS = (TRAINING,)
