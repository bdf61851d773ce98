"""Differential privacy, the leaf package: DP-SGD, accountant, site budget, ledger, noise planning and audits."""
