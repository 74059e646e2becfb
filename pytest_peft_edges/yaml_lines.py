"""A safe YAML reader that remembers the line of every mapping key and list item.

Only PyYAML's SafeLoader constructors are used: tags such as ``!!python/object`` are rejected, and no
string is ever evaluated.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml


class LineDict(dict):
    """A mapping that knows its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]
    #: Keys whose plain (unquoted) value is followed by `` #...`` on its last line: a YAML comment that may
    #: have cut the text short (``title: Control for #1579 ...`` reads as ``Control for``).
    commented: frozenset = frozenset()

    def line_of(self, key: Any) -> int:
        """The line where ``key`` is written, or the mapping's own line."""
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A list that knows its own line and the line of each item (1-based)."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        """The line of item ``index``, or the list's own line."""
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class DuplicateKey(yaml.MarkedYAMLError):
    """A mapping repeats a key (PyYAML would silently keep the last one)."""


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when built with it
    line_offset = 0  # lines before the text this loader reads (documents after a syntax error)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    own_keys = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)  # merged pairs (``<<: *base``) first, then the mapping's own keys
    merged = len(node.value) - own_keys
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1 + loader.line_offset
    mapping.key_lines = {}
    own: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain scalar", key_node.start_mark
            ) from None
        if index >= merged:  # a key of the mapping itself may override a merged one, never repeat itself
            if key in own:
                raise DuplicateKey(None, None, f"duplicate key {key!r}", key_node.start_mark)
            own.add(key)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1 + loader.line_offset
        if isinstance(value_node, yaml.ScalarNode) and not value_node.style and _comment_follows(loader, value_node):
            mapping.commented = mapping.commented | {key}
    return mapping


def _comment_follows(loader: _LineLoader, node: yaml.ScalarNode) -> bool:
    """Does a `` #`` comment follow the plain scalar ``node`` on the line where it ends?"""
    lines = getattr(loader, "source_lines", ())
    line = node.end_mark.line
    return line < len(lines) and re.match(r"\s+#", lines[line][node.end_mark.column:]) is not None


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    items = LineList(loader.construct_object(child, deep=True) for child in node.value)
    items.line = node.start_mark.line + 1 + loader.line_offset
    items.item_lines = [child.start_mark.line + 1 + loader.line_offset for child in node.value]
    return items


# YAML 1.1 reads `1e-5` as a string; read it as a number, as YAML 1.2 and every case author expects.
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class LimitError(yaml.MarkedYAMLError):
    """A document is too big or too deep (after expanding aliases), or an alias refers to its own ancestor."""


@dataclasses.dataclass
class DocumentError:
    """A document (or the rest of a file) that could not be read: line and problem."""

    line: int
    problem: str
    error: BaseException


def load_documents(text: str, max_nodes: int = 20_000, max_depth: int = 32) -> list[tuple[Any, int] | DocumentError]:
    """Every YAML document in ``text`` with the line it starts on, or a DocumentError in its place.

    A document whose expanded size (aliases counted as what they stand for) passes ``max_nodes``, or
    whose nesting passes ``max_depth``, is refused before anything is built from it. Such a refusal or
    a syntax error stops the document it is in; reading starts again at the next ``---`` line, so the
    documents before and after it are kept.
    """
    results: list[tuple[Any, int] | DocumentError] = []
    offset = 0
    lines = text.splitlines(keepends=True)
    while True:
        chunk = "".join(lines[offset:])
        count, stream_error = _scan(chunk, offset, max_nodes, max_depth)
        results.extend(_construct(chunk, offset, count))
        if stream_error is None:
            return results
        results.append(stream_error)
        restart = next((number for number in range(max(stream_error.line - 1, offset + 1), len(lines))
                        if _DOCUMENT_START.match(lines[number])), None)
        if restart is None or restart <= offset:
            return results
        offset = restart


_DOCUMENT_START = re.compile(r"^---(?:[ \t]|\r?\n|$)")


def _problem(exc: BaseException, offset: int) -> DocumentError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 + offset if mark is not None else offset + 1
    if isinstance(exc, yaml.YAMLError):
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    else:
        problem = f"{type(exc).__name__}: {exc}"
    return DocumentError(line, str(problem), exc)


def _scan(text: str, offset: int, max_nodes: int, max_depth: int) -> tuple[int, DocumentError | None]:
    """Walk the events of ``text`` (no tree is built): how many documents are fine, then the syntax
    error or the limit that stopped the walk (the caller goes on at the next ``---`` line), if any."""
    count = 0
    loader = _LineLoader(text)
    stack: list[list[Any]] = []  # per open collection: [expanded size, depth below it, anchor]
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded size, depth) of its node
    total = 0

    def refuse(message: str, mark: Any) -> DocumentError:
        return _problem(LimitError(None, None, message, mark), offset)

    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                stack, anchors, total = [], {}, 0
                continue
            if isinstance(event, yaml.DocumentEndEvent):
                count += 1
                continue
            if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent)):
                continue
            if isinstance(event, yaml.CollectionStartEvent):
                total += 1
                stack.append([1, 0, event.anchor])
                if len(stack) > max_depth:
                    return count, refuse(f"nesting deeper than {max_depth} levels", event.start_mark)
                continue
            if isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    held = any(entry[2] == event.anchor for entry in stack)
                    return count, refuse(f"alias *{event.anchor} " + (
                        "refers to a node that holds it" if held else f"has no anchor &{event.anchor} before it"),
                        event.start_mark)
                size, depth = anchors[event.anchor]
                total += size
                anchor = None
            elif isinstance(event, yaml.CollectionEndEvent):
                size, depth, anchor = stack.pop()
                depth += 1
            else:  # a scalar
                size, depth, anchor = 1, 0, event.anchor
                total += 1
            if anchor:
                anchors[anchor] = (size, depth)
            if stack:
                stack[-1][0] += size
                stack[-1][1] = max(stack[-1][1], depth)
            # A refusal stops the walk here: the caller goes on at the next '---' line.
            if len(stack) + depth > max_depth:
                return count, refuse(f"nesting deeper than {max_depth} levels (aliases expanded)", event.start_mark)
            if total > max_nodes:
                return count, refuse(f"more than {max_nodes} YAML nodes (aliases expanded)", event.start_mark)
    except yaml.YAMLError as exc:
        return count, _problem(exc, offset)
    finally:
        loader.dispose()
    return count, None


def _construct(text: str, offset: int, count: int) -> list[tuple[Any, int] | DocumentError]:
    """Build the first ``count`` documents of ``text`` (the scan found them within the limits)."""
    results: list[tuple[Any, int] | DocumentError] = []
    loader = _LineLoader(text)
    loader.line_offset = offset
    loader.source_lines = text.splitlines()
    try:
        for _ in range(count):
            loader.check_node()
            try:
                node = loader.get_node()
                results.append((loader.construct_document(node), node.start_mark.line + 1 + offset))
            except yaml.YAMLError as exc:  # a constructor error: get_node read the whole document, go on
                results.append(_problem(exc, offset))
                loader.constructed_objects, loader.recursive_objects, loader.state_generators = {}, {}, []
    finally:
        loader.dispose()
    return results
