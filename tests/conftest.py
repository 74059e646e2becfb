"""Shared helpers for the project's tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

# Imported once here so pytester's in-process runs (which restore sys.modules) share one registry.
import pytest_peft_edges.engine  # noqa: F401
import pytest_peft_edges.reporting  # noqa: F401
import pytest_peft_edges.schema  # noqa: F401

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





@pytest.fixture(scope="session", autouse=True)
def _hypothesis_home_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """hypothesis caches data (e.g. its unicode charmap) in ./.hypothesis: keep it in pytest's tmp."""
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:
        return
    set_hypothesis_home_dir(str(tmp_path_factory.mktemp("hypothesis-home")))
