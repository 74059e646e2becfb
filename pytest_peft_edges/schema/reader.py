"""One YAML document validated into a :class:`Case`, raising CaseFormatError at the first problem."""

from __future__ import annotations

import re
from typing import Any

from .. import limits, registry, versions
from ..architectures import HEADS, default_head
from ..yaml_lines import LineDict, LineList
from .cases import (Case, CaseFormatError, CheckSpec, ExpectedRaise, FailureSpec, KnownBug, ModelSpec, StepSpec,
                    Upstream)
from .rules import (ADAPTER_FIELDS, ATTENTION, BUG_KEYS, CASE_KEYS, CHECK_META, CODE_FIELDS, CONFIG_REGEX_FIELDS,
                    CONFIG_REGEX_KEY_FIELDS, FAIL_KEYS, FIELD_PATTERN, ID_PATTERN, MAX_INT, MAX_SEED, MODEL_KEYS,
                    NAME_PATTERN, PLAIN_NAME, REFUSED_CONFIG_TYPES, REGEX_FIELDS, REGEX_KEY_FIELDS, STEP_META,
                    TEXT_FIELDS, UPSTREAM_KEYS, _CONTROL)


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

