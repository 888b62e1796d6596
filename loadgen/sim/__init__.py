"""Simulated serving engine."""
