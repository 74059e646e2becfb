"""YAML cases as native pytest items.

- A user's case files (``--peft-edges-cases PATH``, ini ``peft_edges_cases``, or a ``*.yaml`` file given
  as an argument) are ``pytest.File`` nodes found by :func:`pytest_collect_file`: ids are
  ``cases/my-bug.yaml::my-bug``, relative to the rootdir like any test file.
- The bundled catalogue hangs off the session under the virtual directory ``peft-edges``: ids are
  ``peft-edges/<file>.yaml::<case-id>`` wherever the package is installed. An argument that starts with
  ``peft-edges`` (``peft-edges``, ``peft-edges/x.yaml``, ``peft-edges/x.yaml::id``) selects from it,
  so every printed id can be passed back to pytest. No module of this package is imported as a test
  module, and ``sys.path`` / ``sys.modules`` stay as the user set them.

Nothing here imports torch, transformers or peft; a case imports them when it runs.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

VIRTUAL_ROOT = "peft-edges"
SUFFIXES = (".yaml", ".yml")


def bundled_cases_dir() -> Path:
    """The catalogue shipped with the package (in a wheel) or the repo's ``cases/`` (editable install)."""
    packaged = Path(__file__).with_name("cases")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "cases"


@dataclasses.dataclass
class CaseCollection:
    """What this session collects: the catalogue (whole or a selection) and the user's case paths."""

    catalogue: bool = False
    #: file relative to the catalogue directory -> selected case ids (None: the whole file)
    selected: dict[str, set[str] | None] = dataclasses.field(default_factory=dict)
    user_paths: list[Path] = dataclasses.field(default_factory=list)
    explicit_files: list[Path] = dataclasses.field(default_factory=list)
    #: directories on the way to a user case path that pytest would skip (venv, norecursedirs)
    forced: set[Path] = dataclasses.field(default_factory=set)
    base: Path | None = None
    _index: dict[Path, list[Any]] | None = None
    _problems: list[tuple[Path, Any]] = dataclasses.field(default_factory=list)

    @property
    def bundled(self) -> bool:
        return self.catalogue or bool(self.selected)

    def index(self) -> dict[Path, list[Any]]:
        """Every case by its resolved file (read once; duplicate ids across files are flagged)."""
        if self._index is None:
            from .schema import case_files, load_cases

            inputs: list[Path] = []
            seen: set[Path] = set()
            roots = ([bundled_cases_dir()] if self.bundled else []) + self.user_paths + self.explicit_files
            for root in roots:
                files = case_files(root) if root.exists() else []
                if not files:
                    inputs.append(self.shown(root))  # load_cases turns it into one clear error
                for file in files:
                    if file.resolve() not in seen:
                        seen.add(file.resolve())
                        inputs.append(self.shown(file))
            index: dict[Path, list[Any]] = {}
            for case in load_cases(inputs):
                where = Path(case.path if hasattr(case, "path") else case.error.path)
                if not where.is_absolute() and self.base is not None:
                    where = self.base / where
                if where.is_file():
                    index.setdefault(where.resolve(), []).append(case)
                else:
                    self._problems.append((where, case))
            self._index = index
        return self._index

    def shown(self, path: Path) -> Path:
        """``path`` relative to the invocation directory when it lies below it (messages stay short)."""
        if self.base is not None and self.base in path.parents:
            return path.relative_to(self.base)
        return path

    def cases_in(self, file: Path) -> list[Any]:
        return self.index().get(file.resolve(), [])

    def problems(self) -> list[tuple[Path, Any]]:
        self.index()
        return self._problems

    def claims(self, file: Path) -> bool:
        """True for a user case file: under a case path, or a YAML file given as an argument."""
        resolved = file.resolve()
        if any(resolved == p.resolve() for p in self.explicit_files):
            return True
        return any(resolved == root or root in resolved.parents for root in (p.resolve() for p in self.user_paths))


STATE = pytest.StashKey[CaseCollection]()
#: bug ids of the ``peft_edges_accept`` policy (None: no policy)
ACCEPTED = pytest.StashKey["frozenset[str] | None"]()


def known_cases(config: pytest.Config) -> list[Any]:
    """Every readable case of this session (bundled catalogue and the user's case paths), for look-ups."""
    state = config.stash.get(STATE, None)
    lookup = CaseCollection(catalogue=True, base=Path(config.invocation_params.dir), user_paths=list(state.user_paths) if state else
                            [Path(os.path.abspath(p)) for p in config.getini("peft_edges_cases")])
    return [case for cases in lookup.index().values() for case in cases if hasattr(case, "known_bugs")]


def known_bugs(config: pytest.Config) -> dict[str, Any]:
    """Bug id -> KnownBug over :func:`known_cases` (read once per session)."""
    cached = config.stash.get(_BUGS, None)
    if cached is None:
        cached = {bug.id: bug for case in known_cases(config) for bug in case.known_bugs}
        config.stash[_BUGS] = cached
    return cached


_BUGS = pytest.StashKey[dict]()


def unknown(kind: str, wanted: list[str], known: set[str]) -> None:
    """A usage error naming every unknown tag or bug id, with the known ones."""
    missing = [w for w in wanted if w not in known]
    if missing:
        raise pytest.UsageError(f"unknown peft-edges {kind}{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
                                f"(known: {', '.join(sorted(known))})")


def _split(arg: str) -> tuple[str, list[str]]:
    base, *parts = arg.split("::")
    return base, parts


def _is_virtual(arg: str, invocation: Path) -> bool:
    base, _ = _split(arg)
    base = base.replace(os.sep, "/")
    if base != VIRTUAL_ROOT and not base.startswith(VIRTUAL_ROOT + "/"):
        return False
    return not (invocation / base).exists()  # a real path of that name wins


def _select(state: CaseCollection, arg: str) -> None:
    """Record ``peft-edges[/file.yaml[::case-id]]``; a wrong file or id is a usage error."""
    base, parts = _split(arg)
    rel = base.replace(os.sep, "/")[len(VIRTUAL_ROOT):].strip("/")
    root = bundled_cases_dir()
    target = root / rel if rel else root
    if "[" in arg or not target.exists() or (rel and root.resolve() not in target.resolve().parents):
        raise pytest.UsageError(f"file or directory not found: {arg}")
    if target.is_dir():
        if parts:
            raise pytest.UsageError(f"directory argument cannot contain :: selection parts: {arg}")
        if not rel:
            state.catalogue = True
            return
        for file in sorted(target.rglob("*")):
            if file.suffix in SUFFIXES:
                state.selected[file.relative_to(root).as_posix()] = None
        return
    key = target.relative_to(root).as_posix()
    if not parts:
        state.selected[key] = None
        return
    from .schema import read_case_file

    ids = {case.id for case in read_case_file(target)}
    if len(parts) > 1 or parts[0] not in ids:
        raise pytest.UsageError(f"not found: {arg}\n(no case {'::'.join(parts)!r} in {VIRTUAL_ROOT}/{key})")
    current = state.selected.get(key, set())
    if current is not None:
        current.add(parts[0])
        state.selected[key] = current


def _is_venv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file() or (path / "conda-meta" / "history").is_file()


def configure(config: pytest.Config) -> CaseCollection | None:
    """Read the options and arguments; rewrite ``config.args`` so pytest collects what is asked.

    Returns None (and changes nothing) when this session collects no case.
    """
    option = config.option
    invocation = Path(config.invocation_params.dir)
    virtual = [arg for arg in config.args if _is_virtual(arg, invocation)]
    option_paths = [invocation / p for p in option.peft_edges_cases]
    ini_paths = [Path(p) for p in config.getini("peft_edges_cases")]
    yaml_args = [arg for arg in config.args if arg not in virtual and Path(_split(arg)[0]).suffix in SUFFIXES
                 and (invocation / _split(arg)[0]).is_file()]
    if not (option.peft_edges_catalogue or virtual or option_paths or ini_paths or yaml_args):
        return None
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    user_roots = [Path(os.path.abspath(p)) for p in option_paths + ini_paths]

    def names_cases(arg: str) -> bool:
        path = Path(os.path.abspath(invocation / _split(arg)[0]))
        return arg in virtual or arg in yaml_args or any(r == path or r in path.parents for r in user_roots)

    # Arguments that all name cases select them: the options then only say where cases live, so an id
    # passed back with the options of the first run still runs that case alone.
    selective = explicit and bool(config.args) and all(names_cases(arg) for arg in config.args)
    state = CaseCollection(catalogue=bool(option.peft_edges_catalogue) and not selective, base=invocation)
    for arg in virtual:
        _select(state, arg)
    args = [arg for arg in config.args if arg not in virtual]
    if not explicit and (option.peft_edges_catalogue or option_paths):
        args = []  # `pytest --peft-edges` runs the cases, not the whole repo
    elif explicit and not args and virtual:
        args = []  # only the named catalogue cases
    state.user_paths = user_roots
    asked = {Path(os.path.abspath(p)) for p in option_paths}
    arg_paths = []
    for arg in args:
        path = Path(os.path.abspath(invocation / _split(arg)[0]))
        arg_paths.append(path)
        if path.suffix in SUFFIXES and path.is_file():
            state.explicit_files.append(path)
    norecurse = config.getini("norecursedirs")
    in_venv_ok = config.getoption("collect_in_virtualenv", False)
    for path in state.user_paths:
        if not (path.is_dir() or path.is_file()):
            continue  # missing, a FIFO or a device: an error item (see ``problems``), not a pytest usage error
        covering = [a for a in arg_paths if a == path or a in path.parents]
        if not covering:
            if not selective and (not explicit or path in asked):  # ini paths join a run of the default paths only
                args.append(str(path))
                arg_paths.append(path)
            continue
        for top in covering:  # reachable from an argument: make sure pytest does not skip the way there
            for directory in [path, *path.parents]:
                if directory == top or top not in directory.parents:
                    break
                if (not in_venv_ok and _is_venv(directory)) or any(
                        fnmatch.fnmatch(directory.name, pattern) for pattern in norecurse):
                    state.forced.add(directory)
    config.args[:] = args
    return state


def ignore_collect(state: CaseCollection, path: Path) -> bool | None:
    """Walk through the forced directories to the case paths, and nowhere else inside them."""
    if not state.forced:
        return None
    path = Path(os.path.abspath(path))
    if path in state.forced:
        return False
    if any(f in path.parents for f in state.forced):
        on_way = any(path == p or path in p.parents or p in path.parents for p in state.user_paths)
        return None if on_way else True
    return None


# Nodes -------------------------------------------------------------------------------------------

def _run_case(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The callable of every case item: run the case in ``tmp_path`` and act on its verdict."""
    from . import gc_freeze, offline, reporting

    item = request.node
    option = request.config.option
    export_dir = option.peft_edges_export_failures
    if export_dir is not None:
        export_dir = Path(request.config.invocation_params.dir) / export_dir
    with offline.case_offline(), gc_freeze.case_phase():
        reporting.judge_and_act(item, item.case, tmp_path, option.peft_edges_known, export_dir,
                                accepted=request.config.stash.get(ACCEPTED, None))


class CaseItem(pytest.Function):
    """One YAML case: a pytest function item (fixtures, marks, ``-k``, xdist) whose call runs the case."""

    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(callobj=_run_case, **kwargs)
        self.case = case
        self.add_marker(pytest.mark.peft_edges_case(case.id))
        for tag in getattr(case, "tags", ()):
            self.extra_keyword_matches.add(tag)

    def setup(self) -> None:
        from .schema import MalformedCase

        if isinstance(self.case, MalformedCase):
            from . import reporting

            reporting.record(self, case_id=self.case.id, verdict="error", message=str(self.case.error), upstream=[])
            pytest.fail(f"malformed peft-edges case: {self.case.error}", pytrace=False)
        super().setup()

    def reportinfo(self) -> tuple[Path, int | None, str]:
        case = self.case
        path = getattr(case, "path", None) or case.error.path
        line = getattr(case, "line", None) or getattr(getattr(case, "error", None), "line", 0)
        return Path(path), max(line - 1, 0), f"peft-edges case {case.id}"


def _items(parent: pytest.Collector, cases: list[Any], wanted: set[str] | None = None) -> Iterator[CaseItem]:
    for case in cases:
        if wanted is None or case.id in wanted:
            yield CaseItem.from_parent(parent, name=case.id, case=case)


class CaseFile(pytest.File):
    """A user's YAML case file; its items are ``<file>::<case-id>``."""

    def collect(self) -> Iterator[CaseItem]:
        yield from _items(self, self.config.stash[STATE].cases_in(self.path))


class CatalogueFile(pytest.Collector):
    """One file of the bundled catalogue, id ``peft-edges/<file>.yaml`` (not a ``pytest.File``: its real
    path lies in site-packages, outside the rootdir, and ``--lf`` must not skip it)."""

    def __init__(self, *, wanted: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wanted = wanted

    def collect(self) -> Iterator[CaseItem]:
        yield from _items(self, self.config.stash[STATE].cases_in(self.path), self.wanted)


class Catalogue(pytest.Collector):
    """The bundled catalogue as the virtual directory ``peft-edges``."""

    def collect(self) -> Iterator[CatalogueFile]:
        state = self.config.stash[STATE]
        root = bundled_cases_dir()
        from .schema import case_files

        for file in case_files(root) if root.is_dir() else []:
            rel = file.relative_to(root).as_posix()
            if state.catalogue or rel in state.selected:
                wanted = None if state.catalogue else state.selected[rel]
                yield CatalogueFile.from_parent(self, name=rel, path=file, nodeid=f"{VIRTUAL_ROOT}/{rel}",
                                                wanted=wanted)


class CasePathProblem(pytest.Collector):
    """A case path that does not exist or holds no case file: one error item under the path's id."""

    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def collect(self) -> Iterator[CaseItem]:
        yield CaseItem.from_parent(self, name=self.case.id, case=self.case)


def session_nodes(session: pytest.Session, state: CaseCollection) -> list[pytest.Collector]:
    """The collectors the session gets beside what pytest found under its arguments."""
    nodes: list[pytest.Collector] = []
    if state.bundled:
        nodes.append(Catalogue.from_parent(session, name=VIRTUAL_ROOT, path=bundled_cases_dir(), nodeid=VIRTUAL_ROOT))
    invocation = Path(session.config.invocation_params.dir)
    for path, case in state.problems():
        try:
            shown = path.relative_to(session.config.rootpath).as_posix()
        except ValueError:
            shown = os.path.relpath(path, invocation) if path.is_absolute() else str(path)
        nodes.append(CasePathProblem.from_parent(session, name=shown, path=path if path.exists() else invocation,
                                                 nodeid=shown, case=case))
    return nodes
