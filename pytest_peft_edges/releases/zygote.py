"""A fork server for catalogue runs: imports torch (and the other release-independent libraries) once,
then forks one child per run, which imports transformers and its own peft release and runs pytest.

Started by :class:`runner.Zygote` inside a shared environment as ``python -m pytest_peft_edges.releases.zygote``; reads one JSON job
a line on stdin (``{"args", "cwd", "path", "env", "log"}``) and answers ``{"exit": code}``. transformers is
not imported here on purpose: it records at import whether peft is installed (and which version), and peft
is exactly what each child brings along.
"""

from __future__ import annotations

import json
import os
import sys

PRELOAD = ("torch", "numpy", "safetensors", "safetensors.torch", "yaml", "pytest", "huggingface_hub")
NEVER = ("peft", "transformers")


def main() -> int:
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
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
    raise SystemExit(main())
