"""The steps a case may run, one registered function each.

Every step takes the running :class:`~pytest_peft_edges.context.Context` and the YAML fields as keyword
arguments. torch, transformers and peft are imported inside the steps, so registering them is free.
"""

from __future__ import annotations

from typing import Any, Literal

from .context import CaseError, Context
from .registry import Out, Ref, step


def _peft() -> Any:
    import torch.distributed.tensor  # noqa: F401  (old transformers + new peft need it imported first)
    import peft

    return peft


def _peft_config(config: dict[str, Any] | None, config_type: str) -> Any:
    peft = _peft()
    config_class = getattr(peft, config_type, None)
    if config_class is None or not config_type.endswith("Config"):
        raise CaseError(f"peft {peft.__version__} has no config type {config_type!r}")
    return config_class(**(config or {}))


@step("build_model")
def build_model(ctx: Context, as_: Out = "base", architecture: str = "bert", head: str | None = None,
                seed: int = 0, config: dict[str, Any] | None = None) -> None:
    """Build a tiny model from config with a fixed seed (the case's ``model`` runs this as ``base``).

    ``head`` defaults to ``seq_cls`` (``base`` for the ``mlp`` architecture, whose ``config`` takes
    ``layers``: the dotted module paths, and ``hidden``).

    Example::

        - op: build_model
          as: base2
          architecture: llama
          head: causal_lm
          seed: 0
    """
    from .models import build_model as build

    try:
        ctx.put(as_, build(architecture, head, seed, **(config or {})))
    except ValueError as exc:
        raise CaseError(str(exc)) from None


@step("save_base")
def save_base(ctx: Context, dir: Out, model: Ref = "base") -> None:
    """Save a (base) model's config and safetensors weights into the case directory ``dir``.

    Example::

        - op: save_base
          model: base
          dir: base_dir
    """
    from .models import save_base as save

    ctx.put(dir, save(ctx.get(model), ctx.directory(dir)))


@step("load_base")
def load_base(ctx: Context, dir: Ref, as_: Out = "base", architecture: str = "bert", head: str = "seq_cls") -> None:
    """Load a base model saved by ``save_base`` with ``from_pretrained`` (the class of ``architecture``/``head``).

    Example::

        - op: load_base
          dir: base_dir
          architecture: bert
          head: seq_cls
          as: base2
    """
    import transformers

    from .architectures import HEADS

    if head not in HEADS.get(architecture, {}):
        raise CaseError(f"unknown architecture/head {architecture}/{head}")
    model_class = getattr(transformers, HEADS[architecture][head])
    ctx.put(as_, model_class.from_pretrained(ctx.get(dir)).eval())


@step("get_peft_model")
def get_peft_model(ctx: Context, model: Ref = "base", as_: Out = "peft", config: dict[str, Any] | None = None,
                   config_type: str = "LoraConfig", adapter_name: str = "default") -> None:
    """``peft.get_peft_model(model, <config_type>(**config), adapter_name=...)``; any config field works.

    Example::

        - op: get_peft_model
          config: {task_type: SEQ_CLS, r: 4, lora_alpha: 8, target_modules: [query, value]}
          adapter_name: default
    """
    peft = _peft()
    ctx.put(as_, peft.get_peft_model(ctx.get(model), _peft_config(config, config_type), adapter_name=adapter_name))


@step("add_adapter")
def add_adapter(ctx: Context, adapter_name: str, model: Ref = "peft", config: dict[str, Any] | None = None,
                config_type: str = "LoraConfig") -> None:
    """``PeftModel.add_adapter(adapter_name, <config_type>(**config))``.

    Example::

        - op: add_adapter
          adapter_name: other
          config: {task_type: SEQ_CLS, r: 4, target_modules: [query, value]}
    """
    ctx.get(model).add_adapter(adapter_name, _peft_config(config, config_type))


@step("perturb")
def perturb(ctx: Context, model: Ref = "peft", pattern: str = r"lora_B", seed: int = 0, scale: float = 0.5) -> None:
    """Simulate training: overwrite every parameter whose name matches ``pattern`` with seeded noise.

    Names are visited in sorted order, so the same seed gives the same weights. LoRA B starts at zero:
    without this an adapter that silently did nothing looks correct.

    Example::

        - op: perturb
          pattern: 'lora_B|modules_to_save\\.default'
          seed: 1
    """
    from .standalone import perturb as run

    run(ctx.get(model), pattern, seed, scale)


@step("save_pretrained")
def save_pretrained(ctx: Context, dir: Out, model: Ref = "peft", selected_adapters: list[str] | None = None,
                    safe_serialization: bool = True) -> None:
    """``model.save_pretrained(<case dir>, ...)``: the adapter as PEFT saves it.

    PEFT puts a non-default adapter in a sub-folder named after it; ``dir`` then names that sub-folder
    when it is the only adapter saved.

    Example::

        - op: save_pretrained
          dir: adapter1
    """
    kwargs: dict[str, Any] = {"safe_serialization": safe_serialization}
    if selected_adapters is not None:
        kwargs["selected_adapters"] = selected_adapters
    path = ctx.directory(dir)
    ctx.get(model).save_pretrained(str(path), **kwargs)
    from .standalone import adapter_dir

    ctx.put(dir, adapter_dir(path))


@step("dump_state_dict")
def dump_state_dict(ctx: Context, dir: Out, model: Ref = "peft", pattern: str = r"lora_",
                    adapter_name: str = "default") -> None:
    """Write the raw ``model.state_dict()`` entries matching ``pattern`` as ``adapter_model.safetensors``.

    The keys keep their ``.default.`` segment, as a hand-written training loop would save them; the
    ``adapter_config.json`` beside them is the config of ``adapter_name``.

    Example::

        - op: dump_state_dict
          dir: raw_dump
          pattern: lora_
    """
    from .standalone import dump_state_dict as dump

    ctx.put(dir, dump(ctx.get(model), ctx.directory(dir), pattern, adapter_name))


@step("from_pretrained")
def from_pretrained(ctx: Context, dir: Ref, model: Ref = "base", as_: Out = "peft", adapter_name: str = "default",
                    is_trainable: bool = False, key_mapping: dict[str, str] | None = None) -> None:
    """``PeftModel.from_pretrained(model, dir, adapter_name=..., is_trainable=..., key_mapping=...)``.

    Example::

        - op: from_pretrained
          model: base2
          dir: adapter1
          adapter_name: first
    """
    peft = _peft()
    kwargs: dict[str, Any] = {"adapter_name": adapter_name, "is_trainable": is_trainable}
    if key_mapping is not None:
        kwargs["key_mapping"] = key_mapping
    ctx.put(as_, peft.PeftModel.from_pretrained(ctx.get(model), str(ctx.get(dir)), **kwargs).eval())



@step("load_adapter")
def load_adapter(ctx: Context, dir: Ref, adapter_name: str, model: Ref = "peft", as_: Out = "load",
                 is_trainable: bool = False, key_mapping: dict[str, str] | None = None) -> None:
    """``PeftModel.load_adapter(dir, adapter_name=...)``; ``as`` holds ``missing`` and ``unexpected`` keys.

    Example::

        - op: load_adapter
          dir: adapter2
          adapter_name: second
          as: load2
    """
    kwargs: dict[str, Any] = {"adapter_name": adapter_name, "is_trainable": is_trainable}
    if key_mapping is not None:
        kwargs["key_mapping"] = key_mapping
    from .standalone import load_result

    ctx.put(as_, load_result(ctx.get(model).load_adapter(str(ctx.get(dir)), **kwargs)))


@step("set_adapter")
def set_adapter(ctx: Context, adapter_name: str, model: Ref = "peft",
                level: Literal["peft_model", "tuner"] = "peft_model") -> None:
    """Activate an adapter: ``PeftModel.set_adapter`` or, with ``level: tuner``, ``model.base_model.set_adapter``.

    Example::

        - op: set_adapter
          adapter_name: second
          level: tuner
    """
    peft_model = ctx.get(model)
    target = peft_model if level == "peft_model" else peft_model.base_model
    target.set_adapter(adapter_name)


@step("add_weighted_adapter")
def add_weighted_adapter(ctx: Context, adapters: list[str], weights: list[float], adapter_name: str,
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
    kwargs: dict[str, Any] = {"combination_type": combination_type}
    for key, value in (("svd_rank", svd_rank), ("density", density), ("majority_sign_method", majority_sign_method)):
        if value is not None:
            kwargs[key] = value
    ctx.get(model).add_weighted_adapter(adapters, [float(w) for w in weights], adapter_name, **kwargs)


@step("delete_adapter")
def delete_adapter(ctx: Context, adapter_name: str, model: Ref = "peft") -> None:
    """``PeftModel.delete_adapter(adapter_name)``.

    Example::

        - op: delete_adapter
          adapter_name: second
    """
    ctx.get(model).delete_adapter(adapter_name)


@step("merge_and_unload")
def merge_and_unload(ctx: Context, as_: Out = "merged", model: Ref = "peft") -> None:
    """``merged = model.merge_and_unload()``: the base model with the active adapter merged in.

    Example::

        - op: merge_and_unload
          as: merged
    """
    ctx.put(as_, ctx.get(model).merge_and_unload())


@step("unload")
def unload(ctx: Context, as_: Out = "unloaded", model: Ref = "peft") -> None:
    """``model.unload()``: the base model with every adapter layer removed and nothing merged.

    Example::

        - op: unload
          as: plain
    """
    ctx.put(as_, ctx.get(model).unload())


@step("merge_adapter")
def merge_adapter(ctx: Context, model: Ref = "peft") -> None:
    """``model.merge_adapter()``: merge the active adapter in place (undone by ``unmerge_adapter``).

    Example::

        - op: merge_adapter
    """
    ctx.get(model).merge_adapter()


@step("unmerge_adapter")
def unmerge_adapter(ctx: Context, model: Ref = "peft") -> None:
    """``model.unmerge_adapter()``.

    Example::

        - op: unmerge_adapter
    """
    ctx.get(model).unmerge_adapter()


@step("snapshot")
def snapshot(ctx: Context, as_: Out, model: Ref = "peft",
             kind: Literal["output", "tensors", "trainable", "keys", "delta"] = "output", pattern: str = ".*",
             rename: dict[str, str] | None = None, seed: int = 0, adapter: str = "default") -> None:
    """Record something of a model under ``as`` for later checks.

    ``output``: the logits (or last hidden state) on the deterministic inputs of ``seed``;
    ``tensors``: state_dict entries matching ``pattern``; ``trainable``: names of trainable parameters;
    ``keys``: state_dict keys matching ``pattern``; ``delta``: ``get_delta_weight(adapter)`` of the LoRA
    layers whose module path matches ``pattern`` (the weight change the adapter makes, scaling
    included). ``rename`` maps regex -> replacement on names, so tensors of two adapters with
    different names can be compared.

    Example::

        - op: snapshot
          model: peft
          kind: tensors
          pattern: 'classifier\\.modules_to_save\\.second'
          rename: {'\\.second\\.': '.'}
          as: head2
    """
    from . import standalone

    target = ctx.get(model)
    if kind == "output":
        ctx.put(as_, standalone.output(target, seed))
    elif kind == "tensors":
        ctx.put(as_, standalone.tensors(target, pattern, rename))
    elif kind == "trainable":
        ctx.put(as_, standalone.trainable(target, pattern, rename))
    elif kind == "delta":
        ctx.put(as_, standalone.deltas(target, pattern, adapter))
    else:
        ctx.put(as_, standalone.state_keys(target, pattern, rename))


@step("optimizer_step")
def optimizer_step(ctx: Context, as_: Out = "optimizer", model: Ref = "peft", lr: float = 1e-3, seed: int = 0) -> None:
    """One real AdamW step over the trainable parameters of ``model`` (forward, loss, backward, step).

    Example::

        - op: optimizer_step
          model: fresh
          as: optimizer
    """
    from .standalone import optimizer_step as run

    ctx.put(as_, run(ctx.get(model), lr, seed))


@step("load_optimizer_state")
def load_optimizer_state(ctx: Context, optimizer: Ref, model: Ref, as_: Out = "resumed", lr: float = 1e-3) -> None:
    """Resume: serialize ``optimizer.state_dict()`` and load it into an AdamW over ``model``'s trainable params.

    This is what resuming training from a checkpoint does; a different trainable-parameter set makes
    torch raise ``loaded state dict contains a parameter group that doesn't match the size of
    optimizer's group``.

    Example::

        - op: load_optimizer_state
          optimizer: optimizer
          model: reloaded
    """
    from .standalone import load_optimizer_state as run

    ctx.put(as_, run(ctx.get(optimizer), ctx.get(model), lr))


@step("read_adapter_file")
def read_adapter_file(ctx: Context, dir: Ref, as_: Out) -> None:
    """Read the keys of a saved adapter (``adapter_model.safetensors``) and its config into ``as``.

    ``as`` holds ``keys`` (sorted tensor names) and ``config`` (the adapter_config.json mapping).

    Example::

        - op: read_adapter_file
          dir: adapter1
          as: saved
    """
    from .standalone import read_adapter_file as read

    ctx.put(as_, read(ctx.get(dir)))


# The transformers side of the boundary ------------------------------------------------------------

@step("import_peft")
def import_peft(ctx: Context) -> None:
    """``import peft``: on some (peft, transformers) pairs the import itself fails.

    While peft cannot be imported, every case that does not start with this step is skipped as not
    applicable.

    Example::

        - op: import_peft
    """
    _peft()


@step("transformers_adapter_api")
def transformers_adapter_api(ctx: Context, method: Literal["add_adapter", "set_adapter", "active_adapters",
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
    target = ctx.get(model)
    if method == "add_adapter":
        kwargs = {"adapter_name": adapter_name} if adapter_name is not None else {}
        result = target.add_adapter(_peft_config(config, config_type), **kwargs)
    elif adapter_name is not None:
        result = getattr(target, method)(adapter_name)
    else:
        result = getattr(target, method)()
    ctx.put(as_, result)


@step("transformers_load_adapter")
def transformers_load_adapter(ctx: Context, dir: Ref, model: Ref = "base", adapter_name: str | None = None) -> None:
    """transformers' ``model.load_adapter(dir, adapter_name=...)`` on a plain transformers model.

    Example::

        - op: transformers_load_adapter
          model: fresh
          dir: adapter
    """
    kwargs = {"adapter_name": adapter_name} if adapter_name is not None else {}
    ctx.get(model).load_adapter(str(ctx.get(dir)), **kwargs)
    ctx.get(model).eval()


@step("auto_from_pretrained")
def auto_from_pretrained(ctx: Context, dir: Ref, auto_class: str = "AutoModelForSequenceClassification",
                         as_: Out = "loaded") -> None:
    """``<auto_class>.from_pretrained(adapter_dir)``: transformers' Auto classes or peft's AutoPeftModel*.

    The adapter's config must name a base model on disk (build it with ``save_base`` + ``load_base``).

    Example::

        - op: auto_from_pretrained
          dir: adapter
          auto_class: AutoPeftModelForSequenceClassification
    """
    if not auto_class.isidentifier() or not auto_class.startswith("Auto"):
        raise CaseError(f"auto_class must name an Auto* class, not {auto_class!r}")
    if auto_class.startswith("AutoPeftModel"):
        library = _peft()
    else:
        import transformers as library
    cls = getattr(library, auto_class, None)
    if cls is None:
        raise CaseError(f"{library.__name__} has no {auto_class}")
    ctx.put(as_, cls.from_pretrained(str(ctx.get(dir))).eval())
