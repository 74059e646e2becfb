"""Steps that build, save and load the tiny base models."""

from __future__ import annotations

from typing import Any, Literal

from ..architectures import HEADS, TORCH_MODELS, config_kwargs, default_head, model_classes
from ..codegen import SEED, Render
from ..registry import Out, Ref, step


@step("build_model")
def build_model(r: Render, as_: Out = "base", architecture: str = "bert", head: str | None = None,
                seed: int = 0, config: dict[str, Any] | None = None,
                dtype: Literal["float32", "bfloat16", "float16"] | None = None) -> None:
    """Build a tiny model from config with a fixed seed (the case's ``model`` runs this as ``base``).

    ``head`` defaults to ``seq_cls`` (``base`` for the plain torch models ``mlp``, ``conv`` and ``mha``:
    ``mlp``'s ``config`` takes ``layers``, the dotted module paths, and ``hidden``; ``conv``'s takes
    ``kind`` conv1d/conv2d/conv3d, ``channels``, ``out_channels``, ``kernel_size``, ``groups``, ``size``;
    ``mha``'s takes ``hidden``, ``heads`` and ``call`` keywords/positional). The same seed gives
    bit-identical weights; ``dtype`` casts the built model.

    Example::

        - op: build_model
          as: base2
          architecture: llama
          head: causal_lm
          seed: 0
    """
    head = head or default_head(architecture)
    if head not in HEADS.get(architecture, {}):
        raise ValueError(f"unknown architecture/head {architecture}/{head}")
    config_class, model_class = model_classes(architecture, head)
    r.names.architectures.add(architecture)
    kwargs = r.kwargs(config_kwargs(architecture, head, **(config or {})))
    cast = f".to(torch.{dtype})" if dtype else ""
    r(f"{SEED}({seed!r})")
    if model_class in TORCH_MODELS:
        r(f"{r.out(as_)} = {r.helper(TORCH_MODELS[model_class])}({kwargs}).eval(){cast}")
    else:
        r(f"{r.out(as_)} = transformers.{model_class}(transformers.{config_class}({kwargs})).eval(){cast}")


@step("save_base")
def save_base(r: Render, dir: Out, model: Ref = "base") -> None:
    """Save a (base) model's config and safetensors weights into the case directory ``dir``.

    Example::

        - op: save_base
          model: base
          dir: base_dir
    """
    r(f"{r.out(dir)} = {r.path(dir)}")
    r(f"{r.ref(model)}.save_pretrained({r.out(dir)}, safe_serialization=True)")


@step("load_base")
def load_base(r: Render, dir: Ref, as_: Out = "base", architecture: str = "bert", head: str = "seq_cls") -> None:
    """Load a base model saved by ``save_base`` with ``from_pretrained`` (the class of ``architecture``/``head``).

    Example::

        - op: load_base
          dir: base_dir
          architecture: bert
          head: seq_cls
          as: base2
    """
    if head not in HEADS.get(architecture, {}):
        raise ValueError(f"unknown architecture/head {architecture}/{head}")
    _config_class, model_class = model_classes(architecture, head)
    r.names.architectures.add(architecture)
    r(f"{r.out(as_)} = transformers.{model_class}.from_pretrained({r.ref(dir)}).eval()")
