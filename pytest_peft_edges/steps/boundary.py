"""The transformers side of the boundary: transformers' own PEFT integration and Auto classes."""

from __future__ import annotations

from typing import Any, Literal

from ..codegen import Render
from ..registry import Out, Ref, step
from ._common import _config


@step("import_peft")
def import_peft(r: Render) -> None:
    """``import peft``: on some (peft, transformers) pairs the import itself fails.

    While peft cannot be imported, every case that does not start with this step is skipped as not
    applicable.

    Example::

        - op: import_peft
    """
    r("import peft")


@step("transformers_adapter_api")
def transformers_adapter_api(r: Render, method: Literal["add_adapter", "set_adapter", "active_adapters",
                                                         "enable_adapters", "disable_adapters",
                                                         "get_adapter_state_dict", "delete_adapter"],
                             model: Ref = "base", as_: Out = "result", adapter_name: str | None = None,
                             config: dict[str, Any] | None = None, config_type: str = "LoraConfig") -> None:
    """Call transformers' own PEFT integration on a plain transformers model (``model.<method>(...)``).

    ``add_adapter`` takes ``config`` (a peft config) and ``adapter_name``; the others take
    ``adapter_name`` where they accept one. The return value is stored under ``as``.

    Example::

        - op: transformers_adapter_api
          method: add_adapter
          adapter_name: default
          config: {r: 4, target_modules: [query, value]}
    """
    arguments = []
    if method == "add_adapter":
        arguments.append(_config(r, config_type, config))
        if adapter_name is not None:
            arguments.append(f"adapter_name={r.lit(adapter_name)}")
    elif adapter_name is not None:
        arguments.append(r.lit(adapter_name))
    r(f"{r.out(as_)} = {r.ref(model)}.{method}({', '.join(arguments)})")


@step("transformers_load_adapter")
def transformers_load_adapter(r: Render, dir: Ref, model: Ref = "base", adapter_name: str | None = None) -> None:
    """transformers' ``model.load_adapter(dir, adapter_name=...)`` on a plain transformers model.

    Example::

        - op: transformers_load_adapter
          model: fresh
          dir: adapter
    """
    name = f", adapter_name={r.lit(adapter_name)}" if adapter_name is not None else ""
    r(f"{r.ref(model)}.load_adapter({r.ref(dir)}{name})  # transformers' own PEFT integration")
    r(f"{r.ref(model)}.eval()")


@step("auto_from_pretrained")
def auto_from_pretrained(r: Render, dir: Ref, auto_class: str = "AutoModelForSequenceClassification",
                         as_: Out = "loaded") -> None:
    """``<auto_class>.from_pretrained(adapter_dir)``: transformers' Auto classes or peft's AutoPeftModel*.

    The adapter's config must name a base model on disk (build it with ``save_base`` + ``load_base``).

    Example::

        - op: auto_from_pretrained
          dir: adapter
          auto_class: AutoPeftModelForSequenceClassification
    """
    if not (auto_class.isidentifier() and auto_class.startswith("Auto")):
        raise ValueError(f"auto_class must name an Auto* class, not {auto_class!r}")
    library = "peft" if auto_class.startswith("AutoPeftModel") else "transformers"
    r(f"{r.out(as_)} = {library}.{auto_class}.from_pretrained(str({r.ref(dir)})).eval()")
