"""The checks a case's ``expect`` may run: each renders one line, ``fail(id, <what differs, or None>)``.

Like a step (:mod:`.steps`), a check is one function writing the code it stands for (``r.check``): an
expression that is None when the fixed behaviour holds and otherwise says what differs, mostly a call
of a check helper of :mod:`.helpers`.
The engine records every failing check; an exported script collects them and judges at the end.
Default tolerances follow PEFT's own tests: 1e-5 for round trips, 1e-6 as the smallest change that
counts as "differs".
"""

from __future__ import annotations

from typing import Any, Literal

from . import codegen
from .codegen import Render
from .registry import Ref, Refs, StepRef, check


@check("allclose")
def allclose(r: Render, a: Ref, b: Ref, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Every tensor of snapshot ``a`` is close to the one of the same name in ``b`` (``torch.allclose``).

    Example::

        - check: allclose
          a: out_loaded
          b: out_trained
          atol: 1e-5
    """
    r.check(f"{r.helper('differs')}({r.ref(a)}, {r.ref(b)}, atol={atol!r}, rtol={rtol!r}, names=({a!r}, {b!r}))")



@check("equal")
def equal(r: Render, a: Ref, b: Ref) -> None:
    """Snapshots ``a`` and ``b`` are bit-identical (tensors), or equal (lists, strings, numbers).

    Example::

        - check: equal
          a: lora_saved
          b: lora_loaded
    """
    r.check(f"{r.helper('differs')}({r.ref(a)}, {r.ref(b)}, names=({a!r}, {b!r}))")



@check("differ")
def differ(r: Render, a: Ref, b: Ref, atol: float = 1e-6) -> None:
    """Snapshots ``a`` and ``b`` differ somewhere by more than ``atol`` (e.g. merged model vs base).

    Example::

        - check: differ
          a: merged_q
          b: base_q
    """
    r.check(f"{r.helper('no_difference')}({r.ref(a)}, {r.ref(b)}, atol={atol!r}, names=({a!r}, {b!r}))")



@check("combination")
def combination(r: Render, terms: Refs, atol: float = 1e-5) -> None:
    """``sum(coefficient * snapshot)`` over ``terms`` is zero within ``atol``, tensor by tensor.

    Use it for the arithmetic of merges: a weighted adapter's delta against the deltas it combines.

    Example::

        - check: combination
          terms: {delta_negated: 1.0, delta_other: 1.0}
          atol: 1e-6
    """
    parts = ", ".join(f"{name!r}: ({float(coef)!r}, {r.ref(name)})" for name, coef in terms.items())
    r.check(f"{r.helper('nonzero_sum')}({{{parts}}}, atol={atol!r})")



@check("same_set")
def same_set(r: Render, a: Ref, b: Ref) -> None:
    """Two snapshots of names (``trainable`` or ``keys``) hold the same set.

    Example::

        - check: same_set
          a: trainable_fresh
          b: trainable_reloaded
    """
    r.check(f"{r.helper('set_difference')}({r.ref(a)}, {r.ref(b)}, names=({a!r}, {b!r}))")



@check("keys")
def keys(r: Render, of: Ref, pattern: str = ".*", expect: Literal["none", "some", "all"] = "none") -> None:
    """How many names in ``of`` (a list such as ``load2.unexpected``, or the keys of a state dict) match
    ``pattern`` (``re.search``): none, some or all. The failure message lists the names that match
    (``none``) or do not match (``all``).

    Example::

        - check: keys
          of: load2.unexpected
          expect: none
    """
    hits = f"[name for name in {r.ref(of)} if re.search({pattern!r}, name)]"
    misses = f"[name for name in {r.ref(of)} if not re.search({pattern!r}, name)]"
    if expect == "none":
        r.check(f"{hits} or None")
    elif expect == "some":
        r.check(f"None if {hits} else {f'nothing in {of} matches /{pattern}/'!r}")
    else:
        r.check(f"{misses} or (None if {r.ref(of)} else {f'{of} is empty'!r})")



@check("modules")
def modules(r: Render, type: str, model: Ref = "peft", under: str = "",
            expect: Literal["none", "some"] = "none") -> None:
    """Whether any submodule whose dotted path contains ``under`` is a ``type`` (a class name in its MRO).

    Example::

        - check: modules
          under: classifier
          type: LoraLayer
          expect: none
    """
    found = f"{r.helper('modules_of_type')}({r.ref(model)}, {type!r}, {under!r})"
    if expect == "none":
        r.check(f"f'{{len(found)}} ' + {f'{type} module(s) under {under!r}: '!r} + f'{{found[:4]}}' if (found := {found}) else None")
    else:
        r.check(f"None if {found} else {f'no {type} module under {under!r}'!r}")



@check("adapters")
def adapters(r: Render, model: Ref = "peft", present: list[str] | None = None, absent: list[str] | None = None,
             active: str | None = None) -> None:
    """Adapter names in ``model.peft_config``: which are present, absent, and which is active.

    Example::

        - check: adapters
          present: [first, second]
          active: second
    """
    r.check(f"{r.helper('adapter_problem')}({r.ref(model)}, {r.lit(present or [])}, {r.lit(absent or [])}, {r.lit(active)})")



@check("attribute")
def attribute(r: Render, of: Ref, name: str, expect: Literal["present", "absent"] = "present") -> None:
    """``of`` (an object or ``object.field``) has, or has not, the attribute ``name`` (``hasattr``).

    Example::

        - check: attribute
          of: unloaded
          name: peft_config
          expect: absent
    """
    if not name.isidentifier():
        raise ValueError(f"{name!r} is not an attribute name")
    has = "has no" if expect == "present" else "still has the"
    r.check(f"None if {'' if expect == 'present' else 'not '}hasattr({r.ref(of)}, {name!r}) else {f'{of} {has} attribute {name!r}'!r}")



@check("hooks")
def hooks(r: Render, type: str, model: Ref = "peft", kind: Literal["forward_pre", "forward"] = "forward_pre",
          expect: Literal["none", "some"] = "none") -> None:
    """How many forward (pre-)hooks the modules of class ``type`` (a name in their MRO) of ``model`` hold.

    Example::

        - check: hooks
          type: LoraLayer
          expect: none
    """
    attribute = "_forward_pre_hooks" if kind == "forward_pre" else "_forward_hooks"
    r(f"found = sum(len(m.{attribute}) for m in {r.ref(model)}.modules() if {type!r} in [c.__name__ for c in type(m).__mro__])")
    if expect == "none":
        r.check(f"f'{{found}} {kind} hooks on {type} modules of {model}' if found else None")
    else:
        r.check(f"None if found else 'no {kind} hook on {type} modules of {model}'")


@check("scaled")
def scaled(r: Render, a: Ref, b: Ref, factor: float, atol: float = 1e-6) -> None:
    """Every non-zero entry of snapshot ``a`` is ``factor`` times the entry of ``b`` of the same name
    (what DARE's rescaling promises); ``a`` must keep some non-zero entry.

    Example::

        - check: scaled
          a: merged_delta
          b: source_delta
          factor: 2.0
    """
    r.check(f"{r.helper('not_scaled')}({r.ref(a)}, {r.ref(b)}, {float(factor)!r}, atol={atol!r}, names=({a!r}, {b!r}))")


LEVELS = Literal[codegen.LEVELS]  # type: ignore[valid-type]


@check("warns")
def warns(r: Render, step: StepRef, match: str, category: str = "Warning", level: LEVELS = "WARNING") -> None:
    """Step ``step`` emitted a warning (or a peft/transformers log record: category ``log``, at ``level``
    or above) whose message matches ``match`` (``re.search``). ``category`` is a class name in the
    warning's MRO, ``log``, or ``log.INFO`` (a record of exactly that level).

    Example::

        - check: warns
          step: load
          category: UserWarning
          match: 'Found missing adapter keys'
    """
    seen = r.captured(step)
    r.check(f"None if {r.helper('emitted')}({seen}, {category!r}, {match!r}) else "
            f"{f'step {step!r} emitted no {category} matching /{match}/; it emitted: '!r} + str({r.helper('emitted')}({seen}, {category!r})[:5])")



@check("no_warns")
def no_warns(r: Render, step: StepRef, match: str = ".*", category: str = "Warning", level: LEVELS = "WARNING") -> None:
    """Step ``step`` emitted no warning (or log record at ``level`` or above) of ``category`` matching ``match``.

    Example::

        - check: no_warns
          step: load
          match: 'missing adapter keys'
    """
    r.check(f"{r.helper('emitted')}({r.captured(step)}, {category!r}, {match!r}) or None")



@check("value")
def value(r: Render, of: Ref, equals: Any = None, match: str | None = None) -> None:
    """A field of an object equals a plain value (e.g. ``of: peft.active_adapter``, ``equals: second``),
    or its text matches the regex ``match`` (``re.search``).

    Example::

        - check: value
          of: peft.active_adapter
          equals: second
    """
    r(f"found = {r.ref(of)}")
    if match is not None:
        r.check(f"None if re.search({match!r}, str(found)) else {of!r} + f' is {{found!r:.200}}, expected to match ' + {('/' + match + '/')!r}")
        return
    r.check(f"None if found == {r.lit(equals)} else {of!r} + f' is {{found!r:.200}}, expected ' + {repr(r.lit(equals))}")
