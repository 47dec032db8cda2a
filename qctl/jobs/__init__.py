"""What users subclass and mark: Job, contracts, queued functions; and resolving them back."""
