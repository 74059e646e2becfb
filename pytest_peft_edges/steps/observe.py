"""Steps that simulate training and record what a model does: perturb, snapshots, generate, optimizers."""

from __future__ import annotations

from typing import Any, Literal

from ..codegen import Render
from ..registry import Out, Ref, step


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
