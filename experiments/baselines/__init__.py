"""Baselines comparison: local-only, centralized, federated with and without DP."""

from .report import Comparison, write_reports
from .runner import ExperimentConfig, Experiment

__all__ = ["Comparison", "Experiment", "ExperimentConfig", "write_reports"]
