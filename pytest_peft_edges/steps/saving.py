"""Steps that save and load adapters: save_pretrained, from_pretrained, load_adapter, the state-dict API,
adapter configs and files."""

from __future__ import annotations

from typing import Any

from ..codegen import Render
from ..registry import Out, Ref, step
from ._common import _config_class, LOAD_RESULT


@step("save_pretrained")
def save_pretrained(r: Render, dir: Out, model: Ref = "peft", selected_adapters: list[str] | None = None,
                    safe_serialization: bool = True, initial: bool = False, convert_from: Ref | None = None) -> None:
    """``model.save_pretrained(<case dir>, ...)``: the adapter as PEFT saves it.

    PEFT puts a non-default adapter in a sub-folder named after it; ``dir`` then names that sub-folder
    when it is the only adapter saved. PiSSA/OLoRA: ``initial: true`` saves the initial adapter with
    ``init_lora_weights=True`` in its config (as PEFT's docs prescribe); ``convert_from`` names that saved
    initial adapter and converts this one to a plain LoRA adapter (``path_initial_model_for_weight_conversion``,
    ``convert_pissa_to_lora`` on peft 0.11).

    Example::

        - op: save_pretrained
          dir: adapter1
    """
    extra = f", selected_adapters={r.lit(selected_adapters)}" if selected_adapters is not None else ""
    if convert_from is not None:
        r("convert = 'path_initial_model_for_weight_conversion' if version_in({'peft': '>=0.12.0'}) else 'convert_pissa_to_lora'")
        r.helper("version_in")
        extra += f", **{{convert: str({r.ref(convert_from)})}}"
    if initial:
        r(f"{r.ref(model)}.peft_config['default'].init_lora_weights = True  # save the initial adapter as the docs say")
    r(f"{r.ref(model)}.save_pretrained({r.path(dir)}, safe_serialization={safe_serialization!r}{extra})")
    saved = set(selected_adapters) if selected_adapters is not None else r.adapters(model)
    if saved is None or not saved or r.set_order:
        r(f"{r.out(dir)} = {r.helper('adapter_dir')}({r.path(dir)})")
        return
    (only,) = saved if len(saved) == 1 else ("default",)
    where = r.path(dir) if only == "default" else f"{r.path(dir)} / {r.lit(only)}"
    r(f"{r.out(dir)} = {where}" + ("  # peft saves a non-default adapter in a sub-folder of its name" if only != "default" else ""))


@step("dump_state_dict")
def dump_state_dict(r: Render, dir: Out, model: Ref = "peft", pattern: str = r"lora_",
                    adapter_name: str = "default") -> None:
    """Write the raw ``model.state_dict()`` entries matching ``pattern`` as ``adapter_model.safetensors``.

    The keys keep their ``.default.`` segment, as a hand-written training loop would save them; the
    ``adapter_config.json`` beside them is the config of ``adapter_name``.

    Example::

        - op: dump_state_dict
          dir: raw_dump
          pattern: lora_
    """
    r("# a raw model.state_dict() dump: the keys still hold the adapter name")
    r(f"{r.out(dir)} = {r.helper('dump_state_dict')}({r.ref(model)}, {r.path(dir)}, {r.lit(pattern)}, "
      f"{r.lit(adapter_name)})")


@step("from_pretrained")
def from_pretrained(r: Render, dir: Ref, model: Ref = "base", as_: Out = "peft", adapter_name: str = "default",
                    is_trainable: bool = False, key_mapping: dict[str, str] | None = None) -> None:
    """``PeftModel.from_pretrained(model, dir, adapter_name=..., is_trainable=..., key_mapping=...)``.

    Example::

        - op: from_pretrained
          model: base2
          dir: adapter1
          adapter_name: first
    """
    kwargs = r.kwargs({"adapter_name": adapter_name, "is_trainable": is_trainable or None, "key_mapping": key_mapping})
    r.adapters(as_, {adapter_name})
    r(f"{r.out(as_)} = peft.PeftModel.from_pretrained({r.ref(model)}, {r.ref(dir)}, {kwargs}).eval()")


@step("load_adapter")
def load_adapter(r: Render, dir: Ref, adapter_name: str, model: Ref = "peft", as_: Out = "load",
                 is_trainable: bool = False, key_mapping: dict[str, str] | None = None) -> None:
    """``PeftModel.load_adapter(dir, adapter_name=...)``; ``as`` holds the ``missing`` and ``unexpected`` keys.

    Example::

        - op: load_adapter
          dir: adapter2
          adapter_name: second
          as: load2
    """
    kwargs = r.kwargs({"adapter_name": adapter_name, "is_trainable": is_trainable or None, "key_mapping": key_mapping})
    r(f"{r.out(as_, aliases=LOAD_RESULT)} = {r.ref(model)}.load_adapter({r.ref(dir)}, {kwargs})")
    r.adapters(model, add=adapter_name)


@step("get_peft_model_state_dict")
def get_peft_model_state_dict(r: Render, model: Ref = "peft", adapter_name: str = "default",
                              as_: Out = "state") -> None:
    """``state = peft.get_peft_model_state_dict(model, adapter_name=...)``: the adapter's tensors by key.

    Checks compare it like a ``tensors`` snapshot; ``keys`` with ``of: state`` reads its keys.

    Example::

        - op: get_peft_model_state_dict
          as: state
    """
    r(f"{r.out(as_)} = peft.get_peft_model_state_dict({r.ref(model)}, adapter_name={r.lit(adapter_name)})")


@step("set_peft_model_state_dict")
def set_peft_model_state_dict(r: Render, state: Ref, model: Ref = "peft", adapter_name: str = "default",
                              as_: Out = "load") -> None:
    """``peft.set_peft_model_state_dict(model, state, adapter_name=...)``; ``as`` holds ``missing``/``unexpected``.

    Example::

        - op: set_peft_model_state_dict
          model: fresh
          state: state
          as: load
    """
    r(f"{r.out(as_, aliases=LOAD_RESULT)} = peft.set_peft_model_state_dict({r.ref(model)}, {r.ref(state)}, "
      f"adapter_name={r.lit(adapter_name)})")


@step("edit_adapter_config")
def edit_adapter_config(r: Render, dir: Ref, set: dict[str, Any] | None = None, remove: list[str] | None = None) -> None:
    """Rewrite ``adapter_config.json`` of a saved adapter: ``set`` fields, ``remove`` fields (an adapter
    saved by another PEFT release: an unknown future field, a missing one).

    Example::

        - op: edit_adapter_config
          dir: adapter
          set: {a_future_field: 1}
    """
    path = f"{r.ref(dir)} / 'adapter_config.json'"
    r(f"saved_config = json.loads(({path}).read_text())")
    r(f"saved_config.update({r.lit(dict(set or {}))})")
    if remove:
        r(f"for field in {r.lit(list(remove))}: saved_config.pop(field, None)")
    r(f"({path}).write_text(json.dumps(saved_config))")


@step("load_config")
def load_config(r: Render, dir: Ref, config_type: str = "PeftConfig", as_: Out = "config") -> None:
    """``config = peft.<config_type>.from_pretrained(dir)``: a saved adapter's config (fields via ``config.r``).

    Example::

        - op: load_config
          dir: adapter
          as: config
    """
    r(f"{r.out(as_)} = {_config_class(config_type)}.from_pretrained({r.ref(dir)})")


@step("read_adapter_file")
def read_adapter_file(r: Render, dir: Ref, as_: Out) -> None:
    """Read the keys of a saved adapter (``adapter_model.safetensors``) and its config into ``as``.

    ``as`` holds ``keys`` (sorted tensor names) and ``config`` (the adapter_config.json mapping).

    Example::

        - op: read_adapter_file
          dir: adapter1
          as: saved
    """
    path = r.ref(dir)
    r(f"{r.out(as_, mapping=True)} = {{'keys': sorted(safetensors.torch.load_file({path} / 'adapter_model.safetensors')), "
      f"'config': json.loads(({path} / 'adapter_config.json').read_text())}}")
