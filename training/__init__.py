"""Training: frozen dataset versions, training jobs (a kind of jobs.Job), the model versions they leave,
their statistics, galleries and predictions; training/ml holds the plain torch code."""
