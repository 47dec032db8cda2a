"""Shared test helpers: real services, per-test configs, worker subprocesses."""
