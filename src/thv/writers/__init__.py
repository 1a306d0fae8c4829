"""The only code that writes to the API server: apply, finalizer patches, status, events."""
