"""The worker: its loop, running one job, failure rules, stop reasons, signals and timeouts."""
