"""A case as plain Python: every step and check renders the few lines it stands for.

:func:`program` turns a validated case into :class:`Block` s of code. The engine executes exactly these
blocks (:mod:`.engine`), and ``peft-edges export`` prints the same blocks as a script (:mod:`.export`), so
the script behaves like the plugin by construction.

Nothing from YAML is pasted into code as text: values go through ``repr()`` (Python literals) and object
names through :class:`Names` (checked identifiers); the only other text is this package's templates.
"""

from __future__ import annotations

import dataclasses
import functools
import keyword
import re
from typing import Any

from . import helpers, registry
from .schema import Case

#: How the rendered code seeds: the CPU generator (cases run on the CPU), the one the engine's
#: ``fork_rng(devices=[])`` restores. ``torch.manual_seed`` would seed every device's generator as well,
#: left seeded in the user's session, and records a stack trace per device not yet initialised (0.2 s of
#: a 4 s catalogue run under pytest's deep stack, measured).
SEED = "torch.default_generator.manual_seed"
#: Names the rendered code uses itself: a YAML object name never shadows them.
RESERVED = {
    "torch", "transformers", "peft", "re", "sys", "pathlib", "tempfile", "traceback", "json", "io", "os",
    "WORKDIR", "N", "fail", "bug", "main", "judge", "problems", "problem", "exc", "hits", "found", "names",
    "only_a", "only_b", "missing", "extra", "RECORDED", "order", "print", "len", "sorted", "set", "list",
    "dict", "str", "any", "all", "next", "iter", "hasattr", "getattr", "isinstance", "type", "repr",
} | {name for name in dir(helpers) if not name.startswith("__")}


class Names:
    """YAML object names -> readable, collision-free Python identifiers."""

    def __init__(self) -> None:
        self.python: dict[str, str] = {}
        self.mappings: set[str] = set()
        self.aliases: dict[str, dict[str, str]] = {}  # object -> {YAML field: Python attribute}
        self.adapters: dict[str, set[str] | None] = {}  # model -> its adapter names (None: not known here)
        self.architectures: set[str] = set()  # of the models the case builds or loads
        self.kinds: set[str] = set()  # features used: helper lines marked "# only: <kind>" are exported

    def var(self, name: str) -> str:
        if name not in self.python:
            candidate = "peft_model" if name == "peft" else re.sub(r"\W", "_", name)
            if keyword.iskeyword(candidate) or candidate in RESERVED or not candidate.isidentifier():
                candidate += "_"
            while candidate in self.python.values():
                candidate += "_"
            self.python[name] = candidate
        return self.python[name]

    def ref(self, reference: str) -> str:
        """``load2.unexpected`` -> ``load2['unexpected']`` (a mapping) or ``peft_model.active_adapter``."""
        head, *fields = reference.split(".")
        code = self.var(head)
        if any(not field.isidentifier() for field in fields):
            raise ValueError(f"{reference!r}: a field after '.' is not a plain name")
        if len(fields) > 1:  # a deeper path may pass through dicts (``lin.scaling.default``)
            return f"dig({code}, {'.'.join(fields)!r})"
        for field in fields:
            field = self.aliases.get(head, {}).get(field, field)
            code += f"[{field!r}]" if head in self.mappings else f".{field}"
        return code


class _SetOrderName(str):
    """A ``set_order`` name inside a field: rendered as ``N['lin1']``, the name this run uses."""

    def __repr__(self) -> str:
        return f"N[{str(self)!r}]"


class Render:
    """What one step or check writes: its lines, and the helpers it calls."""

    def __init__(self, names: Names, set_order: tuple[str, ...] = (), check_id: str | None = None) -> None:
        self.names = names
        self.set_order = set_order
        self.check_id = check_id
        self.lines: list[str] = []
        self.helpers: set[str] = set()
        self.paths: set[str] = set()  # case directories this code uses (the engine checks them first)

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def lit(self, value: Any) -> str:
        """``value`` as a Python literal (set-order names as ``N['name']``)."""
        if self.set_order:
            value = helpers.renamed(value, {name: _SetOrderName(name) for name in self.set_order})
        return repr(_plain(value))

    def kwargs(self, values: dict[str, Any]) -> str:
        """``a=1, b='x'`` (or ``**{...}`` when a key is not an identifier); None values left out."""
        values = {key: value for key, value in values.items() if value is not None}
        if all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in values):
            return ", ".join(f"{key}={self.lit(value)}" for key, value in values.items())
        return f"**{self.lit(values)}"

    def ref(self, reference: str) -> str:
        code = self.names.ref(reference)
        if code.startswith("dig("):
            self.helper("dig")
        return code

    def out(self, name: str, mapping: bool = False, aliases: dict[str, str] | None = None) -> str:
        """The variable of the object ``name`` this step makes (``mapping``: fields are keys; ``aliases``:
        YAML field -> attribute)."""
        (self.names.mappings.add if mapping else self.names.mappings.discard)(name)
        self.names.aliases[name] = dict(aliases or {})
        return self.names.var(name)

    def adapters(self, model: str, names: set[str] | None = None, add: str | None = None,
                 remove: str | None = None) -> set[str] | None:
        """The adapter names of ``model`` as far as the steps so far tell (None: unknown); set ``names``,
        or ``add``/``remove`` one. Export uses it to know where ``save_pretrained`` puts an adapter."""
        head = model.split(".")[0]
        if names is not None or "." in model:
            self.names.adapters[head] = None if "." in model else set(names or ())
        known = self.names.adapters.get(head)
        if known is not None and add is not None:
            known.add(add)
        if known is not None and remove is not None:
            known.discard(remove)
        return None if known is None else set(known)

    def path(self, name: str) -> str:
        """``WORKDIR / 'name'``: a directory of the case (a plain name, checked to stay inside before use)."""
        self.paths.add(name)
        return f"WORKDIR / {name!r}"

    def check(self, problem: str) -> None:
        """A check's code: ``problem`` is a Python expression, None when the fixed behaviour holds."""
        self(f"fail({self.check_id!r}, {problem})")

    def captured(self, step_id: str) -> str:
        """The variable holding what step ``step_id`` captured (warnings and log records)."""
        return self.names.var(f"{step_id}_warnings")

    def helper(self, name: str) -> str:
        if not hasattr(helpers, name):
            raise KeyError(name)
        self.helpers.add(name)
        return name


def _plain(value: Any) -> Any:
    """YAML's line-tracking containers as plain dicts and lists (their repr is then the literal)."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Block:
    """The code of one step (or of the model, or of one check)."""

    kind: str  # "step" or "check"
    id: str
    op: str
    lines: tuple[str, ...]
    when: dict[str, str]
    raises: Any = None  # schema.ExpectedRaise of a step whose fixed behaviour is to raise
    capture: str | None = None  # variable holding what the step captured (for warns checks)
    capture_level: str | None = None  # None: warnings only; else log records from this level too
    paths: tuple[str, ...] = ()  # case directories the code uses

    def code(self) -> list[str]:
        """The block's lines with the expected-raise and capture wrappers the engine and script share."""
        lines = list(self.lines)
        if self.raises is not None:
            expected = f"expected {self.raises.type} matching /{self.raises.match}/, nothing was raised"
            if self.raises.type in BUILTIN_EXCEPTIONS:
                lines = (["try:"] + _indent(lines) + [f"    fail({self.id!r}, {expected!r})",
                         f"except {self.raises.type} as exc:",
                         f"    if not re.search({self.raises.match!r}, str(exc)): raise"])
            else:
                lines = (["try:"] + _indent(lines) + [f"    fail({self.id!r}, {expected!r})",
                         "except Exception as exc:",
                         f"    if not raised(exc, {self.raises.type!r}, {self.raises.match!r}): raise"])
        if self.capture is not None and self.capture_level is None:
            lines = [f"with warnings.catch_warnings(record=True) as {self.capture}:",
                     "    warnings.simplefilter('always')"] + _indent(lines)
        elif self.capture is not None:
            lines = [f"with captured_logs({self.capture_level!r}) as {self.capture}:"] + _indent(lines)
        return lines


def _indent(lines: list[str], prefix: str = "    ") -> list[str]:
    return [prefix + line if line else line for line in lines]


@dataclasses.dataclass
class Program:
    """A case as code: the step blocks (model first), the check blocks, the helpers they call directly
    (:func:`with_dependencies` adds the helpers those call; only an exported script needs that)."""

    case: Case
    steps: list[Block]
    checks: list[Block]
    helpers: set[str]
    names: Names


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: Exception classes an ``except`` clause can name directly (others are matched by class name).
BUILTIN_EXCEPTIONS = {name for name in dir(__import__("builtins")) if name.endswith(("Error", "Exception"))
                      and name not in ("AssertionError",)}


def program(case: Case) -> Program:
    """Render every step and check of ``case``."""
    from . import checks as _checks, steps as _steps  # noqa: F401  (register the operations)

    names = Names()
    used: set[str] = set()
    capture: dict[str, str | None] = {}
    for spec in case.expect:  # steps whose warnings a check reads capture them (and logs, from the lowest level asked)
        if spec.check in ("warns", "no_warns"):
            step_id = spec.fields["step"]
            capture.setdefault(step_id, None)
            if str(spec.fields.get("category", "Warning")).startswith("log"):
                level = spec.fields.get("level", "WARNING")
                capture[step_id] = min(capture[step_id] or "ERROR", level, key=LEVELS.index)
    blocks = []
    entries: list[tuple[str, str, dict[str, Any], dict[str, str], Any]] = []
    if case.model is not None:
        model_fields = {"as": "base", "architecture": case.model.architecture, "head": case.model.head,
                        "seed": case.model.seed, "config": case.model.config, "dtype": case.model.dtype}
        entries.append(("model", "build_model", model_fields, {}, None))
    entries += [(spec.id, spec.op, spec.fields, spec.when, spec.raises) for spec in case.steps]
    for step_id, op, fields, when, raises in entries:
        render = Render(names, case.set_order)
        registry.STEPS[op].render(render, fields)
        used |= render.helpers
        if raises is not None and raises.type not in BUILTIN_EXCEPTIONS:
            used.add("raised")
        var = None
        if step_id in capture:
            var = names.var(f"{step_id}_warnings")
            if capture[step_id] is not None:
                used.add("captured_logs")
        blocks.append(Block("step", step_id, op, tuple(render.lines), dict(when), raises, var, capture.get(step_id),
                            tuple(sorted(render.paths))))
    check_blocks = []
    for spec in case.expect:
        render = Render(names, case.set_order, spec.id)
        registry.CHECKS[spec.check].render(render, spec.fields)
        used |= render.helpers
        check_blocks.append(Block("check", spec.id, spec.check, tuple(render.lines), dict(spec.when)))
    return Program(case, blocks, check_blocks, used, names)


def with_dependencies(used: set[str]) -> set[str]:
    """The helpers in ``used`` and every helper they call, by name."""
    result: set[str] = set()
    todo = list(used)
    while todo:
        name = todo.pop()
        if name not in result:
            result.add(name)
            todo += sorted(helper_names(name) - result)
    return result


def helper_names(name: str) -> set[str]:
    """The other helpers helper ``name`` refers to (names in its code, docstring aside)."""
    import ast

    tree = ast.parse(helper_source(name))
    found = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return {other for other in found if other != name and other in _HELPERS}


_HELPERS = {name for name in dir(helpers) if not name.startswith("__")
            and getattr(getattr(helpers, name), "__module__", None) == helpers.__name__}


@functools.lru_cache(maxsize=None)
def helper_source(name: str, kinds: frozenset[str] | None = None) -> str:
    """The source of helper ``name`` as a script shows it: the first docstring line as a comment above;
    with ``kinds`` (e.g. ``{"mlp"}``), lines marked ``# only: <kind>`` for other kinds are left out."""
    import ast
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(getattr(helpers, name)))
    lines = source.rstrip().splitlines()
    node = ast.parse(source).body[0]
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        summary = inspect.cleandoc(first.value.value).split("\n\n", 1)[0].replace("\n", " ").replace("``", "")
        del lines[first.lineno - 1:first.end_lineno]
        if len(node.body) == 1:  # a class that is only its docstring: one line
            lines[0] += " pass"
        lines = [f"# {summary}"] + lines
    # the script imports torch (and the modules below) once at the top
    lines = [line for line in lines if line.strip() not in ("import torch", "import json", "import safetensors.torch")]
    if kinds is not None:
        marked = [(line, re.search(r"  # only: (\w+)", line)) for line in lines]
        lines = [line[:mark.start()] if mark else line for line, mark in marked if not mark or mark.group(1) in kinds]
    lines = [line for index, line in enumerate(lines)  # no blank line right after the def line
             if line.strip() or not (index and lines[index - 1].lstrip().startswith(("def ", "class ")))]
    return "\n".join(line for index, line in enumerate(lines)
                     if line.strip() or (index + 1 < len(lines) and lines[index + 1].strip()))
