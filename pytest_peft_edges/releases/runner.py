"""One catalogue run: a peft release (from the cache) in the shared environment of a transformers release."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from .envs import BuildError, Store


@dataclasses.dataclass
class Run:
    """The outcome of one (peft, transformers) run: its JSON report, or why there is none."""

    peft: str
    transformers: str
    report: Path
    seconds: float = 0.0
    document: dict[str, Any] | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return f"peft {self.peft} + transformers {self.transformers}"

    def verdicts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for case in (self.document or {}).get("cases", []):
            counts[case["verdict"]] = counts.get(case["verdict"], 0) + 1
        return counts

    def bad(self) -> list[dict[str, Any]]:
        """The cases whose verdict is regressed, range-wrong or error."""
        return [case for case in (self.document or {}).get("cases", [])
                if case["verdict"] in ("regressed", "range-wrong", "error")]


def report_name(peft: str, transformers: str) -> str:
    return f"peft{peft}-tf{transformers}.json"


def pytest_command(python: str, root: Path, report: Path, *, bundled: bool, cases: Sequence[Path]) -> list[str]:
    """The catalogue run: this package's plugin from ``root`` (with ``root/pytest.ini`` as the only
    configuration), importlib import mode so nothing pytest inserts into sys.path shadows PYTHONPATH.

    Without pytest's unraisableexception plugin: the verdicts never read its warnings, and from pytest
    8.4 on it ends each session with repeated full ``gc.collect()`` passes over the whole heap (torch and
    transformers included): about 1 s of a 6 s run, measured in one fork server side by side. Without its
    logging plugin: nothing reads the records it captures, and in each phase of each test it attaches its
    handlers to every non-propagating logger (transformers makes hundreds): 0.24 s of CPU of a 4.5 s run
    (median of 6 runs each, alternated in one fork server)."""
    command = [python, "-m", "pytest", "-c", str(root / "pytest.ini"), "--rootdir", str(root),
               "-p", "pytest_peft_edges.plugin", "-p", "no:cacheprovider", "-p", "no:unraisableexception",
               "-p", "no:logging", "-q", "-rfE",
               "--import-mode=importlib", "--peft-edges-report", str(report)]
    if bundled:
        command.append("--peft-edges")
    for path in cases:
        command += ["--peft-edges-cases", str(Path(path).resolve())]
    return command


def run_release(store: Store, peft: str, transformers: str, report: Path, *, bundled: bool = True,
                cases: Sequence[Path] = (), timeout: float = 900) -> Run:
    """Run the catalogue (and/or ``cases``) on peft ``peft`` with transformers ``transformers``; any
    failure to build, run or read the report is the run's ``error`` (the other runs go on)."""
    try:
        return _run_release(store, peft, transformers, report, bundled=bundled, cases=cases, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - one broken run must not stop a sweep
        import traceback

        return Run(peft, transformers, Path(report), error="".join(traceback.format_exception(exc))[-3000:])


def _run_release(store: Store, peft: str, transformers: str, report: Path, *, bundled: bool,
                 cases: Sequence[Path], timeout: float) -> Run:
    run = Run(peft, transformers, Path(report))
    start = time.perf_counter()
    try:
        python = store.env(transformers)
        release = store.peft(peft)
        root = store.plugin()
    except BuildError as exc:
        run.error = str(exc)
        return run
    run.report.parent.mkdir(parents=True, exist_ok=True)
    run.report.unlink(missing_ok=True)
    command = pytest_command(python, root, run.report, bundled=bundled, cases=cases)
    server = zygote(store, python, root, release)
    if server is not None:
        returncode, output = server.run(command[3:], cwd=root, path=[release, root],
                                        env=store.run_env([release, root]))
    else:
        try:
            proc = subprocess.run(command, cwd=root, env=store.run_env([release, root]), capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            run.error = f"timed out after {timeout:.0f} s: {' '.join(command)}"
            return run
        returncode, output = proc.returncode, proc.stdout + proc.stderr
    run.seconds = time.perf_counter() - start
    if returncode not in (0, 1) or not run.report.is_file():
        run.error = f"pytest exited {returncode}:\n{output[-4000:]}"
        return run
    document = json.loads(run.report.read_text())
    got = document.get("versions", {})
    if got.get("peft") != peft or got.get("transformers") != transformers:
        run.error = (f"the run imported peft {got.get('peft')} + transformers {got.get('transformers')}, "
                     f"not the release under test ({peft} + {transformers})")
        return run
    run.document = document
    return run


class Zygote:
    """One fork server (zygote.py) for one environment, used by one thread at a time: a process of its own,
    or forked by the sweep's :class:`RootServer` and reached through a Unix socket (:meth:`over`)."""

    def __init__(self, python: str, root: Path, env: dict[str, str], logs: Path, peft_dir: Path | None = None) -> None:
        """``peft_dir``: a peft release directory that makes the server import transformers too
        (zygote.preload_transformers); without one, each child imports transformers itself."""
        self.proc: subprocess.Popen[str] | None = _server_process(python, root, env, *([str(peft_dir)] if peft_dir else []))
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._connect(self.proc.stdout, self.proc.stdin, logs)

    @classmethod
    def over(cls, connection: socket.socket, logs: Path) -> Zygote:
        """The server at the other end of ``connection`` (forked by the root server)."""
        server = cls.__new__(cls)
        server.proc, server.connection = None, connection
        server._connect(connection.makefile("r"), connection.makefile("w"), logs)
        return server

    def _connect(self, reader: IO[str], writer: IO[str], logs: Path) -> None:
        self.reader, self.writer, self.logs, self.count = reader, writer, logs, 0
        _expect_ready(reader, "the fork server", self.close)

    def run(self, args: list[str], *, cwd: Path, path: list[Path], env: dict[str, str]) -> tuple[int, str]:
        """pytest ``args`` in a forked child; its exit code and output."""
        self.count += 1
        log = self.logs / f"run-{os.getpid()}-{id(self)}-{self.count}.log"
        self.logs.mkdir(parents=True, exist_ok=True)
        job = {"args": args, "cwd": str(cwd), "path": [str(p) for p in path], "env": env, "log": str(log)}
        self.writer.write(json.dumps(job) + "\n")
        self.writer.flush()
        answer = json.loads(self.reader.readline() or '{"exit": -1}')
        output = log.read_text(errors="replace") if log.is_file() else ""
        log.unlink(missing_ok=True)
        return int(answer["exit"]), output

    def close(self) -> None:
        """End of input: the server exits once its last job is answered."""
        with contextlib.suppress(OSError):
            self.writer.close()
        if self.proc is not None:
            _wait_or_kill(self.proc, 30)
        else:  # the socket stays open while any file made from it is: shut it down for the server to see EOF
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.connection.close()
        with contextlib.suppress(OSError):
            self.reader.close()


class RootServer:
    """The sweep's fork server for all its environments (``zygote.py --root``): it imports torch and the
    libraries every environment shares once, and forks one :class:`Zygote` per environment, which puts
    that environment's site-packages in place of its own, checks that every module already imported is
    the very file (same inode: uv links one file into each) the environment holds, and only then imports
    the environment's transformers. A server that finds a differing module is not used (the environment
    gets a server of its own)."""

    def __init__(self, python: str, root: Path, env: dict[str, str]) -> None:
        self.proc = _server_process(python, root, env, "--root")
        self.sockets = Path(tempfile.mkdtemp(prefix="peft-edges-"))  # short: a socket path has ~100 bytes
        self.lock = threading.Lock()
        self.count = 0
        assert self.proc.stdout is not None
        _expect_ready(self.proc.stdout, "the root fork server", self.close)

    def environment(self, home: Path, logs: Path, peft_dir: Path | None) -> Zygote:
        """A fork server standing for the environment ``home`` (RuntimeError when it cannot)."""
        assert self.proc.stdin is not None
        with self.lock:
            self.count += 1
            path = self.sockets / f"{self.count}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            listener.listen(1)
            listener.settimeout(300)
            request = {"home": str(home), "socket": str(path), "peft_dir": str(peft_dir) if peft_dir else None}
            with self.lock:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
            connection, _ = listener.accept()
        finally:
            listener.close()
            path.unlink(missing_ok=True)
        connection.settimeout(None)
        return Zygote.over(connection, logs)

    def close(self) -> None:
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        _wait_or_kill(self.proc, 60)
        shutil.rmtree(self.sockets, ignore_errors=True)


def _server_process(python: str, root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``python -m pytest_peft_edges.releases.zygote ARGS`` in ``root``, talking through its stdin/stdout.
    -m, not the script's path: the script's directory first on sys.path would shadow the standard
    library's bisect with releases/bisect.py."""
    return subprocess.Popen([python, "-m", "pytest_peft_edges.releases.zygote", *args], cwd=root, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _expect_ready(reader: IO[str], what: str, close: Callable[[], None]) -> None:
    """Read a server's first line; unless it says ready, ``close`` and raise RuntimeError with it."""
    hello = json.loads(reader.readline() or "{}")
    if not hello.get("ready"):
        close()
        raise RuntimeError(f"{what} did not start: {hello}")


def _wait_or_kill(proc: subprocess.Popen[str], timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


_ZYGOTES: dict[tuple[int, str, str], Zygote | None] = {}
_ROOTS: dict[str, RootServer | None] = {}
_ZYGOTES_GUARD = threading.Lock()
_STARTING: dict[object, threading.Lock] = {}


def _starting(key: object) -> threading.Lock:
    with _ZYGOTES_GUARD:
        return _STARTING.setdefault(key, threading.Lock())


def root_server(store: Store, python: str, root: Path) -> RootServer | None:
    """The root fork server of this plugin copy, started in ``python``'s environment when first asked."""
    with _starting(("root", str(root))):
        if str(root) not in _ROOTS:
            try:
                _ROOTS[str(root)] = RootServer(python, root, store.run_env([root]))
            except (OSError, RuntimeError, ValueError):
                _ROOTS[str(root)] = None
        return _ROOTS[str(root)]


def zygote(store: Store, python: str, root: Path, peft_dir: Path) -> Zygote | None:
    """This thread's fork server in ``python``'s environment, started with the release ``peft_dir`` of
    its first run: forked by the root server when it can stand for that environment, else a process
    of its own (None when forking is off or unavailable: the run then starts its own interpreter)."""
    if not store.fork or not hasattr(os, "fork"):
        return None
    key = (threading.get_ident(), python, str(root))
    with _ZYGOTES_GUARD:
        if key in _ZYGOTES:
            return _ZYGOTES[key]
    server: Zygote | None = None
    shared = root_server(store, python, root) if store.share_torch else None
    if shared is not None:
        try:
            server = shared.environment(Path(python).parent.parent, store.cache / "logs", peft_dir)
        except (OSError, RuntimeError, ValueError):
            server = None
    if server is None:
        try:
            server = Zygote(python, root, store.run_env([root]), store.cache / "logs", peft_dir)
        except (OSError, RuntimeError, ValueError):
            server = None
    with _ZYGOTES_GUARD:
        _ZYGOTES[key] = server
    return server


def close_zygotes() -> None:
    """Stop every fork server (end of a sweep or bisect): the environments' servers, then the roots."""
    with _ZYGOTES_GUARD:
        servers = [s for s in _ZYGOTES.values() if s is not None]
        roots = [r for r in _ROOTS.values() if r is not None]
        _ZYGOTES.clear()
        _ROOTS.clear()
    for server in servers:
        server.close()
    for root in roots:
        root.close()
