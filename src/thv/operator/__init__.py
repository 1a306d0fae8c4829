"""The operator: watch sources, the bus and the subscribers wired together."""
