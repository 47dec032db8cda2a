"""Failed-job stores: where jobs go when they give up (Laravel's failed_jobs)."""
