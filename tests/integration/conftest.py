"""Fixtures shared by the integration tests."""

from tests.support.env import clean_env

__all__ = ["clean_env"]
