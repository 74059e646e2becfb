"""pytest-peft-edges: reproduce known Hugging Face PEFT edge-case bugs on tiny models.

Importing this package is cheap: torch, transformers and peft are imported only by the modules that
build models or run cases, and only when a fixture or case needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"
