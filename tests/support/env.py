"""A fixture the unit and integration conftests share: a shell's LOADGEN_* settings kept out."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LOADGEN_* variable of the caller's shell changes a CLI default under test."""
    for name in list(os.environ):
        if name.startswith("LOADGEN_"):
            monkeypatch.delenv(name)
