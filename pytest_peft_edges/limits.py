"""Limits that make a case file safe to run: a case is untrusted input (issue 15).

- Collection is bounded: file size, cases per file, YAML nodes after alias expansion, nesting depth,
  list length, string length, error-message length.
- Model and config sizes fit "tiny": every field named in :data:`SIZES` (layers, hidden size, vocabulary,
  rank, ...) is checked at validation, wherever it appears in a case.
- Regular expressions are compiled at validation and refused when their shape backtracks exponentially
  (a repeat inside a repeat, an alternation under a repeat); :func:`search` matches with a time bound.
- Every case runs under a per-case time limit (:func:`time_limit`, default 60 s).

The command-line options ``--peft-edges-timeout SECONDS`` and ``--peft-edges-limits NAME=N,...`` set
:func:`timeout` and the size limits when pytest parses them (their argparse ``type`` is
:func:`timeout_option` / :func:`limits_option`); :func:`configure` does the same for other callers.

Importing this module is cheap: the plugin reads its options at every pytest start, so what only a case
run needs (signal, threading, unicodedata, regex) is imported inside the functions that use it.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator

#: Collection limits (raisable with ``--peft-edges-limits NAME=N``).
COLLECTION = {
    "file_bytes": 1_000_000,  # a case file is text written by hand: the catalogue's largest is ~5 kB
    "cases_per_file": 200,
    "yaml_nodes": 20_000,  # per document, after expanding aliases (``*name``)
    "yaml_depth": 32,  # nesting of mappings and lists, aliases expanded
    "list_items": 1_000,
    "string_chars": 10_000,
}

#: Size limits of the fields that decide how big a built model or adapter is, wherever they appear
#: (the case's ``model.config``, a step's ``config``, a step field). Raisable like the above.
SIZES = {
    # model configs (bert, llama, gpt2, opt, roberta, mlp)
    "num_hidden_layers": 8, "n_layer": 8, "num_layers": 8,
    "hidden_size": 256, "n_embd": 256, "d_model": 256, "word_embed_proj_dim": 256, "hidden": 256,
    "intermediate_size": 1024, "n_inner": 1024, "ffn_dim": 1024,
    "vocab_size": 1024, "type_vocab_size": 16,
    "num_attention_heads": 16, "n_head": 16, "num_key_value_heads": 16, "head_dim": 256,
    "max_position_embeddings": 1024, "n_positions": 1024, "n_ctx": 1024,
    "num_labels": 64,
    # peft configs and step fields
    "r": 64, "init_r": 64, "target_r": 64, "svd_rank": 64, "lora_r": 64, "vera_r": 256,
    "num_virtual_tokens": 64, "token_dim": 256, "encoder_hidden_size": 256, "num_transformer_submodules": 2,
    "n_frequency": 4096, "boft_block_size": 64, "boft_block_num": 64, "oft_block_size": 64,
    "block_size": 64, "num_tasks": 16, "num_ranks": 64,
    # inputs
    "seq_len": 512, "batch": 64, "batch_size": 64,
}
_DEFAULT_COLLECTION = dict(COLLECTION)
_DEFAULT_SIZES = dict(SIZES)

DEFAULT_TIMEOUT = 60.0
MAX_MESSAGE = 2_000  # characters of one error message; the rest is cut with a note
MAX_SUBJECT = 100_000  # characters of a text a case's regex is matched against
REGEX_SECONDS = 2.0  # time bound of one match in :func:`search`

_state = {"timeout": DEFAULT_TIMEOUT}


def timeout() -> float:
    """The per-case time limit in seconds (0 turns it off)."""
    return _state["timeout"]


def limit(name: str) -> int:
    """The current value of a collection or size limit."""
    return COLLECTION[name] if name in COLLECTION else SIZES[name]


def configure(timeout_s: float | None = None, overrides: dict[str, int] | None = None) -> None:
    """Set the per-case time limit and raise (or lower) limits; ``None`` keeps, ``{}`` resets to defaults."""
    if timeout_s is not None:
        if not timeout_s >= 0:
            raise ValueError("the time limit must be >= 0 seconds (0 turns it off)")
        _state["timeout"] = float(timeout_s)
    if overrides is not None:
        COLLECTION.clear(), COLLECTION.update(_DEFAULT_COLLECTION)
        SIZES.clear(), SIZES.update(_DEFAULT_SIZES)
        for name, value in overrides.items():
            if name not in COLLECTION and name not in SIZES:
                known = ", ".join(sorted(COLLECTION) + sorted(SIZES))
                raise ValueError(f"unknown limit {name!r}; limits: {known}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"limit {name} must be a positive integer, not {value!r}")
            (COLLECTION if name in COLLECTION else SIZES)[name] = value


def timeout_option(text: str) -> float:
    """argparse ``type`` of ``--peft-edges-timeout``: parse and apply (its default is the string ``"60"``)."""
    import argparse

    try:
        value = float(text)
        configure(timeout_s=value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--peft-edges-timeout: {exc}") from None
    return value


def limits_option(text: str) -> dict[str, int]:
    """argparse ``type`` of ``--peft-edges-limits NAME=N,NAME=N``: parse and apply (default ``""``: defaults)."""
    import argparse

    overrides = {}
    try:
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            if not sep or not value.strip().isdigit():
                raise ValueError(f"{item!r} is not NAME=N")
            overrides[name.strip()] = int(value)
        configure(overrides=overrides)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--peft-edges-limits: {exc}") from None
    return overrides


# Messages ----------------------------------------------------------------------------------------

def printable(text: Any, limit_chars: int = MAX_MESSAGE) -> str:
    """``text`` safe for a terminal and bounded: control characters escaped, cut at ``limit_chars``."""
    import unicodedata

    text = str(text)
    if len(text) > limit_chars * 4:
        text = text[: limit_chars * 4]
    out = []
    for char in text:
        if char in "\n\t" or not unicodedata.category(char).startswith("C"):
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    result = "".join(out)
    if len(result) > limit_chars:
        result = result[:limit_chars] + f"... ({len(str(text)) - limit_chars} more characters cut)"
    return result


# Regular expressions -----------------------------------------------------------------------------

def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused (does not compile, or can backtrack exponentially), or None.

    Refused shapes: a repeat (``*``, ``+``, ``{m,n}`` with n > 1) holding another repeat of variable
    length or an alternation, e.g. ``(a+)+``, ``(a|a)*``, ``(\\w+\\.)*x``; and back-references.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    except (RecursionError, OverflowError, MemoryError):
        return "regular expression is too complex"
    try:
        from re import _constants, _parser  # type: ignore[attr-defined]
    except ImportError:  # Python 3.10
        import sre_constants as _constants  # type: ignore[no-redef]
        import sre_parse as _parser  # type: ignore[no-redef]
    try:
        parsed = _parser.parse(pattern)
    except Exception:  # noqa: BLE001
        return "regular expression is too complex"
    return _shape_problem(parsed, _constants, inside_repeat=False)


def _shape_problem(items: Any, constants: Any, inside_repeat: bool) -> str | None:
    repeats = {constants.MAX_REPEAT, constants.MIN_REPEAT}
    if hasattr(constants, "POSSESSIVE_REPEAT"):
        repeats.add(constants.POSSESSIVE_REPEAT)
    for op, av in items:
        if op in repeats:
            low, high, body = av
            variable = high != low
            if inside_repeat and variable:
                return "a repeat inside a repeat can backtrack exponentially (e.g. (a+)+); write it without nesting"
            problem = _shape_problem(body, constants, inside_repeat or high > 1)
            if problem:
                return problem
        elif op is constants.BRANCH:
            if inside_repeat:
                return "an alternation inside a repeat can backtrack exponentially (e.g. (a|a)*); write it without nesting"
            for branch in av[1]:
                problem = _shape_problem(branch, constants, inside_repeat)
                if problem:
                    return problem
        elif op is constants.SUBPATTERN:
            problem = _shape_problem(av[-1], constants, inside_repeat)
            if problem:
                return problem
        elif op in (constants.ASSERT, constants.ASSERT_NOT):
            problem = _shape_problem(av[1], constants, inside_repeat)
            if problem:
                return problem
        elif op in (constants.GROUPREF, getattr(constants, "GROUPREF_EXISTS", None)):
            return "back-references are not allowed in a case's regular expression"
        elif hasattr(constants, "ATOMIC_GROUP") and op is constants.ATOMIC_GROUP:
            problem = _shape_problem(av, constants, inside_repeat)
            if problem:
                return problem
    return None


def search(pattern: str, subject: str, seconds: float = REGEX_SECONDS) -> bool:
    """``re.search(pattern, subject)`` with a bound: the subject is cut at MAX_SUBJECT characters and, with
    the ``regex`` package (a transformers dependency), the match gives up after ``seconds`` (TimeoutError).
    """
    subject = subject[:MAX_SUBJECT]
    try:
        import regex
    except ImportError:
        return re.search(pattern, subject) is not None
    return regex.search(pattern, subject, timeout=seconds) is not None


# The per-case time limit -------------------------------------------------------------------------

class CaseTimeout(BaseException):
    """The case ran past its time limit (a BaseException: the library's ``except Exception`` cannot eat it)."""

    def __init__(self, seconds: float, at: str) -> None:
        self.seconds, self.at = seconds, at
        super().__init__(f"timed out at step {at!r} after {seconds:g} s "
                         "(the per-case time limit; raise it with --peft-edges-timeout)")

    @property
    def failure(self) -> Any:
        """The failure record (``kind: case``: the verdict is ``error``)."""
        from .verdicts import Failure

        return Failure(self.at, "case", ("CaseTimeout",), str(self))


def _where(frame: Any) -> str:
    """The id of the step or check running in ``frame`` or a caller (a codegen.Block local), or 'model'."""
    from .codegen import Block

    while frame is not None:
        for value in frame.f_locals.values():
            if isinstance(value, Block):
                return value.id
        frame = frame.f_back
    return "model"


@contextlib.contextmanager
def time_limit(seconds: float | None = None) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the block after ``seconds`` (default :func:`timeout`; 0: no limit).

    Uses SIGALRM, so it works on the main thread of a POSIX process (pytest, and pytest-xdist workers,
    which run tests on their main thread); elsewhere the block runs unbounded. An outer ITIMER_REAL
    (pytest-timeout's signal method) is restored afterwards. Python's ``re`` checks signals while
    matching, so a slow regex is interrupted too.
    """
    import signal
    import threading
    import time

    seconds = timeout() if seconds is None else seconds
    if (not seconds or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    active = [True]

    def on_alarm(signum: int, frame: Any) -> None:
        if active[0]:
            raise CaseTimeout(seconds, _where(frame))

    previous = signal.signal(signal.SIGALRM, on_alarm)
    # Fires again every second until the block ends, in case library code swallowed the first CaseTimeout
    # (``except BaseException``, a ``__del__``).
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    start = time.monotonic()
    try:
        yield
    finally:
        while True:  # a CaseTimeout arriving during the clean-up must not skip it
            try:
                active[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                if outer_delay:
                    left = outer_delay - (time.monotonic() - start)
                    signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), outer_interval)
                break
            except CaseTimeout:
                continue


def markdown() -> str:
    """The "Limits" section of docs/cases.md (for docs.py): what a case cannot do, every limit and its default."""
    from . import schema

    sizes = ", ".join(f"`{name}` {value}" for name, value in _DEFAULT_SIZES.items())
    collection = ", ".join(f"`{name}` {value}" for name, value in _DEFAULT_COLLECTION.items())
    code = ", ".join(f"`{name}`" for name in schema.CODE_FIELDS)
    return f"""## Limits: a case is untrusted input

A case file may come from anyone, so it is checked when it is read, before anything runs; every refusal
is one `file:line: field: message` error on the case's own test id, and the other cases still run.

- **Names**: adapter names (`adapter_name`, `adapters`, `selected_adapters`, `adapter`, `present`,
  `absent`, `active`), `set_order` names, `as` and `dir` are plain names (letters, digits, `_`, `-`;
  at most 64; no `/`, `\\\\`, `.`): peft joins adapter names into paths when it saves.
- **Directories**: a `dir` field that reads (`load_base`, `from_pretrained`, `load_adapter`,
  `read_adapter_file`, `transformers_load_adapter`, `auto_from_pretrained`) names a directory an earlier
  step of the same case wrote (`save_base`, `save_pretrained`, `dump_state_dict`), never a dotted value.
- **Nothing is code**: in any `config` (the model's or a step's), these fields are refused on every
  release: {code}; any field starting with `_` or ending in `_path`, `_file`, `_dir`, `_module`,
  `_class`; `attn_implementation` other than `eager`/`sdpa`; `config_type` {", ".join(f"`{t}`" for t in schema.REFUSED_CONFIG_TYPES)}.
- **Regular expressions** (`pattern`, `match`, `raises.match`, `fails.match`, the keys of `rename` and
  `key_mapping`, string `target_modules`/`exclude_modules`/`layers_pattern`, the keys of
  `rank_pattern`/`alpha_pattern`) are compiled when the file is read; a repeat or an alternation inside
  a repeat (`(a+)+`, `(ab|cd)*`) and back-references are refused.
- **Sizes that fit a tiny model**, wherever the field appears: {sizes}.
- **Strings and keys** hold no control characters but whitespace (no `ESC`, `BEL`, ...): they reach
  terminals and reports. Messages escape what they quote from the file and stop at {MAX_MESSAGE} characters.
- **Reading the file**: {collection} (nodes and depth count aliases expanded); FIFOs, devices and
  links out of a case directory are refused; merge keys (`<<: *base`) work as YAML defines them.
- **Time**: each case runs under a time limit (default {DEFAULT_TIMEOUT:g} s); past it the verdict is
  `error` with `timed out at step '<id>'`, and the next case runs.

Raise a limit for a case that needs it: `--peft-edges-limits NAME=N,NAME=N` (any name above) and
`--peft-edges-timeout SECONDS` (`0`: no time limit).
"""
