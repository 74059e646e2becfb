"""The YAML case format: parsing, validation with file:line:field errors, and the case objects.

Importing this module is cheap (no torch): it is used at collection time.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from . import helpers, registry, versions
from .architectures import HEADS, default_head
from .yaml_lines import LineDict, LineList, load_documents

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
FIELD_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,79}$")
CASE_KEYS = {"id", "title", "description", "upstream", "tags", "requires", "set_order", "model", "steps", "expect",
             "known_bugs"}
MODEL_KEYS = {"architecture", "head", "seed", "config"}
STEP_META = {"op", "id", "when", "raises"}
CHECK_META = {"check", "id", "when"}
BUG_KEYS = {"id", "summary", "upstream", "affected", "fails"}
FAIL_KEYS = {"step", "check", "raises", "match"}
UPSTREAM_KEYS = {"issues", "prs"}
MAX_SEED = 2**32 - 1
MAX_INT = 10**6  # every integer field of a tiny-model case is far below this


class CaseFormatError(ValueError):
    """A malformed case: names the file, line and field."""

    def __init__(self, path: str | Path, line: int, field: str, message: str) -> None:
        self.path, self.line, self.field, self.message = str(path), line, field, message
        super().__init__(f"{self.path}:{line}: {field}: {message}")


@dataclasses.dataclass(frozen=True)
class Upstream:
    """huggingface/peft issue and pull-request numbers."""

    issues: tuple[int, ...] = ()
    prs: tuple[int, ...] = ()

    def links(self) -> list[str]:
        base = "https://github.com/huggingface/peft"
        return [f"{base}/issues/{n}" for n in self.issues] + [f"{base}/pull/{n}" for n in self.prs]

    def label(self) -> str:
        parts = [f"#{n}" for n in self.issues] + [f"PR #{n}" for n in self.prs]
        return ", ".join(parts) or "no upstream issue"


@dataclasses.dataclass(frozen=True)
class ExpectedRaise:
    """A step whose fixed behaviour is to raise: exception type name and message regex."""

    type: str
    match: str


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """One entry of ``steps``."""

    op: str
    id: str
    fields: dict[str, Any]
    when: dict[str, str]
    raises: ExpectedRaise | None
    line: int


@dataclasses.dataclass(frozen=True)
class CheckSpec:
    """One entry of ``expect``."""

    check: str
    id: str
    fields: dict[str, Any]
    when: dict[str, str]
    line: int


@dataclasses.dataclass(frozen=True)
class FailureSpec:
    """How a known bug makes the case fail: an exception at a step, or a failed check."""

    step: str | None
    check: str | None
    raises: str | None
    match: str | None


@dataclasses.dataclass(frozen=True)
class KnownBug:
    """A recorded bug: where it is present and the exact way the case fails there."""

    id: str
    summary: str
    upstream: Upstream
    affected: dict[str, str]
    fails: tuple[FailureSpec, ...]

    def affects(self, stack: dict[str, str | None] | None = None) -> bool:
        return versions.matches(self.affected, stack)

    def range_label(self) -> str:
        return ", ".join(f"{pkg} {spec}" for pkg, spec in self.affected.items())


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The tiny model a case builds first, stored as ``base``."""

    architecture: str
    head: str
    seed: int
    config: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Case:
    """One validated scenario."""

    id: str
    title: str
    description: str
    upstream: Upstream
    tags: tuple[str, ...]
    requires: dict[str, str]
    set_order: tuple[str, ...]
    model: ModelSpec | None
    steps: tuple[StepSpec, ...]
    expect: tuple[CheckSpec, ...]
    known_bugs: tuple[KnownBug, ...]
    path: str
    line: int

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"

    def applies(self, stack: dict[str, str | None] | None = None) -> bool:
        """False when the installed versions lack what the case needs (``requires``)."""
        return versions.matches(self.requires, stack)

    def renamed(self, renaming: dict[str, str]) -> Case:
        """This case with every string field equal to a key of ``renaming`` replaced (see ``set_order``)."""
        model = self.model and dataclasses.replace(self.model, config=helpers.renamed(self.model.config, renaming))
        steps = tuple(dataclasses.replace(s, fields=helpers.renamed(s.fields, renaming)) for s in self.steps)
        expect = tuple(dataclasses.replace(c, fields=helpers.renamed(c.fields, renaming)) for c in self.expect)
        return dataclasses.replace(self, model=model, steps=steps, expect=expect)

    def bugs_in_range(self, stack: dict[str, str | None] | None = None) -> list[KnownBug]:
        return [bug for bug in self.known_bugs if bug.affects(stack)]


@dataclasses.dataclass(frozen=True)
class MalformedCase:
    """A case file (or document) that could not be read; reported as an error on its own test id."""

    id: str
    error: CaseFormatError


class _Reader:
    """Validates one document, raising CaseFormatError at the first problem."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, line: int, field: str, message: str) -> CaseFormatError:
        return CaseFormatError(self.path, line, field, message)

    def mapping(self, value: Any, line: int, field: str, allowed: set[str], required: frozenset[str] | set[str] = frozenset()) -> LineDict:
        if not isinstance(value, dict):
            raise self.fail(line, field or "case", f"expected a mapping, got {registry.kind_of(value)}")
        for key in value:
            if key not in allowed:
                hint = _close(str(key), allowed)
                raise self.fail(value.line_of(key), _join(field, key), f"unknown field{hint}; allowed: {', '.join(sorted(allowed))}")
        for key in sorted(required):
            if key not in value:
                raise self.fail(value.line, _join(field, key), "required field is missing")
        return value

    def typed(self, parent: LineDict, key: str, field: str, annotation: Any, default: Any = None) -> Any:
        if key not in parent:
            return default
        value = parent[key]
        reason = registry.type_error(value, annotation)
        if reason:
            raise self.fail(parent.line_of(key), _join(field, key), reason)
        self.bounded(value, parent.line_of(key), _join(field, key))
        return value

    def bounded(self, value: Any, line: int, field: str) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise self.fail(line, field, f"integer {value} is out of range (|n| <= {MAX_INT})")
        if isinstance(value, float) and (value != value or abs(value) == float("inf")):
            raise self.fail(line, field, "number must be finite")
        if isinstance(value, str) and len(value) > 10_000:
            raise self.fail(line, field, "string is longer than 10000 characters")
        if isinstance(value, dict):
            for key, item in value.items():
                self.bounded(item, getattr(value, "line_of", lambda _k: line)(key), _join(field, key))
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.bounded(item, getattr(value, "line_of", lambda _i: line)(index), f"{field}[{index}]")

    def ranges(self, parent: LineDict, key: str, field: str) -> dict[str, str]:
        value = self.typed(parent, key, field, dict[str, str], {})
        for package, spec in value.items():
            line = value.line_of(package)
            if package not in versions.TRACKED:
                raise self.fail(line, _join(_join(field, key), package), f"unknown package; use one of {', '.join(versions.TRACKED)}")
            try:
                versions.parse_specifier(spec)
            except ValueError as exc:
                raise self.fail(line, _join(_join(field, key), package), str(exc)) from None
        return dict(value)

    def regex(self, parent: LineDict, key: str, field: str) -> str | None:
        value = self.typed(parent, key, field, str)
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise self.fail(parent.line_of(key), _join(field, key), f"not a valid regular expression: {exc}") from None
        return value

    def upstream(self, parent: LineDict, key: str, field: str) -> Upstream:
        if key not in parent:
            return Upstream()
        value = self.mapping(parent[key], parent.line_of(key), _join(field, key), UPSTREAM_KEYS)
        issues = self.typed(value, "issues", _join(field, key), list[int], [])
        prs = self.typed(value, "prs", _join(field, key), list[int], [])
        return Upstream(tuple(issues), tuple(prs))

    def case(self, doc: Any, line: int) -> Case:
        doc = self.mapping(doc, line, "", CASE_KEYS, {"id", "title", "steps"})
        case_id = self.typed(doc, "id", "", str)
        if not ID_PATTERN.match(case_id):
            raise self.fail(doc.line_of("id"), "id", f"{case_id!r} is not a slug (lower-case letters, digits and '-')")
        title = self.typed(doc, "title", "", str).strip()
        description = (self.typed(doc, "description", "", str, "") or "").strip()
        tags = tuple(self.typed(doc, "tags", "", list[str], []))
        model = self.model(doc)
        steps, names = self.steps(doc, model is not None)
        expect = self.checks(doc, names, {step.id for step in steps})
        bugs = self.known_bugs(doc, {s.id for s in steps}, {c.id for c in expect})
        requires = self.ranges(doc, "requires", "")
        set_order = tuple(self.typed(doc, "set_order", "", list[str], []))
        if set_order and not (2 <= len(set(set_order)) == len(set_order) <= 4 and all(set_order)):
            raise self.fail(doc.line_of("set_order"), "set_order", "2 to 4 distinct, non-empty names")
        if names & set(set_order):
            raise self.fail(doc.line_of("set_order"), "set_order",
                            f"{sorted(names & set(set_order))[0]!r} also names an object: set_order renames module names")
        return Case(case_id, title, description, self.upstream(doc, "upstream", ""), tags, requires, set_order, model,
                    steps, expect, bugs, self.path, doc.line)

    def model(self, doc: LineDict) -> ModelSpec | None:
        if "model" not in doc:
            return None
        value = self.mapping(doc["model"], doc.line_of("model"), "model", MODEL_KEYS, {"architecture"})
        architecture = self.typed(value, "architecture", "model", str)
        if architecture not in HEADS:
            raise self.fail(value.line_of("architecture"), "model.architecture",
                            f"unknown architecture {architecture!r}{_close(architecture, HEADS)}; choose one of {', '.join(HEADS)}")
        head = self.typed(value, "head", "model", str, default_head(architecture))
        if head not in HEADS[architecture]:
            raise self.fail(value.line_of("head"), "model.head",
                            f"{architecture} has no head {head!r}; choose one of {', '.join(HEADS[architecture])}")
        seed = self.typed(value, "seed", "model", int, 0)
        if not 0 <= seed <= MAX_SEED:
            raise self.fail(value.line_of("seed"), "model.seed", "seed must be between 0 and 2**32-1")
        config = self.typed(value, "config", "model", dict, {})
        return ModelSpec(architecture, head, seed, dict(config))

    def steps(self, doc: LineDict, has_model: bool) -> tuple[tuple[StepSpec, ...], set[str]]:
        entries = self.typed(doc, "steps", "", list)
        if not entries:
            raise self.fail(doc.line_of("steps"), "steps", "a case needs at least one step")
        names = {"base"} if has_model else set()
        seen: dict[str, int] = {}
        specs = []
        for index, entry in enumerate(entries):
            entry, field, line, op, operation = self.operation(entries, index, "steps", "op", registry.STEPS)
            fields = self.fields(entry, field, operation, STEP_META, names)
            step_id = self.item_id(entry, field, op, seen)
            raises = None
            if "raises" in entry:
                spec = self.mapping(entry["raises"], entry.line_of("raises"), _join(field, "raises"), {"type", "match"}, {"type", "match"})
                raises = ExpectedRaise(self.typed(spec, "type", _join(field, "raises"), str),
                                       self.regex(spec, "match", _join(field, "raises")))
            when = self.ranges(entry, "when", field)
            specs.append(StepSpec(op, step_id, fields, when, raises, line))
        return tuple(specs), names

    def checks(self, doc: LineDict, names: set[str], step_ids: set[str]) -> tuple[CheckSpec, ...]:
        entries = self.typed(doc, "expect", "", list, [])
        seen: dict[str, int] = {}
        specs = []
        for index, entry in enumerate(entries):
            entry, field, line, name, operation = self.operation(entries, index, "expect", "check", registry.CHECKS)
            fields = self.fields(entry, field, operation, CHECK_META, names, step_ids)
            check_id = self.item_id(entry, field, name, seen)
            specs.append(CheckSpec(name, check_id, fields, self.ranges(entry, "when", field), line))
        return tuple(specs)

    def operation(self, entries: LineList, index: int, section: str, key: str,
                  known: dict[str, registry.Operation]) -> tuple[LineDict, str, int, str, registry.Operation]:
        """Entry ``index`` of ``steps``/``expect``: a mapping whose ``key`` names a registered operation."""
        field = f"{section}[{index}]"
        line = entries.line_of(index)
        entry = entries[index]
        if not isinstance(entry, dict):
            raise self.fail(line, field, f"expected a mapping with {key!r}, got {registry.kind_of(entry)}")
        if key not in entry:
            raise self.fail(line, _join(field, key), "required field is missing")
        name = entry[key]
        if not isinstance(name, str) or name not in known:
            kind = "step" if section == "steps" else "check"
            raise self.fail(entry.line_of(key), _join(field, key), f"unknown {kind} {name!r}{_close(str(name), known)}")
        return entry, field, line, name, known[name]

    def fields(self, entry: LineDict, field: str, operation: registry.Operation, meta: set[str],
               names: set[str], step_ids: set[str] = frozenset()) -> dict[str, Any]:
        fields = {}
        for key, value in entry.items():
            if key in meta:
                continue
            line = entry.line_of(key)
            param = operation.params.get(key)
            if param is None:
                allowed = sorted(operation.params)
                raise self.fail(line, _join(field, key),
                                f"{operation.kind} {operation.name!r} has no field {key!r}{_close(str(key), operation.params)}; "
                                f"fields: {', '.join(allowed) or 'none'}")
            reason = registry.type_error(value, param.annotation)
            if reason:
                raise self.fail(line, _join(field, key), reason)
            self.bounded(value, line, _join(field, key))
            if param.role == "ref" and not all(FIELD_PATTERN.match(part) for part in str(value).split(".")[1:]):
                raise self.fail(line, _join(field, key), f"{value!r}: a field after '.' must be a plain public name")
            if param.role == "ref" and isinstance(value, str) and value.split(".", 1)[0] not in names:
                raise self.fail(line, _join(field, key),
                                f"{value!r} is not made by an earlier step{_close(value, names)}; known: {', '.join(sorted(names)) or 'none'}")
            if param.role == "out" and not NAME_PATTERN.match(str(value)):
                raise self.fail(line, _join(field, key), f"{value!r} is not a plain name (letters, digits, '_' and '-')")
            if param.role == "refs" and isinstance(value, dict):
                unknown = [name for name in value if str(name).split(".", 1)[0] not in names]
                if unknown:
                    raise self.fail(line, _join(field, key), f"{unknown[0]!r} is not made by an earlier step")
            if param.role == "step" and value not in step_ids:
                raise self.fail(line, _join(field, key), f"no step has id {value!r}{_close(str(value), step_ids)}")
            fields[key] = value
        for param in operation.params.values():
            if param.required and param.name not in fields:
                raise self.fail(entry.line, _join(field, param.name), "required field is missing")
            if param.role == "out":
                names.add(fields.get(param.name, param.default))
        return fields

    def item_id(self, entry: LineDict, field: str, name: str, seen: dict[str, int]) -> str:
        if "id" in entry:
            item_id = self.typed(entry, "id", field, str)
            if item_id in seen:
                raise self.fail(entry.line_of("id"), _join(field, "id"), f"duplicate id {item_id!r}")
        else:
            count = sum(1 for key in seen if key == name or key.startswith(name + "-")) + 1
            item_id = name if count == 1 else f"{name}-{count}"
        seen[item_id] = entry.line
        return item_id

    def known_bugs(self, doc: LineDict, step_ids: set[str], check_ids: set[str]) -> tuple[KnownBug, ...]:
        entries = self.typed(doc, "known_bugs", "", list, [])
        bugs = []
        for index, entry in enumerate(entries):
            field = f"known_bugs[{index}]"
            entry = self.mapping(entry, entries.line_of(index), field, BUG_KEYS, {"id", "affected", "fails"})
            bug_id = self.typed(entry, "id", field, str)
            affected = self.ranges(entry, "affected", field)
            if not affected:
                raise self.fail(entry.line_of("affected"), _join(field, "affected"), "name at least one package range")
            raw_fails = entry["fails"]
            fails_line = entry.line_of("fails")
            items = raw_fails if isinstance(raw_fails, list) else [raw_fails]
            fails = []
            for position, item in enumerate(items):
                item_field = _join(field, "fails") + (f"[{position}]" if isinstance(raw_fails, list) else "")
                line = raw_fails.line_of(position) if isinstance(raw_fails, LineList) else fails_line
                item = self.mapping(item, line, item_field, FAIL_KEYS)
                failure = FailureSpec(self.typed(item, "step", item_field, str), self.typed(item, "check", item_field, str),
                                      self.typed(item, "raises", item_field, str), self.regex(item, "match", item_field))
                if failure.step is not None and failure.step not in step_ids:
                    raise self.fail(item.line_of("step"), _join(item_field, "step"), f"no step has id {failure.step!r}{_close(failure.step, step_ids)}")
                if failure.check is not None and failure.check not in check_ids | step_ids:
                    raise self.fail(item.line_of("check"), _join(item_field, "check"), f"no check has id {failure.check!r}{_close(failure.check, check_ids)}")
                if failure.raises is None and failure.check is None:
                    raise self.fail(item.line, item_field, "say how it fails: 'raises' (with 'match') or 'check'")
                if failure.raises is not None and failure.match is None:
                    raise self.fail(item.line, _join(item_field, "match"), "an exception needs its message regex")
                fails.append(failure)
            bugs.append(KnownBug(bug_id, (self.typed(entry, "summary", field, str, "") or "").strip(),
                                 self.upstream(entry, "upstream", field), affected, tuple(fails)))
        return tuple(bugs)


def _join(field: str, key: Any) -> str:
    return f"{field}.{key}" if field else str(key)


def _close(word: str, options: Any) -> str:
    import difflib

    matches = difflib.get_close_matches(word, [str(o) for o in options], n=1)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def read_case_file(path: Path) -> list[Case | MalformedCase]:
    """Every case in ``path``; a problem becomes one MalformedCase naming file, line and field."""
    from . import steps as _steps, checks as _checks  # noqa: F401  (register the operations)

    shown = str(path)
    reader = _Reader(shown)
    malformed_id = f"malformed-{path.stem}"
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [MalformedCase(malformed_id, CaseFormatError(shown, 1, "file", f"not UTF-8 text ({exc.reason} at byte {exc.start})"))]
    except OSError as exc:
        return [MalformedCase(malformed_id, CaseFormatError(shown, 0, "file", f"cannot be read: {exc.strerror}"))]
    try:
        documents = load_documents(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "could not determine a constructor" in str(problem):
            problem = f"tag not allowed in a case (safe YAML only): {problem.split('tag ')[-1]}"
        return [MalformedCase(malformed_id, CaseFormatError(shown, line, "yaml", str(problem)))]
    documents = [(doc, line) for doc, line in documents if doc is not None]
    if not documents:
        return [MalformedCase(malformed_id, CaseFormatError(shown, 1, "file", "holds no case (empty YAML)"))]
    cases: list[Case | MalformedCase] = []
    for number, (document, line) in enumerate(documents):
        try:
            cases.append(reader.case(document, line))
        except CaseFormatError as exc:
            doc_id = document.get("id") if isinstance(document, dict) else None
            suffix = f"-{number + 1}" if len(documents) > 1 else ""
            name = f"malformed-{doc_id}" if isinstance(doc_id, str) and ID_PATTERN.match(doc_id) else malformed_id + suffix
            cases.append(MalformedCase(name, exc))
    return cases


def case_files(path: Path) -> list[Path]:
    """The ``*.yaml``/``*.yml`` files under ``path`` (or ``path`` itself), sorted."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def load_cases(paths: list[Path]) -> list[Case | MalformedCase]:
    """All cases under ``paths``, sorted by id; duplicate ids and missing paths become MalformedCase."""
    found: list[Case | MalformedCase] = []
    for path in paths:
        if not path.exists():
            found.append(MalformedCase(f"malformed-{path.stem or 'path'}", CaseFormatError(path, 0, "path", "does not exist")))
            continue
        files = case_files(path)
        if not files:
            found.append(MalformedCase(f"malformed-{path.name or 'path'}", CaseFormatError(
                path, 0, "path", "is a directory without *.yaml/*.yml case files")))
        for file in files:
            found.extend(read_case_file(file))
    result: list[Case | MalformedCase] = []
    owners: dict[str, Case] = {}
    for item in found:
        if isinstance(item, Case) and item.id in owners:
            first = owners[item.id]
            item = MalformedCase(f"duplicate-{item.id}", CaseFormatError(
                item.path, item.line, "id", f"duplicate case id {item.id!r}; first defined at {first.location}"))
        elif isinstance(item, Case):
            owners[item.id] = item
        result.append(item)
    ids: dict[str, int] = {}
    unique = []
    for item in result:  # malformed ids can clash too; keep every test id unique
        count = ids.get(item.id, 0)
        ids[item.id] = count + 1
        if count and isinstance(item, MalformedCase):
            item = MalformedCase(f"{item.id}-{count + 1}", item.error)
        unique.append(item)
    return sorted(unique, key=lambda item: item.id)
