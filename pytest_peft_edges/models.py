"""Tiny transformers models built from config with a fixed seed: offline, bit-identical, milliseconds.

This module imports torch (and builds transformers models); the plugin imports it only inside fixtures
and steps.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from . import helpers
from .architectures import HEADS, TORCH_MODELS, config_kwargs, default_head, model_classes

@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What to build: architecture, head, seed and config overrides."""

    architecture: str = "bert"
    head: str | None = "seq_cls"
    seed: int = 0
    overrides: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.architecture not in HEADS:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; choose one of {sorted(HEADS)}"
            )
        if self.head not in HEADS[self.architecture]:
            raise ValueError(
                f"architecture {self.architecture!r} has no head {self.head!r}; "
                f"choose one of {sorted(HEADS[self.architecture])}"
            )


def build_model(
    architecture: str = "bert", head: str | None = None, seed: int = 0, **overrides: Any
) -> torch.nn.Module:
    """A fresh tiny model in eval mode; the same arguments give bit-identical weights.

    ``head`` defaults to ``seq_cls`` (``base`` for ``mlp``). The global torch RNG is left as it was.
    """
    if architecture in HEADS and head is None:
        head = default_head(architecture)
    spec = ModelSpec(architecture, head, seed, tuple(sorted(overrides.items())))
    config_class, model_class = model_classes(spec.architecture, spec.head)
    kwargs = config_kwargs(architecture, head, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(spec.seed)  # as a build_model step does (codegen.SEED)
        if model_class in TORCH_MODELS:
            return getattr(helpers, TORCH_MODELS[model_class])(**kwargs).eval()
        import transformers

        return getattr(transformers, model_class)(getattr(transformers, config_class)(**kwargs)).eval()


def make_inputs(
    model: torch.nn.Module, batch: int = 2, seq_len: int = 8, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Deterministic ``input_ids`` and ``attention_mask`` for ``model`` (no pad token inside)."""
    return helpers.make_inputs(model, batch, seq_len, seed)


def save_base(model: torch.nn.Module, directory: str | Path) -> Path:
    """Save ``model`` (config + safetensors weights) to ``directory`` and return it."""
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    return directory
