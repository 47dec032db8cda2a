"""Dispatching and coordination: payload building, pending dispatches, the dispatcher."""
