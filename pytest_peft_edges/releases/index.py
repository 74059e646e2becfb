"""The release index: which peft releases the project supports, with which transformers.

peft is pure Python, so every peft release of the supported range runs in one shared environment (torch
and ``BASE_TRANSFORMERS`` installed once) with the release itself on ``PYTHONPATH``. The transformers-5
boundary pairs need one environment per transformers release (transformers 5 needs huggingface_hub 1.x).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

#: Every peft release on PyPI from 0.6.2 to 0.21.2, oldest first (the supported range).
PEFT_RELEASES: tuple[str, ...] = (
    "0.6.2", "0.7.0", "0.7.1", "0.8.0", "0.8.1", "0.8.2", "0.9.0", "0.10.0", "0.11.0", "0.11.1", "0.12.0",
    "0.13.0", "0.13.1", "0.13.2", "0.14.0", "0.15.0", "0.15.1", "0.15.2", "0.16.0", "0.17.0", "0.17.1",
    "0.18.0", "0.18.1", "0.19.0", "0.19.1", "0.20.0", "0.21.0", "0.21.1", "0.21.2",
)
#: The transformers release every peft release of the range imports with.
BASE_TRANSFORMERS = "4.57.6"
#: (peft, transformers) pairs across the transformers-5 boundary (the tox ``full`` label's tf5 envs).
BOUNDARY_PAIRS: tuple[tuple[str, str], ...] = (
    ("0.17.1", "5.0.0"), ("0.18.1", "5.0.0"), ("0.18.1", "5.10.2"), ("0.18.1", "5.24.0"), ("0.19.1", "5.5.4"),
    ("0.20.0", "5.14.1"), ("0.20.0", "5.18.0"), ("0.21.2", "5.23.0"), ("0.21.2", "5.24.0"),
)


@dataclasses.dataclass(frozen=True)
class ReleaseIndex:
    """The peft releases (oldest first), the base transformers release and the boundary pairs."""

    peft: tuple[str, ...] = PEFT_RELEASES
    transformers: str = BASE_TRANSFORMERS
    boundary: tuple[tuple[str, str], ...] = BOUNDARY_PAIRS

    def __post_init__(self) -> None:
        versions = [parse(v) for v in self.peft]
        if not versions or versions != sorted(versions) or len(set(versions)) != len(versions):
            raise ValueError("the release index must list distinct peft releases, oldest first")

    def between(self, first: str | None = None, last: str | None = None) -> list[str]:
        """The releases from ``first`` to ``last`` (inclusive; each must be in the index)."""
        lo = self.position(first) if first else 0
        hi = self.position(last) if last else len(self.peft) - 1
        if lo > hi:
            raise ValueError(f"--from {first} is newer than --to {last}")
        return list(self.peft[lo:hi + 1])

    def position(self, version: str) -> int:
        try:
            wanted = parse(version)
        except ValueError:
            raise ValueError(f"not a version: {version!r}") from None
        for position, release in enumerate(self.peft):
            if parse(release) == wanted:
                return position
        raise ValueError(f"peft {version} is not a release of the index ({self.peft[0]} ... {self.peft[-1]})")


def parse(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise ValueError(f"not a version: {text!r}") from None


def load_index(path: str | Path | None = None) -> ReleaseIndex:
    """The built-in index, or one read from a JSON file ``{"peft": [...], "transformers": "...",
    "boundary": [[peft, transformers], ...]}`` (all keys optional)."""
    if path is None:
        return ReleaseIndex()
    try:
        data: Any = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the release index: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a release index is a JSON object")
    return ReleaseIndex(peft=tuple(data.get("peft", PEFT_RELEASES)),
                        transformers=data.get("transformers", BASE_TRANSFORMERS),
                        boundary=tuple(tuple(pair) for pair in data.get("boundary", BOUNDARY_PAIRS)))
