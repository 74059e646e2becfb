"""The steps a case may run: each renders the plain Python it stands for (its only definition).

A step function takes a :class:`~pytest_peft_edges.codegen.Render` and the YAML fields as keyword
arguments, and writes lines with ``r(...)``: YAML values through ``r.lit``/``r.kwargs`` (literals), object
names through ``r.ref``/``r.out`` (identifiers), helpers through ``r.helper`` (:mod:`.helpers`). The
engine runs those lines; ``peft-edges export`` prints them. torch, transformers and peft are the modules
``torch``, ``transformers`` and ``peft`` in that code; ``WORKDIR`` is the case's private directory.
"""

from __future__ import annotations

from typing import Any, Literal

from .architectures import HEADS, TORCH_MODELS, config_kwargs, default_head, model_classes
from .codegen import Render
from .registry import Out, Ref, step


#: What a load returns (torch's ``_IncompatibleKeys``), as the YAML fields name it.
LOAD_RESULT = {"missing": "missing_keys", "unexpected": "unexpected_keys"}


def _config(r: Render, config_type: str, config: dict[str, Any] | None) -> str:
    if not (config_type.isidentifier() and config_type.endswith("Config")):
        raise ValueError(f"config_type {config_type!r} is not a peft config class name")
    return f"peft.{config_type}({r.kwargs(dict(config or {}))})"


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
    r(f"torch.manual_seed({seed!r})")
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


@step("perturb")
def perturb(r: Render, model: Ref = "peft", pattern: str = r"lora_B", seed: int = 0, scale: float = 0.5) -> None:
    """Simulate training: overwrite every parameter whose name matches ``pattern`` (``re.search``) with seeded noise.

    Names are visited in sorted order, so the same seed gives the same weights. LoRA B starts at zero:
    without this an adapter that silently did nothing looks correct. No match is a case error.

    Example::

        - op: perturb
          pattern: 'lora_B|modules_to_save\\.default'
          seed: 1
    """
    r(f"{r.helper('perturb')}({r.ref(model)}, {r.lit(pattern)}, seed={seed!r}, scale={scale!r})  # simulate training")


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
    if not (config_type.isidentifier() and config_type.endswith("Config")):
        raise ValueError(f"config_type {config_type!r} is not a peft config class name")
    r(f"{r.out(as_)} = peft.{config_type}.from_pretrained({r.ref(dir)})")


@step("loraplus_optimizer")
def loraplus_optimizer(r: Render, model: Ref = "peft", as_: Out = "loraplus", lr: float = 1e-3,
                       loraplus_lr_ratio: float = 16.0, loraplus_lr_embedding: float = 1e-6) -> None:
    """``peft.optimizers.create_loraplus_optimizer(...)`` (AdamW); ``as`` maps each parameter group
    (``groupA``, ``embedding``, ``groupB``, ``groupB_no_decay``: peft's order) to its sorted parameter names.

    Example::

        - op: loraplus_optimizer
          as: groups
    """
    r("from peft.optimizers import create_loraplus_optimizer")
    r(f"optimizer = create_loraplus_optimizer(model={r.ref(model)}, optimizer_cls=torch.optim.AdamW, lr={lr!r}, "
      f"loraplus_lr_ratio={loraplus_lr_ratio!r}, loraplus_lr_embedding={loraplus_lr_embedding!r})")
    r(f"names = {{id(p): n for n, p in {r.ref(model)}.named_parameters()}}")
    r(f"{r.out(as_, mapping=True)} = {{label: sorted(names[id(p)] for p in group['params']) for label, group in "
      "zip(['groupA', 'embedding', 'groupB', 'groupB_no_decay'], optimizer.param_groups)}")


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


@step("snapshot")
def snapshot(r: Render, as_: Out, model: Ref = "peft",
             kind: Literal["output", "tensors", "trainable", "keys", "delta"] = "output", pattern: str = ".*",
             rename: dict[str, str] | None = None, seed: int = 0, adapter: str = "default",
             disabled: bool = False, adapter_names: list[str] | None = None, use_inputs_embeds: bool = False) -> None:
    """Record something of a model under ``as`` for later checks.

    ``output``: the logits (or last hidden state) on the deterministic inputs of ``seed`` (``disabled:
    true``: inside ``with model.disable_adapter()``; ``adapter_names``: one adapter per sample of the
    batch of 2, ``__base__`` for none: mixed-batch inference; ``use_inputs_embeds``: the embeddings of the
    ids instead of the ids); ``tensors``: state_dict entries matching ``pattern``
    (``re.search``); ``trainable``: names of trainable parameters; ``keys``: state_dict keys matching
    ``pattern``; ``delta``: ``get_delta_weight(adapter)`` of the LoRA layers whose module path matches
    ``pattern`` (the weight change the adapter makes, scaling included). ``rename`` maps regex ->
    replacement on names, so tensors of two adapters with different names can be compared.

    Example::

        - op: snapshot
          model: peft
          kind: tensors
          pattern: 'classifier\\.modules_to_save\\.second'
          rename: {'\\.second\\.': '.'}
          as: head2
    """
    target = r.ref(model)
    if kind == "output" and disabled:
        r(f"with {target}.disable_adapter():")
        r(f"    {r.out(as_)} = {r.helper('output')}({target}, seed={seed!r})")
        return
    if kind == "output":
        names = f", adapter_names={r.lit(adapter_names)}" if adapter_names is not None else ""
        embeds = ", inputs_embeds=True" if use_inputs_embeds else ""
        if use_inputs_embeds:
            r.names.kinds.add("inputs_embeds")
        r(f"{r.out(as_)} = {r.helper('output')}({target}, seed={seed!r}{names}{embeds})")
        return
    if kind == "delta":
        r(f"{r.out(as_)} = {r.helper('deltas')}({target}, {r.lit(pattern)}, adapter={r.lit(adapter)})")
        return
    name = "name"
    for old, new in (rename or {}).items():
        name = f"re.sub({r.lit(old)}, {r.lit(new)}, {name})"
    where = f"if re.search({r.lit(pattern)}, name)"
    if kind == "tensors":
        code = f"{{{name}: tensor.clone() for name, tensor in {target}.state_dict().items() {where}}}"
    elif kind == "trainable":
        code = f"sorted({name} for name, p in {target}.named_parameters() if p.requires_grad and re.search({r.lit(pattern)}, name))"
    else:
        code = f"sorted({name} for name in {target}.state_dict() {where})"
    r(f"{r.out(as_)} = {code}")


@step("generate")
def generate(r: Render, as_: Out, model: Ref = "peft", max_new_tokens: int = 4, seed: int = 0,
             kwargs: dict[str, Any] | None = None, rows: list[int] | None = None) -> None:
    """Greedy ``model.generate(...)`` on the deterministic inputs of ``seed``; ``as`` holds the ids.

    ``kwargs`` go to ``generate`` (e.g. ``num_beams``, ``adapter_names``); ``rows`` keeps those rows.

    Example::

        - op: generate
          as: ids
          max_new_tokens: 4
    """
    extra = f", {r.kwargs(dict(kwargs))}" if kwargs else ""
    keep = f"[{r.lit(list(rows))}]" if rows is not None else ""
    r(f"{r.out(as_)} = {r.helper('generate')}({r.ref(model)}, max_new_tokens={max_new_tokens!r}, seed={seed!r}{extra}){keep}")


@step("greedy_decode")
def greedy_decode(r: Render, as_: Out, model: Ref = "peft", max_new_tokens: int = 4, seed: int = 0) -> None:
    """The reference ``generate`` must equal: greedy decoding of a causal LM by repeated full forward
    passes (no cache) on the inputs of ``seed``; ``as`` holds prompt + new ids.

    Example::

        - op: greedy_decode
          as: reference
    """
    r(f"{r.out(as_)} = {r.helper('greedy_decode')}({r.ref(model)}, max_new_tokens={max_new_tokens!r}, seed={seed!r})")


@step("optimizer_step")
def optimizer_step(r: Render, as_: Out = "optimizer", model: Ref = "peft", lr: float = 1e-3, seed: int = 0) -> None:
    """One real AdamW step over the trainable parameters of ``model`` (forward, loss, backward, step).

    Example::

        - op: optimizer_step
          model: fresh
          as: optimizer
    """
    r(f"{r.out(as_)} = {r.helper('optimizer_step')}({r.ref(model)}, lr={lr!r}, seed={seed!r})")


@step("load_optimizer_state")
def load_optimizer_state(r: Render, optimizer: Ref, model: Ref, as_: Out = "resumed", lr: float = 1e-3) -> None:
    """Resume: serialize ``optimizer.state_dict()`` and load it into an AdamW over ``model``'s trainable params.

    This is what resuming training from a checkpoint does; a different trainable-parameter set makes
    torch raise ``loaded state dict contains a parameter group that doesn't match the size of
    optimizer's group``.

    Example::

        - op: load_optimizer_state
          optimizer: optimizer
          model: reloaded
    """
    r("# resume training: the optimizer state of one model loaded for the other")
    r(f"{r.out(as_)} = {r.helper('load_optimizer_state')}({r.ref(optimizer)}, {r.ref(model)}, lr={lr!r})")


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


# The transformers side of the boundary ------------------------------------------------------------

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
