"""Running workers under supervisord: the program section, its safety checks, and `qctl supervise`."""
