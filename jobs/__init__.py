"""What every app shares at run time: the one job system (rows, runner, reaper), worker heartbeats, /healthz."""
