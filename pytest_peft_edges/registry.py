"""The registry of steps and checks a YAML case may name.

A step or check is ONE documented function registered with ``@step`` or ``@check``: it renders the few
lines of plain Python the operation stands for (see :class:`.codegen.Render`). The engine runs those
lines and ``peft-edges export`` prints them, so this function is the operation's only definition. Its
keyword parameters are the YAML fields (``as`` is written ``as_``); their annotations drive validation
at collection time, and its docstring (with an ``Example::``) is the documentation in docs/cases.md.
Registering a function is the whole of adding an operation.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Annotated, Any, Callable

#: A field naming an object an earlier step made (a model, a directory, a snapshot, ...).
Ref = Annotated[str, "ref"]
#: A field naming the object this step makes, for later steps and checks.
Out = Annotated[str, "out"]
#: A mapping whose keys name objects earlier steps made.
Refs = Annotated[dict[str, float], "refs"]
#: A field naming an earlier step by its id (for the warnings it captured).
StepRef = Annotated[str, "step"]

_EMPTY = inspect.Parameter.empty


@dataclasses.dataclass(frozen=True)
class Param:
    """One YAML field of a step or check."""

    name: str  # as written in YAML
    annotation: Any
    default: Any
    role: str | None  # "ref", "out" or None

    @property
    def required(self) -> bool:
        return self.default is _EMPTY


@dataclasses.dataclass(frozen=True)
class Operation:
    """A registered step or check."""

    kind: str
    name: str
    func: Callable[..., Any]
    params: dict[str, Param]

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "")

    @property
    def example(self) -> str:
        """The YAML after ``Example::`` in the docstring (used by the docs and their test)."""
        doc = self.doc
        marker = "Example::"
        if marker not in doc:
            return ""
        return inspect.cleandoc(doc.split(marker, 1)[1])

    def render(self, render: Any, fields: dict[str, Any]) -> None:
        """Write this operation's code for ``fields`` (the YAML fields; defaults fill the rest) into ``render``."""
        kwargs = {("as_" if key == "as" else key): value for key, value in fields.items()}
        self.func(render, **kwargs)


STEPS: dict[str, Operation] = {}
CHECKS: dict[str, Operation] = {}


def _describe(kind: str, name: str, func: Callable[..., Any]) -> Operation:
    hints = typing.get_type_hints(func, include_extras=True)
    params = {}
    for parameter in list(inspect.signature(func).parameters.values())[1:]:
        annotation = hints.get(parameter.name, Any)
        role = None
        if typing.get_origin(annotation) is Annotated:
            role = annotation.__metadata__[0]
            annotation = annotation.__origin__
        elif any(typing.get_origin(option) is Annotated for option in typing.get_args(annotation)):
            # ``Out | None``: an optional name; validated as the name, None allowed
            options = typing.get_args(annotation)
            marked = next(option for option in options if typing.get_origin(option) is Annotated)
            role = marked.__metadata__[0]
            annotation = typing.Optional[marked.__origin__]
        yaml_name = "as" if parameter.name == "as_" else parameter.name
        params[yaml_name] = Param(yaml_name, annotation, parameter.default, role)
    if not func.__doc__:
        raise TypeError(f"{kind} {name!r} needs a docstring: it is the documentation")
    return Operation(kind, name, func, params)


def step(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func(render, **fields)`` as the step ``op: name``."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        STEPS[name] = _describe("step", name, func)
        return func

    return register


def check(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func(render, **fields)`` as the check ``check: name``: its code calls ``fail`` on failure."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        CHECKS[name] = _describe("check", name, func)
        return func

    return register


def type_error(value: Any, annotation: Any) -> str | None:
    """Why ``value`` does not fit ``annotation`` ("expected ..., got ..."), or None when it does."""
    if annotation is Any:
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", ())):
        if any(type_error(value, option) is None for option in args):
            return None
        return _mismatch(" or ".join(_name(option) for option in args), value)
    if origin is typing.Literal:
        return None if value in args else _mismatch(f"one of {list(args)}", value)
    if annotation is type(None):
        return None if value is None else _mismatch("null", value)
    if annotation in (int, float):
        ok = isinstance(value, (int, float) if annotation is float else int) and not isinstance(value, bool)
        return None if ok else _mismatch(_name(annotation), value)
    if annotation in (str, bool):
        return None if isinstance(value, annotation) else _mismatch(_name(annotation), value)
    if origin is list or annotation is list:
        if not isinstance(value, list):
            return _mismatch(_name(annotation), value)
        for index, item in enumerate(value):
            if args and (reason := type_error(item, args[0])):
                return f"item {index}: {reason}"
        return None
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            return _mismatch(_name(annotation), value)
        for key, item in value.items():
            if args and (reason := type_error(key, args[0])):
                return f"key {key!r}: {reason}"
            if args and (reason := type_error(item, args[1])):
                return f"value of {key!r}: {reason}"
        return None
    return None


def _mismatch(expected: str, value: Any) -> str:
    return f"expected {expected}, got {kind_of(value)}"


def kind_of(value: Any) -> str:
    """What a YAML value is, for error messages: ``an integer (3)``, ``a list``, ``null``."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else type(value).__name__
    ) + (f" ({value!r})" if isinstance(value, (bool, int, float, str)) and len(repr(value)) < 40 else "")


def _name(annotation: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", dict: "a mapping", type(None): "null"}
    if annotation in names:
        return names[annotation]
    origin = typing.get_origin(annotation)
    if origin in names:
        return names[origin]
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))
