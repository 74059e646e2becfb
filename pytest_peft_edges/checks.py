"""The checks a case's ``expect`` may run, one registered function each; a failed check raises CheckFailed.

Each check resolves its references and calls the shared implementation in :mod:`.standalone` (the same
code exported scripts run). Default tolerances follow PEFT's own tests: 1e-5 for round trips
(``allclose``), 1e-6 as the smallest change that counts as "differs".
"""

from __future__ import annotations

from typing import Any, Literal

from .context import Context
from .registry import Ref, Refs, StepRef, check


def _impl() -> Any:
    from . import standalone

    return standalone


@check("allclose")
def allclose(ctx: Context, a: Ref, b: Ref, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Every tensor of snapshot ``a`` is close to the one of the same name in ``b``.

    Example::

        - check: allclose
          a: out_loaded
          b: out_trained
          atol: 1e-5
    """
    _impl().check_allclose(ctx.get(a), ctx.get(b), atol, rtol, (a, b))


@check("equal")
def equal(ctx: Context, a: Ref, b: Ref) -> None:
    """Snapshots ``a`` and ``b`` are bit-identical (tensors), or equal (lists, strings, numbers).

    Example::

        - check: equal
          a: lora_saved
          b: lora_loaded
    """
    _impl().check_equal(ctx.get(a), ctx.get(b), (a, b))


@check("differ")
def differ(ctx: Context, a: Ref, b: Ref, atol: float = 1e-6) -> None:
    """Snapshots ``a`` and ``b`` differ somewhere by more than ``atol`` (e.g. merged model vs base).

    Example::

        - check: differ
          a: merged_q
          b: base_q
    """
    _impl().check_differ(ctx.get(a), ctx.get(b), atol, (a, b))


@check("combination")
def combination(ctx: Context, terms: Refs, atol: float = 1e-5) -> None:
    """``sum(coefficient * snapshot)`` over ``terms`` is zero within ``atol``, tensor by tensor.

    Use it for the arithmetic of merges: a weighted adapter's delta against the deltas it combines.

    Example::

        - check: combination
          terms: {delta_negated: 1.0, delta_other: 1.0}
          atol: 1e-6
    """
    for name in terms:
        ctx.get(name)
    _impl().check_combination([(coef, ctx.get(name)) for name, coef in terms.items()], atol, list(terms))


@check("same_set")
def same_set(ctx: Context, a: Ref, b: Ref) -> None:
    """Two snapshots of names (``trainable`` or ``keys``) hold the same set.

    Example::

        - check: same_set
          a: trainable_fresh
          b: trainable_reloaded
    """
    _impl().check_same_set(ctx.get(a), ctx.get(b), (a, b))


@check("keys")
def keys(ctx: Context, of: Ref, pattern: str = ".*", expect: Literal["none", "some", "all"] = "none") -> None:
    """How many names in ``of`` (a list, e.g. ``load2.unexpected``) match ``pattern``: none, some or all.

    Example::

        - check: keys
          of: load2.unexpected
          expect: none
    """
    _impl().check_keys(ctx.get(of), pattern, expect, of)


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
    _impl().check_modules(ctx.get(model), type, under, expect)


@check("adapters")
def adapters(ctx: Context, model: Ref = "peft", present: list[str] | None = None, absent: list[str] | None = None,
             active: str | None = None) -> None:
    """Adapter names in ``model.peft_config``: which are present, absent, and which is active.

    Example::

        - check: adapters
          present: [first, second]
          active: second
    """
    _impl().check_adapters(ctx.get(model), present, absent, active)


@check("warns")
def warns(ctx: Context, step: StepRef, match: str, category: str = "Warning") -> None:
    """Step ``step`` emitted a warning (or a peft/transformers log record: category ``log``) matching ``match``.

    Example::

        - check: warns
          step: load
          category: UserWarning
          match: 'Found missing adapter keys'
    """
    _impl().check_warns(ctx.records(step), match, category, step)


@check("no_warns")
def no_warns(ctx: Context, step: StepRef, match: str = ".*", category: str = "Warning") -> None:
    """Step ``step`` emitted no warning (or log record) of ``category`` matching ``match``.

    Example::

        - check: no_warns
          step: load
          match: 'missing adapter keys'
    """
    _impl().check_no_warns(ctx.records(step), match, category, step)


@check("value")
def value(ctx: Context, of: Ref, equals: Any) -> None:
    """A field of an object equals a plain value (e.g. ``of: peft.active_adapter``, ``equals: second``).

    Example::

        - check: value
          of: peft.active_adapter
          equals: second
    """
    _impl().check_value(ctx.get(of), equals, of)
