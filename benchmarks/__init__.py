"""Benchmarks: speed and memory targets, measured here and written to benchmarks/results/."""
