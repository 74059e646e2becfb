"""Case files and directories read into cases: bounded, never raising (a problem is that file's
MalformedCase), ids made unique; remembered across reads only when asked (the sweep's fork server)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from .. import limits
from ..yaml_lines import DocumentError, load_documents
from .cases import Case, CaseFormatError, KnownBug, MalformedCase
from .reader import _Reader
from .rules import ID_PATTERN


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
    from .. import steps as _steps, checks as _checks  # noqa: F401  (register the operations)

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
    return describe_bugs(_unique_sorted(found))


def describe_bugs(found: list[Case | MalformedCase]) -> list[Case | MalformedCase]:
    """A bug is described once: the known bugs recorded with neither ``summary`` nor ``upstream`` take
    both from the case that describes that bug id, among ``found`` first, then in the bundled catalogue
    (read only when ``found`` leaves one undescribed, once a process). Deterministic: the describing case
    with the smallest id wins. A bug described nowhere keeps its empty summary."""
    wanted = {bug.id for case in found if isinstance(case, Case) for bug in case.known_bugs if _undescribed(bug)}
    if not wanted:
        return found
    described = _descriptions(found)
    if wanted - described.keys():
        described = {**_catalogue_descriptions(), **described}
    result: list[Case | MalformedCase] = []
    for case in found:
        if isinstance(case, Case) and any(_undescribed(bug) and bug.id in described for bug in case.known_bugs):
            bugs = tuple(dataclasses.replace(bug, summary=described[bug.id].summary, upstream=described[bug.id].upstream)
                         if _undescribed(bug) and bug.id in described else bug for bug in case.known_bugs)
            case = dataclasses.replace(case, known_bugs=bugs)
        result.append(case)
    return result


def _undescribed(bug: KnownBug) -> bool:
    return not bug.summary and not bug.upstream.issues and not bug.upstream.prs


def _descriptions(cases: list[Case | MalformedCase]) -> dict[str, KnownBug]:
    described: dict[str, KnownBug] = {}
    for case in sorted((c for c in cases if isinstance(c, Case)), key=lambda c: c.id):
        for bug in case.known_bugs:
            if not _undescribed(bug):
                described.setdefault(bug.id, bug)
    return described


#: The bundled catalogue's bug descriptions, by the read keys of its files (a changed file is read again).
_CATALOGUE: dict[tuple[Any, ...], dict[str, KnownBug]] = {}


def _catalogue_descriptions() -> dict[str, KnownBug]:
    """The bundled catalogue's bug descriptions. A session that loads cases twice (collection, then the
    report's ``known_cases``) reads the catalogue for them once: ≈ 0.3 s each time."""
    from ..collection import bundled_cases_dir

    root = bundled_cases_dir()
    key = (os.fspath(root), *(_read_key(file) for file in case_files(root)))
    if key not in _CATALOGUE:
        _CATALOGUE.clear()
        _CATALOGUE[key] = _descriptions(_unique_sorted(_cases_under(root)))
    return _CATALOGUE[key]


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
