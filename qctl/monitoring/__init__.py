"""Seeing the queues: what `qctl status` and `qctl monitor` read, gathered from counts alone."""
