"""Shared helpers for the project's tests."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "tests" / "cases"


@pytest.fixture
def write_case(pytester: pytest.Pytester):
    """Write a YAML case file into the pytester directory and return its path."""

    def write(name: str, text: str) -> Path:
        path = pytester.path / "cases" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocess runs load only what they ask for (`-p peft_edges`)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def python() -> str:
    return sys.executable


os.environ.setdefault("HF_HUB_OFFLINE", "1")
