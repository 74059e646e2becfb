"""The checks a case's ``expect`` may run, one registered function each; a failed check raises CheckFailed.

Default tolerances follow PEFT's own tests: 1e-5 for round trips (``allclose``), 1e-6 as the smallest
change that counts as "differs".
"""

from __future__ import annotations

import re
from typing import Any, Literal

from .context import CaseError, CheckFailed, Context
from .registry import Ref, StepRef, check


def _tensors(value: Any, name: str) -> dict[str, Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return {"": value}
    if isinstance(value, dict) and all(isinstance(v, torch.Tensor) for v in value.values()):
        return value
    raise CaseError(f"{name!r} holds {type(value).__name__}, not tensors (take a 'snapshot' first)")


def _is_tensors(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor) or (
        isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def _pairs(ctx: Context, a: str, b: str) -> list[tuple[str, Any, Any]]:
    left, right = _tensors(ctx.get(a), a), _tensors(ctx.get(b), b)
    if set(left) != set(right):
        only_a, only_b = sorted(set(left) - set(right))[:5], sorted(set(right) - set(left))[:5]
        raise CheckFailed(f"{a} and {b} hold different tensors: only in {a}: {only_a}; only in {b}: {only_b}")
    if not left:
        raise CaseError(f"{a!r} holds no tensor: the snapshot pattern matched nothing")
    pairs = []
    for key in sorted(left):
        if left[key].shape != right[key].shape:
            raise CheckFailed(f"{key or a}: shape {tuple(left[key].shape)} != {tuple(right[key].shape)}")
        pairs.append((key, left[key].float(), right[key].float()))
    return pairs


def _max_diff(x: Any, y: Any) -> float:
    return float((x - y).abs().max()) if x.numel() else 0.0


@check("allclose")
def allclose(ctx: Context, a: Ref, b: Ref, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Every tensor of snapshot ``a`` is close to the one of the same name in ``b``.

    Example::

        - check: allclose
          a: out_loaded
          b: out_trained
          atol: 1e-5
    """
    import torch

    for key, x, y in _pairs(ctx, a, b):
        if not torch.allclose(x, y, atol=atol, rtol=rtol):
            raise CheckFailed(f"{a}{'[' + key + ']' if key else ''} differs from {b}: max |diff| {_max_diff(x, y):.3g} "
                              f"> atol {atol:g} (rtol {rtol:g})")


@check("equal")
def equal(ctx: Context, a: Ref, b: Ref) -> None:
    """Snapshots ``a`` and ``b`` are bit-identical (tensors), or equal (lists, strings, numbers).

    Example::

        - check: equal
          a: lora_saved
          b: lora_loaded
    """
    import torch

    if _is_tensors(ctx.get(a)):
        for key, x, y in _pairs(ctx, a, b):
            if not torch.equal(x, y):
                raise CheckFailed(f"{a}{'[' + key + ']' if key else ''} != {b}: max |diff| {_max_diff(x, y):.3g}")
        return
    left, right = ctx.get(a), ctx.get(b)
    if left != right:
        raise CheckFailed(f"{a} != {b}: {_short(left)} vs {_short(right)}")


@check("differ")
def differ(ctx: Context, a: Ref, b: Ref, atol: float = 1e-6) -> None:
    """Snapshots ``a`` and ``b`` differ somewhere by more than ``atol`` (e.g. merged model vs base).

    Example::

        - check: differ
          a: merged_q
          b: base_q
    """
    if all(_max_diff(x, y) <= atol for _key, x, y in _pairs(ctx, a, b)):
        raise CheckFailed(f"{a} equals {b} within {atol:g}: the adapter had no effect")


@check("same_set")
def same_set(ctx: Context, a: Ref, b: Ref) -> None:
    """Two snapshots of names (``trainable`` or ``keys``) hold the same set.

    Example::

        - check: same_set
          a: trainable_fresh
          b: trainable_reloaded
    """
    left, right = set(ctx.get(a)), set(ctx.get(b))
    if left != right:
        raise CheckFailed(f"{a} ({len(left)}) != {b} ({len(right)}): only in {a}: {sorted(left - right)[:6]}; "
                          f"only in {b}: {sorted(right - left)[:6]}")


@check("keys")
def keys(ctx: Context, of: Ref, pattern: str = ".*", expect: Literal["none", "some", "all"] = "none") -> None:
    """How many names in ``of`` (a list, e.g. ``load2.unexpected``) match ``pattern``: none, some or all.

    Example::

        - check: keys
          of: load2.unexpected
          expect: none
    """
    names = ctx.get(of)
    if not isinstance(names, (list, tuple)):
        raise CaseError(f"{of!r} is not a list of names")
    regex = re.compile(pattern)
    hits = [n for n in names if regex.search(str(n))]
    if expect == "none" and hits:
        raise CheckFailed(f"{len(hits)} of {of} match /{pattern}/: {hits[:6]}")
    if expect == "some" and not hits:
        raise CheckFailed(f"nothing in {of} matches /{pattern}/ (it holds {len(names)}: {list(names)[:6]})")
    if expect == "all" and (not names or len(hits) != len(names)):
        misses = [n for n in names if not regex.search(str(n))]
        raise CheckFailed(f"not all of {of} match /{pattern}/: {misses[:6] or 'it is empty'}")


def _class_names(obj: Any) -> set[str]:
    return {cls.__name__ for cls in type(obj).__mro__}


@check("modules")
def modules(ctx: Context, type: str, model: Ref = "peft", under: str = "",
            expect: Literal["none", "some"] = "none") -> None:
    """Whether any submodule whose dotted path contains ``under`` is a ``type`` (a class name in its MRO).

    Example::

        - check: modules
          under: classifier
          type: LoraLayer
          expect: none
    """
    found = [name for name, module in ctx.get(model).named_modules()
             if under in name and type in _class_names(module)]
    if expect == "none" and found:
        raise CheckFailed(f"{len(found)} {type} module(s) under {under!r}: {found[:4]}")
    if expect == "some" and not found:
        raise CheckFailed(f"no {type} module under {under!r}")


@check("adapters")
def adapters(ctx: Context, model: Ref = "peft", present: list[str] | None = None, absent: list[str] | None = None,
             active: str | None = None) -> None:
    """Adapter names in ``model.peft_config``: which are present, absent, and which is active.

    Example::

        - check: adapters
          present: [first, second]
          active: second
    """
    peft_model = ctx.get(model)
    names = set(peft_model.peft_config)
    missing = sorted(set(present or []) - names)
    extra = sorted(set(absent or []) & names)
    if missing or extra:
        raise CheckFailed(f"adapters {sorted(names)}: missing {missing}, unexpectedly present {extra}")
    if active is not None and peft_model.active_adapter != active:
        raise CheckFailed(f"active adapter is {peft_model.active_adapter!r}, not {active!r}")


def _matching_records(ctx: Context, step: str, category: str, match: str) -> tuple[list[Any], list[Any]]:
    records = ctx.captured.get(step)
    if records is None:
        raise CaseError(f"step {step!r} did not run (skipped by 'when'?)")
    regex = re.compile(match)
    return records, [r for r in records if category in r.categories and regex.search(r.message)]


@check("warns")
def warns(ctx: Context, step: StepRef, match: str, category: str = "Warning") -> None:
    """Step ``step`` emitted a warning (or a peft/transformers log record: category ``log``) matching ``match``.

    Example::

        - check: warns
          step: load
          category: UserWarning
          match: 'Found missing adapter keys'
    """
    records, hits = _matching_records(ctx, step, category, match)
    if not hits:
        raise CheckFailed(f"step {step!r} emitted no {category} matching /{match}/; it emitted: "
                          f"{[str(r)[:120] for r in records][:5]}")


@check("no_warns")
def no_warns(ctx: Context, step: StepRef, match: str = ".*", category: str = "Warning") -> None:
    """Step ``step`` emitted no warning (or log record) of ``category`` matching ``match``.

    Example::

        - check: no_warns
          step: load
          match: 'missing adapter keys'
    """
    _records, hits = _matching_records(ctx, step, category, match)
    if hits:
        raise CheckFailed(f"step {step!r} emitted {category}: {str(hits[0])[:300]}")


@check("value")
def value(ctx: Context, of: Ref, equals: Any) -> None:
    """A field of an object equals a plain value (e.g. ``of: peft.active_adapter``, ``equals: second``).

    Example::

        - check: value
          of: peft.active_adapter
          equals: second
    """
    found = ctx.get(of)
    if found != equals:
        raise CheckFailed(f"{of} is {_short(found)}, expected {_short(equals)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
