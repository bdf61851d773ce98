"""Threat-model tests: each file is one threat, its test the defence that stops it."""
