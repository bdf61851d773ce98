"""Site runtime: everything that runs inside a hospital (ingestion, model, self-supervised and DP training, downstream heads, drafts, evaluation, egress whitelist)."""
