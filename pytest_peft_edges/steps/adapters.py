"""Steps that add, activate, combine, delete and hot-swap adapters, and call allowed methods."""

from __future__ import annotations

from typing import Any, Literal

from ..codegen import Render
from ..registry import Out, Ref, step
from ._common import _config


@step("get_peft_model")
def get_peft_model(r: Render, model: Ref = "base", as_: Out = "peft", config: dict[str, Any] | None = None,
                   config_type: str = "LoraConfig", adapter_name: str = "default", mixed: bool = False) -> None:
    """``peft.get_peft_model(model, <config_type>(**config), adapter_name=...)``; any config field works;
    ``mixed: true`` makes a ``PeftMixedModel`` (LoRA, LoHa, LoKr, OFT ... adapters side by side).

    Example::

        - op: get_peft_model
          config: {task_type: SEQ_CLS, r: 4, lora_alpha: 8, target_modules: [query, value]}
          adapter_name: default
    """
    extra = ", mixed=True" if mixed else ""
    r(f"{r.out(as_)} = peft.get_peft_model({r.ref(model)}, {_config(r, config_type, config)}, "
      f"adapter_name={r.lit(adapter_name)}{extra})")
    r.adapters(as_, {adapter_name})


@step("add_adapter")
def add_adapter(r: Render, adapter_name: str, model: Ref = "peft", config: dict[str, Any] | None = None,
                config_type: str = "LoraConfig") -> None:
    """``PeftModel.add_adapter(adapter_name, <config_type>(**config))``.

    Example::

        - op: add_adapter
          adapter_name: other
          config: {task_type: SEQ_CLS, r: 4, target_modules: [query, value]}
    """
    r(f"{r.ref(model)}.add_adapter({r.lit(adapter_name)}, {_config(r, config_type, config)})")
    r.adapters(model, add=adapter_name)


@step("set_adapter")
def set_adapter(r: Render, adapter_name: str | list[str], model: Ref = "peft",
                level: Literal["peft_model", "tuner"] = "peft_model") -> None:
    """Activate adapters: ``PeftModel.set_adapter`` or, with ``level: tuner``, ``model.base_model.set_adapter``
    (the tuner also takes a list of names: several active adapters).

    Example::

        - op: set_adapter
          adapter_name: second
          level: tuner
    """
    r(f"{r.ref(model)}{'.base_model' if level == 'tuner' else ''}.set_adapter({r.lit(adapter_name)})")


@step("add_weighted_adapter")
def add_weighted_adapter(r: Render, adapters: list[str], weights: list[float], adapter_name: str,
                         model: Ref = "peft", combination_type: str = "svd", svd_rank: int | None = None,
                         density: float | None = None, majority_sign_method: str | None = None) -> None:
    """``add_weighted_adapter(adapters, weights, adapter_name, combination_type=...)`` (negative weights allowed).

    Example::

        - op: add_weighted_adapter
          adapters: [first, second]
          weights: [0.5, 0.5]
          adapter_name: merged
          combination_type: linear
    """
    kwargs = r.kwargs({"combination_type": combination_type, "svd_rank": svd_rank, "density": density,
                       "majority_sign_method": majority_sign_method})
    r(f"{r.ref(model)}.add_weighted_adapter({r.lit(adapters)}, {r.lit([float(w) for w in weights])}, "
      f"{r.lit(adapter_name)}, {kwargs})")
    r.adapters(model, add=adapter_name)


def _method(name: str, doc: str, with_adapter: bool = False, returns: str | None = None) -> None:
    """Register a step that is one method call on a model."""

    if with_adapter:
        def render(r: Render, adapter_name: str, model: Ref = "peft") -> None:
            r(f"{r.ref(model)}.{name}({r.lit(adapter_name)})")
            r.adapters(model, remove=adapter_name)
    elif returns is not None:
        def render(r: Render, as_: Out = returns, model: Ref = "peft") -> None:  # type: ignore[misc]
            r(f"{r.out(as_)} = {r.ref(model)}.{name}()")
    else:
        def render(r: Render, model: Ref = "peft") -> None:  # type: ignore[misc]
            r(f"{r.ref(model)}.{name}()")
    render.__doc__ = doc
    step(name)(render)


_method("delete_adapter", """``PeftModel.delete_adapter(adapter_name)``.

    Example::

        - op: delete_adapter
          adapter_name: second
    """, with_adapter=True)
_method("merge_and_unload", """``merged = model.merge_and_unload()``: the base model with the active adapter merged in.

    Example::

        - op: merge_and_unload
          as: merged
    """, returns="merged")
_method("unload", """``model.unload()``: the base model with every adapter layer removed and nothing merged.

    Example::

        - op: unload
          as: plain
    """, returns="unloaded")
_method("merge_adapter", """``model.merge_adapter()``: merge the active adapter in place (undone by ``unmerge_adapter``).

    Example::

        - op: merge_adapter
    """)
_method("unmerge_adapter", """``model.unmerge_adapter()``.

    Example::

        - op: unmerge_adapter
    """)

#: Methods the ``call`` step may call: adapter bookkeeping that takes no path and runs no code by name.
CALLABLE = ("active_adapters", "add_adapter", "delete_adapter", "disable_adapter_layers", "enable_adapter_layers",
            "eval", "get_nb_trainable_parameters", "get_model_status", "get_layer_status", "merge_adapter",
            "merge_and_unload", "print_trainable_parameters", "set_adapter", "set_requires_grad", "train",
            "unload", "unmerge_adapter", "enable_input_require_grads", "resize_token_embeddings", "get_base_model",
            "get_latest_scalings", "set_scale", "scale_layer", "unscale_layer", "update_and_allocate",
            "set_additional_trainable_modules", "disable_input_require_grads", "tie_weights")


@step("call")
def call(r: Render, method: Literal[CALLABLE], model: Ref = "peft", args: list[Any] | None = None,  # type: ignore[valid-type]
         kwargs: dict[str, Any] | None = None, as_: Out | None = None, level: Literal["peft_model", "tuner"] = "peft_model",
         module: str | None = None) -> None:
    """``result = model.<method>(*args, **kwargs)`` for a method of the allow-list; plain YAML arguments only.

    ``module`` calls it on a submodule instead (``model.get_submodule(module)``, e.g. a LoRA layer's
    ``set_scale``); ``level: tuner`` calls it on ``model.base_model``. Methods: see the type of ``method``.

    Example::

        - op: call
          method: disable_adapter_layers
    """
    target = f"{r.ref(model)}{'.base_model' if level == 'tuner' else ''}"
    if module is not None:
        target += f".get_submodule({r.lit(module)})"
    arguments = [r.lit(value) for value in args or []]
    if kwargs:
        arguments.append(r.kwargs(dict(kwargs)))
    code = f"{target}.{method}({', '.join(arguments)})"
    r(f"{r.out(as_)} = {code}" if as_ is not None else code)
    if method in ("add_adapter", "delete_adapter"):
        r.names.adapters[model.split(".")[0]] = None


@step("hotswap_adapter")
def hotswap_adapter(r: Render, dir: Ref, model: Ref = "peft", adapter_name: str = "default") -> None:
    """``peft.utils.hotswap.hotswap_adapter(model, dir, adapter_name=...)``: replace an adapter's weights in place.

    Example::

        - op: hotswap_adapter
          dir: adapter2
    """
    r("from peft.utils.hotswap import hotswap_adapter")
    r(f"hotswap_adapter({r.ref(model)}, str({r.ref(dir)}), adapter_name={r.lit(adapter_name)})")


@step("prepare_model_for_compiled_hotswap")
def prepare_model_for_compiled_hotswap(r: Render, model: Ref = "peft", target_rank: int | None = None,
                                       config: dict[str, Any] | None = None) -> None:
    """``peft.utils.hotswap.prepare_model_for_compiled_hotswap(model, target_rank=..., config=...)``.

    Example::

        - op: prepare_model_for_compiled_hotswap
          target_rank: 8
    """
    r("from peft.utils.hotswap import prepare_model_for_compiled_hotswap")
    r(f"prepare_model_for_compiled_hotswap({r.ref(model)}, {r.kwargs({'target_rank': target_rank, 'config': config})})")
