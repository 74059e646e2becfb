"""The YAML case format: parsing, validation with file:line:field errors, and the case objects.

Importing this module is cheap (no torch): it is used at collection time.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any


from . import helpers, limits, registry, versions
from .architectures import HEADS, default_head
from .yaml_lines import DocumentError, LineDict, LineList, load_documents

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
FIELD_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,79}$")
CASE_KEYS = {"id", "title", "description", "upstream", "tags", "requires", "set_order", "model", "steps", "expect",
             "known_bugs"}
MODEL_KEYS = {"architecture", "head", "seed", "config", "dtype"}
STEP_META = {"op", "id", "when", "raises"}
CHECK_META = {"check", "id", "when"}
BUG_KEYS = {"id", "summary", "upstream", "affected", "fails"}
FAIL_KEYS = {"step", "check", "raises", "match"}
UPSTREAM_KEYS = {"issues", "prs"}
MAX_SEED = 2**32 - 1
MAX_INT = 10**6  # every integer field of a tiny-model case is far below this

#: Fields whose value names an adapter: peft joins adapter names into paths on save, so each is a plain name.
ADAPTER_FIELDS = {"adapter_name", "adapters", "selected_adapters", "adapter", "present", "absent", "active"}
#: Step and check fields holding a regular expression (``rename``/``key_mapping``: their keys).
REGEX_FIELDS = {"pattern", "match"}
REGEX_KEY_FIELDS = {"rename", "key_mapping"}
#: peft config fields holding regular expressions when they are strings (``*_pattern`` mappings: their keys).
CONFIG_REGEX_FIELDS = {"target_modules", "exclude_modules", "layers_pattern"}
CONFIG_REGEX_KEY_FIELDS = {"rank_pattern", "alpha_pattern"}
#: Config fields that make peft or transformers import, call or read something named by the case.
CODE_FIELDS = {
    "megatron_core": "peft imports the module it names (LoRA tensor parallelism)",
    "megatron_config": "it goes with megatron_core, a module peft imports",
    "trust_remote_code": "transformers would run code from a model repository",
    "auto_map": "it names classes transformers imports from a model repository",
    "auto_mapping": "AutoPeftModel imports the library and class it names",
    "base_model_name_or_path": "peft loads the base model from the path or Hub id it names",
    "name_or_path": "it names a path or Hub id a model is loaded from",
    "revision": "it names the Hub revision (or path) the base model is loaded from",
    "tokenizer_name_or_path": "prompt tuning loads a tokenizer from the path or Hub id it names",
    "tokenizer_kwargs": "they are passed to a tokenizer loaded from a path or the Hub",
    "prompt_tuning_init_state_dict_path": "peft reads the file it names",
    "corda_config": "it names cache and covariance files peft reads and writes",
    "lora_ga_config": "it names a cache file peft reads with torch.load",
    "cache_file": "peft reads (torch.load) or writes the file it names",
    "covariance_file": "peft reads or writes the file it names",
    "shadow_model": "peft loads a model from the path or Hub id it names",
    "quantization_config": "transformers imports the quantization backend it names",
    "use_kernels": "transformers loads kernels from the Hub",
    "kernel_config": "transformers loads kernels from the Hub",
}
#: Values of ``attn_implementation`` that load nothing (others name Hub kernels or optional packages).
ATTENTION = {"eager", "sdpa"}
#: peft config types a case may not name (they load adapters or models from paths).
REFUSED_CONFIG_TYPES = {"XLoraConfig": "it loads the adapters it names from paths",
                        "ShadowConfig": "it loads the model it names from a path or the Hub"}
PLAIN_NAME = re.compile(r"^\w[\w-]{0,63}$")  # letters (any script), digits, "_", "-": a safe path component


#: C0/C1 control characters and DEL, except the whitespace ones (tab, newline, carriage return, VT, FF).
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


#: Fields of free text or regular expressions: an unquoted `` #`` inside them is refused (a YAML comment).
TEXT_FIELDS = {"title", "description", "summary", "match", "pattern", "type", "equals"}


class CaseFormatError(ValueError):
    """A malformed case: names the file, line and field."""

    def __init__(self, path: str | Path, line: int, field: str, message: str) -> None:
        # Everything here may come from the file (names, keys, values): escaped for the terminal, bounded.
        self.path, self.line = limits.printable(path, 300), line
        self.field, self.message = limits.printable(field, 300), limits.printable(message)
        super().__init__(f"{self.path}:{line}: {self.field}: {self.message}")


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
    dtype: str | None = None


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
        self.dirs: set[str] = set()  # directories made by the steps read so far (``dir`` outputs)

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
        self.not_cut_by_comment(parent, key, field)
        reason = registry.type_error(value, annotation)
        if reason:
            raise self.fail(parent.line_of(key), _join(field, key), reason)
        self.bounded(value, parent.line_of(key), _join(field, key), key, config=key == "config")
        return value

    def not_cut_by_comment(self, parent: LineDict, key: Any, field: str) -> None:
        """A text or regex written unquoted must not run into `` #``: YAML reads the rest as a comment."""
        if key in TEXT_FIELDS and key in getattr(parent, "commented", ()):
            raise self.fail(parent.line_of(key), _join(field, key),
                            f"an unquoted ' #' starts a YAML comment, which cuts this value to {parent[key]!r}: "
                            "quote the value")

    def bounded(self, value: Any, line: int, field: str, key: Any = None, config: bool = False) -> None:
        """Sizes within the limits (integers, strings, lists, fields of :data:`limits.SIZES`); in a
        ``config`` mapping (``config=True``) also no field of :data:`CODE_FIELDS` and only safe regexes."""
        if isinstance(value, bool):
            return
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise self.fail(line, field, f"integer {value} is out of range (|n| <= {MAX_INT})")
        if isinstance(value, int) and key in limits.SIZES and value > limits.SIZES[key]:
            raise self.fail(line, field, f"{value} is larger than a tiny model needs (limit {limits.SIZES[key]}; "
                                         f"raise it with --peft-edges-limits {key}=N)")
        if isinstance(value, float) and (value != value or abs(value) == float("inf")):
            raise self.fail(line, field, "number must be finite")
        if isinstance(value, str) and len(value) > limits.COLLECTION["string_chars"]:
            raise self.fail(line, field, f"string is longer than {limits.COLLECTION['string_chars']} characters")
        if isinstance(value, str):
            self.no_control(value, line, field)
        if config and key in CONFIG_REGEX_FIELDS and isinstance(value, str):
            self.safe_regex(value, line, field)
        if isinstance(value, dict):
            if config and key in CONFIG_REGEX_KEY_FIELDS:
                for pattern, rank in value.items():
                    self.safe_regex(str(pattern), value.line_of(pattern) if isinstance(value, LineDict) else line,
                                    _join(field, pattern))
                    if key == "rank_pattern" and isinstance(rank, int) and rank > limits.SIZES["r"]:
                        raise self.fail(line, _join(field, pattern), f"rank {rank} is larger than a tiny model needs "
                                        f"(limit {limits.SIZES['r']}; raise it with --peft-edges-limits r=N)")
            for item_key, item in value.items():
                item_line = value.line_of(item_key) if isinstance(value, LineDict) else line
                if isinstance(item_key, str):
                    self.no_control(item_key, item_line, _join(field, item_key))
                if config:
                    self.not_code(item_key, item, item_line, _join(field, item_key))
                self.bounded(item, item_line, _join(field, item_key), item_key, config)
        if isinstance(value, list):
            if len(value) > limits.COLLECTION["list_items"]:
                raise self.fail(line, field, f"list of {len(value)} items; the limit is "
                                             f"{limits.COLLECTION['list_items']} (--peft-edges-limits list_items=N)")
            for index, item in enumerate(value):
                item_line = value.line_of(index) if isinstance(value, LineList) else line
                if config and key == "layers_pattern" and isinstance(item, str):
                    self.safe_regex(item, item_line, f"{field}[{index}]")
                self.bounded(item, item_line, f"{field}[{index}]", None, config)

    def no_control(self, text: str, line: int, field: str) -> None:
        """No terminal control characters (ESC, BEL, ...) in a case: its strings reach terminals and reports."""
        match = _CONTROL.search(text)
        if match:
            raise self.fail(line, field, f"control character U+{ord(match.group()):04X} is not allowed in a case")

    def not_code(self, key: Any, value: Any, line: int, field: str) -> None:
        """Refuse a config field that makes peft/transformers import, call or read what the case names."""
        if not isinstance(key, str):
            raise self.fail(line, field, f"a config field name must be a string, not {registry.kind_of(key)}")
        if key in CODE_FIELDS:
            raise self.fail(line, field, f"not allowed in a case: {CODE_FIELDS[key]} (nothing in a case is code "
                                         "or a path outside its tmp dir)")
        if key.startswith("_"):
            raise self.fail(line, field, "private config fields are not allowed in a case")
        if key.endswith(("_path", "_file", "_dir", "_module", "_class")) and value is not None:
            raise self.fail(line, field, "a config field naming a path, module or class is not allowed in a case")
        if key in ("attn_implementation", "attention_implementation") and value is not None and value not in ATTENTION:
            raise self.fail(line, field, f"{value!r}: only {' or '.join(sorted(ATTENTION))} (others load kernels "
                                         "or packages named by the case)")

    def safe_regex(self, pattern: str, line: int, field: str) -> None:
        problem = limits.regex_problem(pattern)
        if problem:
            raise self.fail(line, field, f"{pattern!r}: {problem}" if "valid regular" not in problem else problem)

    def plain_names(self, value: Any, line: int, field: str) -> None:
        """Adapter names become path components (peft saves a non-default adapter under its name)."""
        for name in value if isinstance(value, list) else [value]:
            if isinstance(name, str) and not PLAIN_NAME.fullmatch(name):
                raise self.fail(line, field, f"{name!r} is not a plain name (letters, digits, '_' and '-'; "
                                             "no '/', '\\', '.', at most 64): peft joins adapter names into paths")

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
            self.safe_regex(value, parent.line_of(key), _join(field, key))
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
        if not ID_PATTERN.fullmatch(case_id):
            raise self.fail(doc.line_of("id"), "id", f"{case_id!r} is not a slug (lower-case letters, digits and '-')")
        title = self.typed(doc, "title", "", str).strip()
        description = (self.typed(doc, "description", "", str, "") or "").strip()
        tags = tuple(self.typed(doc, "tags", "", list[str], []))
        model = self.model(doc)
        self.dirs = set()
        steps, names = self.steps(doc, model is not None)
        expect = self.checks(doc, names, {step.id for step in steps})
        bugs = self.known_bugs(doc, {s.id for s in steps}, {c.id for c in expect})
        requires = self.ranges(doc, "requires", "")
        set_order = tuple(self.typed(doc, "set_order", "", list[str], []))
        if set_order and not (2 <= len(set(set_order)) == len(set_order) <= 4 and all(set_order)):
            raise self.fail(doc.line_of("set_order"), "set_order", "2 to 4 distinct, non-empty names")
        for index, name in enumerate(set_order):
            if not PLAIN_NAME.fullmatch(name):
                raise self.fail(doc.line_of("set_order"), f"set_order[{index}]", f"{name!r} is not a plain name")
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
        dtype = self.typed(value, "dtype", "model", registry.STEPS["build_model"].params["dtype"].annotation)
        return ModelSpec(architecture, head, seed, dict(config), dtype)

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
            self.not_cut_by_comment(entry, key, field)
            param = operation.params.get(key)
            if param is None:
                allowed = sorted(operation.params)
                raise self.fail(line, _join(field, key),
                                f"{operation.kind} {operation.name!r} has no field {key!r}{_close(str(key), operation.params)}; "
                                f"fields: {', '.join(allowed) or 'none'}")
            reason = registry.type_error(value, param.annotation)
            if reason:
                raise self.fail(line, _join(field, key), reason)
            self.bounded(value, line, _join(field, key), key, config=key == "config")
            self.safe_fields(key, value, line, _join(field, key), param, names)
            if param.role == "ref" and not all(FIELD_PATTERN.fullmatch(part) for part in str(value).split(".")[1:]):
                raise self.fail(line, _join(field, key), f"{value!r}: a field after '.' must be a plain public name")
            if param.role == "ref" and isinstance(value, str) and value.split(".", 1)[0] not in names:
                raise self.fail(line, _join(field, key),
                                f"{value!r} is not made by an earlier step{_close(value, names)}; known: {', '.join(sorted(names)) or 'none'}")
            if param.role == "out" and not NAME_PATTERN.fullmatch(str(value)):
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
                if param.name == "dir":
                    self.dirs.add(fields.get(param.name, param.default))
        return fields

    def safe_fields(self, key: str, value: Any, line: int, field: str, param: registry.Param, names: set[str]) -> None:
        """What a case cannot do with a field: name an adapter that escapes as a path, read a directory it
        did not make, name a refused config type, or hold a regex that backtracks exponentially."""
        if key in ADAPTER_FIELDS:
            self.plain_names(value, line, field)
        if key == "dir" and param.role == "ref" and isinstance(value, str) and value not in self.dirs:
            made = sorted(self.dirs)
            raise self.fail(line, field, f"{value!r} is not a directory made by an earlier step (save_base, "
                                         f"save_pretrained, dump_state_dict); made: {', '.join(made) or 'none'}")
        if key == "config_type" and isinstance(value, str):
            if not re.match(r"^[A-Z][A-Za-z0-9]{0,63}Config$", value):
                raise self.fail(line, field, f"{value!r} is not the name of a peft config class (…Config)")
            if value in REFUSED_CONFIG_TYPES:
                raise self.fail(line, field, f"{value} is not allowed in a case: {REFUSED_CONFIG_TYPES[value]}")
        if key in REGEX_FIELDS and isinstance(value, str):
            self.safe_regex(value, line, field)
        if key in REGEX_KEY_FIELDS and isinstance(value, dict):
            for pattern in value:
                self.safe_regex(str(pattern), value.line_of(pattern) if isinstance(value, LineDict) else line,
                                _join(field, pattern))

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
        seen: dict[str, int] = {}
        bugs = []
        for index, entry in enumerate(entries):
            field = f"known_bugs[{index}]"
            entry = self.mapping(entry, entries.line_of(index), field, BUG_KEYS, {"id", "affected", "fails"})
            bug_id = self.typed(entry, "id", field, str)
            if bug_id in seen:
                raise self.fail(entry.line_of("id"), _join(field, "id"),
                                f"duplicate known-bug id {bug_id!r}; first at line {seen[bug_id]}")
            seen[bug_id] = entry.line_of("id")
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


#: Case files read so far, when :func:`remember_reads` switched remembering on (None: off, the default).
_READS: dict[tuple[Any, ...], list[Case | MalformedCase]] | None = None


def remember_reads() -> None:
    """Remember every case file this process reads, by its path as given, its identity and modification
    time, and the limits in force: the sweep's fork server reads the catalogue once and every run it
    forks finds it read. Off in a pytest session (nothing there reads a file twice)."""
    global _READS
    if _READS is None:
        _READS = {}


def _read_key(path: Path) -> tuple[Any, ...] | None:
    import os
    import stat

    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None  # refused (FIFO, device) or unreadable: read it, and say why, each time
    return (os.fspath(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
            tuple(sorted(limits.COLLECTION.items())), tuple(sorted(limits.SIZES.items())))


def read_case_file(path: Path) -> list[Case | MalformedCase]:
    """Every case in ``path``; a problem becomes one MalformedCase naming file, line and field.

    Never raises: whatever goes wrong while reading one file (even a RecursionError or MemoryError)
    becomes that file's error, and the other files still run.
    """
    key = _read_key(path) if _READS is not None else None
    if key is not None and _READS is not None and key in _READS:
        return list(_READS[key])
    malformed_id = f"malformed-{_slug(path.stem)}"
    try:
        cases = _read_case_file(path, malformed_id)
    except Exception as exc:  # noqa: BLE001 - any failure (RecursionError, MemoryError, ...) is this file's error
        cases = [MalformedCase(malformed_id, CaseFormatError(path, 0, "file", f"cannot be read: {type(exc).__name__}: {exc}"))]
    if key is not None and _READS is not None:
        _READS[key] = list(cases)
    return cases


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:60] or "file"


def _read_bounded(path: Path) -> bytes:
    """The bytes of a regular file of at most ``file_bytes`` (FIFOs, devices and sockets are refused
    before anything is read, even when named explicitly)."""
    import os
    import stat

    limit = limits.COLLECTION["file_bytes"]
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or
                    stat.S_ISBLK(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
            raise _Refused(f"is {kind}, not a case file" if kind != "not a regular file" else "is not a regular file")
        if info.st_size > limit:
            raise _Refused(f"is {info.st_size} bytes; the limit is {limit} (--peft-edges-limits file_bytes=N)")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise _Refused(f"is larger than {limit} bytes (--peft-edges-limits file_bytes=N)")
        return data
    finally:
        os.close(fd)


class _Refused(Exception):
    """A file refused before parsing (kind, size)."""


def _read_case_file(path: Path, malformed_id: str) -> list[Case | MalformedCase]:
    from . import steps as _steps, checks as _checks  # noqa: F401  (register the operations)

    shown = str(path)
    reader = _Reader(shown)
    try:
        text = _read_bounded(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        return [MalformedCase(malformed_id, CaseFormatError(shown, 1, "file", f"not UTF-8 text ({exc.reason} at byte {exc.start})"))]
    except _Refused as exc:
        return [MalformedCase(malformed_id, CaseFormatError(shown, 0, "file", str(exc)))]
    except OSError as exc:
        return [MalformedCase(malformed_id, CaseFormatError(shown, 0, "file", f"cannot be read: {exc.strerror}"))]
    documents = load_documents(text, limits.COLLECTION["yaml_nodes"], limits.COLLECTION["yaml_depth"])
    documents = [item for item in documents if isinstance(item, DocumentError) or item[0] is not None]
    if not documents:
        return [MalformedCase(malformed_id, CaseFormatError(shown, 1, "file", "holds no case (empty YAML)"))]
    most = limits.COLLECTION["cases_per_file"]
    if len(documents) > most:
        return [MalformedCase(malformed_id, CaseFormatError(
            shown, 1, "file", f"holds {len(documents)} documents; the limit is {most} cases per file "
                              "(split it, or --peft-edges-limits cases_per_file=N)"))]
    cases: list[Case | MalformedCase] = []
    for number, item in enumerate(documents):
        suffix = f"-{number + 1}" if len(documents) > 1 else ""
        if isinstance(item, DocumentError):
            problem = item.problem
            if "could not determine a constructor" in problem:
                problem = f"tag not allowed in a case (safe YAML only): {problem.split('tag ')[-1]}"
            if len(documents) > 1:
                problem += f" (document {number + 1} of this file; the others are read on their own)"
            cases.append(MalformedCase(malformed_id + suffix, CaseFormatError(shown, item.line, "yaml", problem)))
            continue
        document, line = item
        try:
            cases.append(reader.case(document, line))
        except CaseFormatError as exc:
            doc_id = document.get("id") if isinstance(document, dict) else None
            name = f"malformed-{doc_id}" if isinstance(doc_id, str) and ID_PATTERN.fullmatch(doc_id) else malformed_id + suffix
            cases.append(MalformedCase(name, exc))
    return cases


def case_files(path: Path) -> list[Path]:
    """The ``*.yaml``/``*.yml`` regular files under ``path`` (or ``path`` itself), sorted."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def load_cases(paths: list[Path]) -> list[Case | MalformedCase]:
    """All cases under ``paths``, sorted by id; duplicate ids and missing paths become MalformedCase."""
    found: list[Case | MalformedCase] = []
    for path in paths:  # one path's failure is its own error; the other paths still run
        try:
            found.extend(_cases_under(path))
        except Exception as exc:  # noqa: BLE001 - a path that cannot be listed is its own error
            found.append(MalformedCase(f"malformed-{_slug(path.name)}", CaseFormatError(
                path, 0, "path", f"cannot be read: {type(exc).__name__}: {exc}")))
    return _unique_sorted(found)


def _cases_under(path: Path) -> list[Case | MalformedCase]:
    if not path.exists() and not path.is_symlink():
        return [MalformedCase(f"malformed-{_slug(path.stem or 'path')}", CaseFormatError(path, 0, "path", "does not exist"))]
    files = case_files(path)
    if not files:
        return [MalformedCase(f"malformed-{_slug(path.name or 'path')}", CaseFormatError(
            path, 0, "path", "is a directory without *.yaml/*.yml case files"))]
    found: list[Case | MalformedCase] = []
    root = path.resolve() if path.is_dir() else None
    for file in files:
        if root is not None and not file.resolve().is_relative_to(root):  # a link out of a shared case directory
            found.append(MalformedCase(f"malformed-{_slug(file.stem)}", CaseFormatError(
                file, 0, "file", "is a link to a file outside the case directory; name that file itself to run it")))
            continue
        found.extend(read_case_file(file))
    return found


def _unique_sorted(found: list[Case | MalformedCase]) -> list[Case | MalformedCase]:
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
