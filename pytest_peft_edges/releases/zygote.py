"""A fork server for catalogue runs: imports torch, transformers and the other release-independent
libraries once, then forks one child per run, which imports its own peft release and runs pytest.

Started by :class:`runner.Zygote` inside a shared environment as
``python -m pytest_peft_edges.releases.zygote [PEFT_DIR]``; reads one JSON job a line on stdin
(``{"args", "cwd", "path", "env", "log"}``) and answers ``{"exit": code}``.

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

PRELOAD = ("torch", "numpy", "safetensors", "safetensors.torch", "yaml", "pytest", "huggingface_hub")
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


def main(argv: list[str]) -> int:
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    if argv:
        preload_transformers(argv[0])
    memoize_template_compiles()
    try:
        read_catalogue()
    except Exception as exc:  # noqa: BLE001 - only a warm-up: each run reads what it needs itself
        print(f"zygote: the catalogue was not read ahead: {exc!r}", file=sys.stderr)
    leaked = [name for name in NEVER if name in sys.modules]
    print(json.dumps({"ready": not leaked, "leaked": leaked}), flush=True)
    if leaked:
        return 1
    for line in sys.stdin:
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
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
