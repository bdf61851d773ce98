"""Tooling no hospital runs: the baselines comparison, the end-to-end demo, the membership-inference audit, run summaries."""
