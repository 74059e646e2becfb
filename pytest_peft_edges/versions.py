"""Installed versions of the stack under test, read from package metadata (no heavy import)."""

from __future__ import annotations

import functools
from importlib import metadata

from packaging.specifiers import InvalidSpecifier, SpecifierSet

#: The libraries a known bug's range may name, in the order reports print them.
TRACKED = ("peft", "transformers", "torch", "safetensors")


@functools.lru_cache(maxsize=None)
def installed(package: str) -> str | None:
    """The installed version of ``package``, or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def stack() -> dict[str, str | None]:
    """Versions of every tracked library, e.g. ``{"peft": "0.21.2", ...}``."""
    return {name: installed(name) for name in TRACKED}


def parse_specifier(text: str) -> SpecifierSet:
    """A PEP 440 specifier set that counts prereleases; raises ValueError with a readable message."""
    try:
        return SpecifierSet(text, prereleases=True)
    except InvalidSpecifier as exc:
        raise ValueError(f"not a PEP 440 version specifier: {text!r}") from exc


def matches(ranges: dict[str, str], versions: dict[str, str | None] | None = None) -> bool:
    """True when every library named in ``ranges`` is installed at a version inside its range.

    The local label is ignored (``2.13.0+cpu`` counts as ``2.13.0``), so ranges stay portable.
    """
    from packaging.version import InvalidVersion, Version

    versions = stack() if versions is None else versions
    for package, spec in ranges.items():
        found = versions.get(package) or installed(package)
        if found is None:
            return False
        try:
            version = Version(Version(found).public)
        except InvalidVersion:
            return False
        if not parse_specifier(spec).contains(version, prereleases=True):
            return False
    return True


def describe(versions: dict[str, str | None] | None = None) -> str:
    """``peft 0.21.2, transformers 5.24.0, torch 2.13.0+cpu, safetensors 0.8.0``."""
    versions = stack() if versions is None else versions
    return ", ".join(f"{name} {versions.get(name) or 'not installed'}" for name in TRACKED)
