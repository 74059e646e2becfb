"""Shared environments and a cache of peft releases, built with uv (no home-made package manager).

Layout of the cache directory::

    CACHE/envs/tf<transformers>-<torch>-py<X.Y>/   a uv venv: torch, transformers, peft's dependencies, pytest
    CACHE/peft/<version>/                         ``uv pip install --no-deps --target`` of one peft release
    CACHE/plugin/<hash>/pytest_peft_edges/        this package (with its catalogue) as the runs import it
    CACHE/pycache/                                bytecode of everything the runs import (PYTHONPYCACHEPREFIX)

An environment contains no peft: each run puts one release directory first on ``PYTHONPATH``. Every
entry is built under a lock, into a temporary name renamed into place when complete, so concurrent runs
(threads or processes) share it and an interrupted build is never mistaken for a finished one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

#: What a shared environment holds besides torch and transformers: peft's runtime dependencies and pytest.
ENV_PACKAGES = ("accelerate", "safetensors", "numpy", "psutil", "tqdm", "PyYAML", "packaging", "pytest")
MARKER = "peft-edges-env.json"
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


class BuildError(Exception):
    """An environment or a release could not be installed (the uv command and its output)."""


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "peft-edges"


def find_uv() -> str:
    """The uv executable: the ``uv`` package's binary, else ``uv`` on PATH or beside this Python."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    for candidate in (shutil.which("uv"), str(Path(sys.executable).with_name("uv"))):
        if candidate and Path(candidate).is_file():
            return candidate
    raise BuildError("the sweep and bisect install releases with uv: pip install uv")


def default_torch() -> str:
    """``torch==<the torch of this interpreter>`` (public version), or ``torch`` when none is installed."""
    from ..versions import installed

    version = installed("torch")
    return f"torch=={version.split('+')[0]}" if version else "torch"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive across threads (one lock object per path) and processes (flock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(str(path), threading.Lock())
    with thread_lock, open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


class Store:
    """The cache of environments and releases; builds what a run needs on demand."""

    def __init__(self, cache: Path | None = None, *, torch: str | None = None, python: str | None = None,
                 uv: str | None = None, log: Callable[[str], None] = lambda line: None, fork: bool = True,
                 share_torch: bool = True) -> None:
        self.cache = Path(cache or default_cache()).resolve()
        self.fork = fork  # runs fork from a server that imported torch once (runner.Zygote)
        self.share_torch = share_torch  # the environments' servers fork from one that holds torch (runner.RootServer)
        self.torch = torch or default_torch()
        self.python = python or sys.executable
        self._uv = uv
        self.log = log
        self.built: list[tuple[str, float]] = []  # (what, seconds) of every build this store did

    @property
    def uv(self) -> str:
        # Once, under a lock: the sweep's threads ask at the same moment, and the uv package's
        # find_uv_bin reads sysconfig, whose first use is not thread-safe (seen: a TypeError).
        with _THREAD_LOCKS_GUARD:
            if self._uv is None:
                self._uv = find_uv()
        return self._uv

    def _uv_run(self, args: list[str]) -> None:
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
        proc = subprocess.run([self.uv, *args], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"uv {' '.join(args)} failed ({proc.returncode}):\n{(proc.stderr or proc.stdout)[-3000:]}")

    # peft releases -----------------------------------------------------------------------------
    def peft_dir(self, version: str) -> Path:
        return self.cache / "peft" / version

    def peft(self, version: str) -> Path:
        """The directory holding peft ``version`` (installed now if it is not in the cache yet)."""
        target = self.peft_dir(version)
        if (target / "peft" / "__init__.py").is_file():
            return target
        with locked(self.cache / "locks" / f"peft-{version}.lock"):
            if (target / "peft" / "__init__.py").is_file():
                return target
            start = time.perf_counter()
            partial = target.with_name(f".{version}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            self._uv_run(["pip", "install", "--quiet", "--no-deps", "--python", self.python, "--target",
                          str(partial), f"peft=={version}"])
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
            self._done(f"peft {version}", start)
        return target

    # shared environments -------------------------------------------------------------------------
    def env_dir(self, transformers: str) -> Path:
        minor = f"{sys.version_info.major}.{sys.version_info.minor}" if self.python == sys.executable else \
            _slug(Path(self.python).name)
        return self.cache / "envs" / f"tf{transformers}-{_slug(self.torch)}-py{minor}"

    def has_env(self, transformers: str) -> bool:
        """Whether the environment for ``transformers`` is built (without building it)."""
        return (self.env_dir(transformers) / MARKER).is_file()

    def env(self, transformers: str) -> str:
        """The Python of the shared environment for ``transformers`` (built now if needed)."""
        home = self.env_dir(transformers)
        python = home / "bin" / "python"
        if self.has_env(transformers):
            return str(python)
        with locked(self.cache / "locks" / f"{home.name}.lock"):
            if self.has_env(transformers):
                return str(python)
            start = time.perf_counter()
            shutil.rmtree(home, ignore_errors=True)
            self._uv_run(["venv", "--quiet", "--python", self.python, str(home)])
            requirements = [self.torch, f"transformers=={transformers}", *ENV_PACKAGES]
            self._uv_run(["pip", "install", "--quiet", "--python", str(python), *requirements])
            self.share_bytecode(home)
            # Compile what every run imports once, here, instead of in two parallel first runs.
            subprocess.run([str(python), "-c", "import torch, transformers, transformers.modeling_utils"],
                           env=self.run_env([]), capture_output=True)
            (home / MARKER).write_text(json.dumps({"transformers": transformers, "torch": self.torch,
                                                   "requirements": requirements}, indent=2) + "\n")
            self._done(f"environment transformers {transformers}", start)
        return str(python)

    def share_bytecode(self, home: Path) -> int:
        """Hard-link into ``home``'s part of the bytecode cache the bytecode already compiled, in the
        environments built before, of every source file ``home`` shares with them (the same file: uv
        links both from its cache, so torch, numpy, pytest... are compiled once for all environments).
        Python still checks each against its source's size and time and fixes the file name it
        records. Returns how many were linked."""
        prefix = self.cache / "pycache"
        tag = sys.implementation.cache_tag
        sites = sorted(home.glob("lib/python*/site-packages"))
        if not sites or tag is None:
            return 0
        site = sites[0]
        linked = 0
        for other in sorted((self.cache / "envs").iterdir()):
            if other == home or not (other / MARKER).is_file():
                continue
            donor_site = other / site.relative_to(home)
            compiled = prefix / str(donor_site).lstrip(os.sep)
            for pyc in compiled.rglob(f"*.{tag}.pyc"):
                relative = pyc.parent.relative_to(compiled)
                source = relative / (pyc.name.split(".", 1)[0] + ".py")
                target = prefix / str(site / relative).lstrip(os.sep) / pyc.name
                if target.exists():
                    continue
                try:
                    shared = os.path.samefile(donor_site / source, site / source)
                except OSError:
                    continue
                if shared:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with contextlib.suppress(FileExistsError):
                        os.link(pyc, target)
                        linked += 1
        return linked

    def _done(self, what: str, start: float) -> None:
        seconds = time.perf_counter() - start
        self.built.append((what, seconds))
        self.log(f"built {what} in {seconds:.1f} s")

    # this package, as the runs import it ------------------------------------------------------------
    def plugin(self) -> Path:
        """A directory holding a copy of this package (and its catalogue) for ``PYTHONPATH``.

        A copy, not this package's own parent directory: that may be a site-packages with its own
        torch/transformers/peft, which must not leak into the shared environments.
        """
        from ..plugin import bundled_cases_dir

        package = Path(__file__).resolve().parent.parent
        cases = bundled_cases_dir()
        files = sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                       and p.suffix in (".py", ".typed", ".yaml", ".yml"))
        case_files = sorted(p for p in cases.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))
        digest = hashlib.sha256()
        for path in files + case_files:
            digest.update(str(path).encode() + b"\0" + path.read_bytes())
        root = self.cache / "plugin" / digest.hexdigest()[:16]
        if (root / "pytest.ini").is_file():
            return root
        with locked(self.cache / "locks" / "plugin.lock"):
            if (root / "pytest.ini").is_file():
                return root
            partial = root.with_name(root.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(package, partial / "pytest_peft_edges",
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            if not (partial / "pytest_peft_edges" / "cases").is_dir():
                shutil.copytree(cases, partial / "pytest_peft_edges" / "cases")
            # An ini file of its own: the runs never pick up the rootdir, addopts or conftest of the
            # directory the sweep was started from.
            (partial / "pytest.ini").write_text("[pytest]\n")
            shutil.rmtree(root, ignore_errors=True)
            partial.rename(root)
        return root

    def run_env(self, pythonpath: list[Path]) -> dict[str, str]:
        """The environment of a run: offline, bytecode cached in the store, only ``pythonpath`` added."""
        env = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update({"PYTHONPYCACHEPREFIX": str(self.cache / "pycache"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
        # Tiny models gain nothing from intra-op threads, and two runs side by side on two cores each
        # spinning two OpenMP threads doubled the CPU time of a run (12 s -> 6 s measured).
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, "1")
        # One hash seed for every run: a set_order case names the renaming that gave each set order (and
        # its messages may hold renamed names), which depends on the seed; so the reports of two sweeps
        # differed there. The set orders themselves are all tried whatever the seed.
        env.setdefault("PYTHONHASHSEED", "0")
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
        return env
