"""A fork server for catalogue runs: imports torch, transformers and the other release-independent
libraries once, then forks one child per run, which imports its own peft release and runs pytest.

Started by :class:`runner.Zygote` inside a shared environment as
``python -m pytest_peft_edges.releases.zygote [PEFT_DIR]``; reads one JSON job a line on stdin
(``{"args", "cwd", "path", "env", "log"}``) and answers ``{"exit": code}``.

Or started once for all environments by :class:`runner.RootServer` as ``... zygote --root``: it imports
only what every environment shares (``ROOT_PRELOAD``: torch and the parts of it transformers imports), then
reads one request a line (``{"home", "socket", "peft_dir"}``) and forks a server for that environment
(:func:`switch_environment`: its site-packages, prefix and executable, after checking every module already
imported is the very file the environment holds), which answers on the client's Unix socket as above.

transformers is imported here only with a peft release directory (``PEFT_DIR``, any release of the
cache) on ``sys.path``, and peft itself never: transformers 4 records at import *whether* peft is
installed (true for every run), and reads peft's version from its metadata when it checks it, which the
child finds in its own release, first on ``sys.path``. transformers 5 caches both answers on first use:
the caches are emptied before the first fork. The server refuses to serve when peft got imported.
Nothing is frozen here (``gc.freeze()``): the plugin freezes around each case only when nobody else
froze, and a frozen server made every run slower (8.2-9.8 s against 4.5-5.5 s a run, measured).

Two things every run would redo are done here once, for all of them (neither changes what a run sees):
the catalogue's case files are read (``schema.remember_reads``), and jinja2 templates compiled from the
same source in the same environment are compiled once (:func:`memoize_template_compiles`): peft's
``save_pretrained`` renders huggingface_hub's model card template each time, about 50 times a run.
"""

from __future__ import annotations

import json
import os
import sys

#: What every environment holds in the same release: torch and what the runs import beside it.
SHARED = ("torch", "numpy", "safetensors", "safetensors.torch", "yaml", "pytest")
#: What a server for one environment imports (and huggingface_hub, whose release follows transformers').
PRELOAD = SHARED + ("huggingface_hub",)
#: What the root server (``--root``) imports: the shared libraries with the heavy parts of torch that
#: transformers imports, and no module of a package whose release differs between the environments.
ROOT_PRELOAD = SHARED + ("jinja2", "sympy", "torch.distributed.tensor", "torch._dynamo")
NEVER = ("peft",)


def preload_transformers(peft_dir: str) -> None:
    """Import transformers, its modeling code and the classes of the tiny architectures, with
    ``peft_dir`` on ``sys.path`` only meanwhile; then empty transformers' caches of installed packages."""
    import importlib

    from ..architectures import CONFIGS, HEADS

    sys.path.insert(0, peft_dir)
    importlib.invalidate_caches()
    try:
        import transformers
        import transformers.modeling_utils  # noqa: F401 - what every tiny model imports

        names = [config for config, _ in CONFIGS.values()]
        names += [name for heads in HEADS.values() for name in heads.values()]
        for name in names:
            getattr(transformers, name, None)  # resolves transformers' lazy module of the architecture
    finally:
        sys.path.remove(peft_dir)
        importlib.invalidate_caches()
    from transformers.utils import import_utils

    for name in ("is_peft_available", "_is_package_available"):
        clear = getattr(getattr(import_utils, name, None), "cache_clear", None)
        if clear is not None:
            clear()


def memoize_template_compiles() -> None:
    """``jinja2.Environment.compile`` of a template source string returns the code object it compiled
    the first time for that environment, source, name and filename (a code object is immutable, and
    each ``Template`` still executes it in a namespace of its own); then compile huggingface_hub's
    model card template once, before any fork."""
    try:
        import jinja2
    except ImportError:
        return
    original = jinja2.Environment.compile
    compiled: dict[tuple[object, ...], object] = {}

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):  # noqa: A001
        if raw or not isinstance(source, str):
            return original(self, source, name, filename, raw, defer_init)
        key = (self, source, name, filename, defer_init)
        if key not in compiled:
            compiled[key] = original(self, source, name, filename, raw, defer_init)
        return compiled[key]

    jinja2.Environment.compile = compile
    try:
        from huggingface_hub import ModelCard, ModelCardData

        ModelCard.from_template(ModelCardData())
    except Exception:  # noqa: BLE001 - only a warm-up: a run that needs the card compiles it itself
        pass


def read_catalogue() -> None:
    """Read the bundled catalogue as a run's collection will (paths shown from this directory)."""
    from pathlib import Path

    from .. import schema
    from ..collection import CaseCollection

    schema.remember_reads()
    CaseCollection(catalogue=True, base=Path.cwd()).index()


def warm_up(peft_dir: str | None) -> list[str]:
    """Everything a server does before its first fork; returns the modules that must not be imported
    here but were (then the server refuses to serve)."""
    preload(PRELOAD)
    if peft_dir:
        preload_transformers(peft_dir)
    memoize_template_compiles()
    try:
        read_catalogue()
    except Exception as exc:  # noqa: BLE001 - only a warm-up: each run reads what it needs itself
        print(f"zygote: the catalogue was not read ahead: {exc!r}", file=sys.stderr)
    return [name for name in NEVER if name in sys.modules]


def serve(jobs, answers) -> None:
    """Fork one child per job line of ``jobs`` (it runs pytest and exits); write its exit code to ``answers``."""
    for line in jobs:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: becomes the run
            code = 3
            try:
                fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.chdir(job["cwd"])
                os.environ.update(job["env"])
                sys.path[0:0] = job["path"]
                import importlib

                importlib.invalidate_caches()
                import pytest

                code = int(pytest.main(job["args"]))
            except BaseException as exc:  # noqa: BLE001 - reported through the exit code and the log
                print(f"zygote child failed: {exc!r}", file=sys.stderr)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n")
        answers.flush()


def switch_environment(home: str) -> list[str]:
    """Make this process see the environment ``home`` instead of its own: its site-packages in place of
    ours on ``sys.path``, its prefix and executable. Returns the imported modules whose file is not the
    very file (same inode) ``home`` holds at that place: then this process cannot stand for ``home``."""
    import importlib
    import site

    own = [os.path.realpath(p) for p in site.getsitepackages() if os.path.isdir(p)]
    theirs = [os.path.join(home, os.path.relpath(p, os.path.realpath(sys.prefix))) for p in own]
    differ = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        real = os.path.realpath(path)
        for mine, other in zip(own, theirs):
            if real.startswith(mine + os.sep):
                counterpart = os.path.join(other, os.path.relpath(real, mine))
                try:
                    same = os.path.samefile(real, counterpart)
                except OSError:
                    same = False
                if not same:
                    differ.append(name)
    sys.path[:] = [theirs[own.index(os.path.realpath(p))] if os.path.realpath(p) in own else p for p in sys.path]
    sys.prefix = sys.exec_prefix = home
    sys.executable = os.path.join(home, "bin", "python")
    importlib.invalidate_caches()
    return sorted(differ)


def serve_environments(requests) -> None:
    """The root server: for each request line ``{"home", "socket", "peft_dir"}`` fork a server for that
    environment, which connects to the client's Unix socket, says whether it can stand for the environment,
    and serves the jobs sent there (:func:`serve`)."""
    import socket

    children = []
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.dup2(2, 1)  # nobody reads the root's stdout any more
                connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                connection.connect(request["socket"])
                jobs, answers = connection.makefile("r"), connection.makefile("w")
                differ = switch_environment(request["home"])
                leaked = [] if differ else warm_up(request.get("peft_dir"))
                answers.write(json.dumps({"ready": not differ and not leaked, "differ": differ[:20],
                                          "leaked": leaked}) + "\n")
                answers.flush()
                if not differ and not leaked:
                    serve(jobs, answers)
            except BaseException as exc:  # noqa: BLE001 - the client sees the connection close
                print(f"zygote environment server failed: {exc!r}", file=sys.stderr)
                code = 3
            finally:
                os._exit(code)
        children.append(pid)
        for child in list(children):  # reap the servers whose client is done
            if os.waitpid(child, os.WNOHANG)[0]:
                children.remove(child)
    for child in children:
        os.waitpid(child, 0)


def preload(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            __import__(name)
        except ImportError:
            pass


def main(argv: list[str]) -> int:
    if argv == ["--root"]:
        preload(ROOT_PRELOAD)
        leaked = [name for name in NEVER + ("transformers",) if name in sys.modules]
        print(json.dumps({"ready": not leaked, "leaked": leaked}), flush=True)
        if not leaked:
            serve_environments(sys.stdin)
        return 1 if leaked else 0
    leaked = warm_up(argv[0] if argv else None)
    print(json.dumps({"ready": not leaked, "leaked": leaked}), flush=True)
    if leaked:
        return 1
    serve(sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
