"""Background work: the worker heartbeat now; dataset versions, training jobs and models next."""
