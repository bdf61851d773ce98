"""Differential privacy: DP-SGD, accountant, site budget, ledger, noise planning and audits (imports only infra of ours)."""
