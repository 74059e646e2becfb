"""Shared helpers for the project's tests."""

from __future__ import annotations

import shutil
import tempfile
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






def pytest_configure(config: pytest.Config) -> None:
    """hypothesis caches data (constants, its unicode charmap) in ./.hypothesis when test modules are
    imported: keep it in a temporary directory removed at the end of the run."""
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:
        return
    home = tempfile.mkdtemp(prefix="peft-edges-hypothesis-")
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
    set_hypothesis_home_dir(home)
