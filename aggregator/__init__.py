"""Aggregator runtime: strategies, update validation, per-site recording, signed checkpoints and the results store."""
