"""Training's kind of background work, registered with the job system."""

from jobs.registry import CPU, GPU, JobKind

TRAINING = JobKind(
    name="training",
    label="Training",
    cluster=GPU,
    run="training.services.runs.training_job_execute",
    permission="train_project",
    url="/projects/{project_id}/training/{id}/",
)
BUNDLE = JobKind(
    name="bundle",
    label="Model download",
    cluster=CPU,
    run="training.bundles.bundle_job_execute",
    permission="export_project",
    url="/projects/{project_id}/jobs/",
)
PREDICTION = JobKind(
    name="prediction",
    label="Predicting",
    cluster=GPU,
    run="training.services.predicting.prediction_job_execute",
    permission="train_project",
    url="/projects/{project_id}/predict/?job={id}",
)
KINDS = (TRAINING, BUNDLE, PREDICTION)
