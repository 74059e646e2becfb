"""Render docs/cases.md (the case format, every step and check) from the registry itself.

``peft-edges docs -o docs/cases.md`` writes it; a test fails when the committed page is out of date.
"""

from __future__ import annotations

import typing
from typing import Any

from . import registry
from .architectures import HEADS
from .verdicts import Verdict
from .versions import TRACKED

HEADER = """# Writing cases

A case is one YAML document (a file may hold several, separated by `---`) that builds a tiny model,
runs PEFT **steps**, and **expects** the fixed behaviour. Known bugs record where the behaviour is
broken and exactly how the case then fails. YAML is read with a safe loader; nothing in a case is ever
evaluated as code. Every field below is validated at collection time: a mistake is reported as
`file:line: field: message` on that case's own test id, and the other cases still run.

This page is generated from the code (`peft-edges docs -o docs/cases.md`); a test keeps it in sync.

## A complete case

```yaml
id: adapter-name-lora-round-trip            # unique slug: the pytest test id
title: A LoRA adapter named "lora" survives save/load with every tensor intact
description: >                              # one paragraph a maintainer understands without this repo
  ...
upstream: {{issues: [2252], prs: [2773]}}     # huggingface/peft numbers
tags: [adapter-name, save-load]
requires: {{peft: '>=0.8.0'}}                 # optional: not applicable (skipped) outside this range
model: {{architecture: llama, head: causal_lm, seed: 0}}   # built first, stored as `base`
steps:
  - {{id: wrap, op: get_peft_model, adapter_name: lora, as: trained, config: {{r: 4, target_modules: [q_proj]}}}}
  - {{op: perturb, model: trained, seed: 1}}
  - {{op: snapshot, model: trained, kind: tensors, pattern: 'lora_', as: saved}}
  - {{op: save_pretrained, model: trained, dir: adapter}}
  - {{op: build_model, as: fresh, architecture: llama, head: causal_lm, seed: 7}}
  - {{id: load, op: from_pretrained, model: fresh, dir: adapter, adapter_name: lora, as: reloaded}}
  - {{op: snapshot, model: reloaded, kind: tensors, pattern: 'lora_', as: loaded}}
expect:
  - {{id: round-trip-exact, check: equal, a: loaded, b: saved}}
  - {{id: prefix-warning, check: warns, step: wrap, when: {{peft: '>=0.18.0'}}, match: "should not be contained"}}
known_bugs:
  - id: S2
    summary: saving strips ".lora" out of ".lora_A"; nothing matches on load
    upstream: {{issues: [2252], prs: [2773]}}
    affected: {{peft: '<0.18.0'}}               # PEP 440, prereleases count; may also name {tracked}
    fails:                                    # one spec, or a list of alternatives
      - {{check: round-trip-exact, match: 'lora_loaded'}}
      - {{step: load, raises: KeyError, match: 'lora'}}
```

## Top-level fields

| field | required | meaning |
|---|---|---|
| `id` | yes | slug (`a-z`, `0-9`, `-`), unique across all loaded cases; the test id |
| `title` | yes | one line: the fixed behaviour |
| `description` | no | a paragraph: setup, fixed behaviour, affected releases and how they fail |
| `upstream` | no | `{{issues: [..], prs: [..]}}` huggingface/peft numbers |
| `tags` | no | list of strings |
| `requires` | no | version ranges the case needs (e.g. an API that appeared later); outside them: `skipped` |
| `set_order` | no | 2–4 module names whose iteration order in a Python set matters: the case runs once per order, in-process, with the names given a common prefix (`v1_lin1`, `v1_lin10`) where that is what yields the order; failures are labelled `[set order lin1, lin10 ...]`; the first failing order counts |
| `model` | no | `{{architecture, head, seed, config}}`; built before the steps and named `base` |
| `steps` | yes | ordered steps; the first step that raises stops the case |
| `expect` | no | checks, run after the steps (unless a step raised); every failing check is recorded |
| `known_bugs` | no | recorded bugs: `{{id, summary, upstream, affected, fails}}`; a bug is described (`summary`, `upstream`) once: a case recording a bug another case or the catalogue describes leaves both out and gets them from there |

Architectures and heads: {heads}.

### Fields of every step and check

| field | meaning |
|---|---|
| `op` / `check` | the registered name (below) |
| `id` | a name known bugs and `warns` checks refer to; default: the op name, then `op-2`, `op-3`, ... |
| `when` | version ranges (`{{peft: '>=0.15.0'}}`): outside them the step or check is not run |
| `raises` | steps only: `{{type: ValueError, match: regex}}` when the FIXED behaviour is to raise |

`as`, `model`, `dir`, `a`, `b`, `of`, `optimizer` name objects: a step stores what it makes under its `as`
(or `dir`) name, later steps and checks refer to it; `of: load2.unexpected` reads a key or attribute.

### How a known bug fails (`fails`)

| field | meaning |
|---|---|
| `step` + `raises` + `match` | the step raises this exception type (any class in its MRO), message matching the regex |
| `step` + `raises: CaseError` + `match` | the step hits a case error (below) that the bug causes, e.g. a `perturb` pattern that matches nothing because the bug removed the wrapper it names |
| `check` (+ `match`) | this check (or a step's `raises`) fails, its message matching the regex |

A bug is `reproduced` only when every failure of the run matches one of its `fails` entries (list as many
as the bug causes: every failing check is recorded, not only the first).

## How a case runs

Every step and check is one function of the package that renders the few lines of plain Python it
stands for. The plugin runs exactly those lines; `peft-edges export ID` prints them as a standalone
script, so the script behaves like the plugin by construction. Values from YAML only ever become Python
literals; no text of a case is evaluated.

- Each case starts with torch's global RNG seeded to 0 (inside `torch.random.fork_rng`: the session's
  RNG is left alone), so adapter initialisation, and every message, is the same on every run, in any
  order and under `-n 2`. `build_model` seeds with its own `seed` first: every architecture is
  bit-identical per seed (the `tiny_model` fixture builds the same weights).
- `pattern`, `match` and the keys of `rename` are regular expressions applied with `re.search` (anchor
  with `^`/`$` where it matters); `rename` values are `re.sub` replacements.
- A **case error** is a mistake of the case found while it runs, never a bug of peft: a `perturb` or
  snapshot pattern that matches nothing, a comparison of two snapshots of which one is empty, a name
  an earlier step did not make. It makes the verdict `error` unless a known bug in range records it
  (`raises: CaseError`).
- Warnings and log records: a `warns`/`no_warns` check makes its step capture them; with `category:
  log` (or `log.INFO`) peft's and transformers' log records from `level` up are captured as well
  (peft <= 0.14 logs some warnings at INFO).

## Verdicts

| verdict | when | pytest outcome |
|---|---|---|
| `fixed` | no known bug's range holds the installed versions, and everything passed | pass |
| `reproduced` | a bug's range holds them and every failure matches a recorded failure of a bug in range | xfail (`--peft-edges-known=fail`: fail, `skip`: skipped) |
| `range-wrong` | a bug's range holds them, but the case passed | fail |
| `regressed` | outside every range, a check failed or a recorded failure showed up | fail |
| `error` | another failure inside a range, an unrecorded exception, or a malformed case | fail / error |
| `skipped` | not applicable (`requires`), or `--peft-edges-known=skip` on an affected stack | skipped |

All verdicts: {verdicts}.
"""


def _type_name(annotation: Any) -> str:
    if annotation is Any:
        return "any"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", ())):
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + " (or null)"
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def _section(kind: str, operations: dict[str, registry.Operation]) -> list[str]:
    lines = [f"## {kind.capitalize()}s", ""]
    for name in sorted(operations):
        operation = operations[name]
        lines += [f"### `{name}`", "", operation.doc.split("Example::")[0].strip(), ""]
        lines += ["| field | type | default | role |", "|---|---|---|---|"]
        for param in operation.params.values():
            default = "required" if param.required else f"`{param.default!r}`"
            role = {"ref": "names an earlier object", "out": "names what this makes",
                    "step": "names a step id"}.get(param.role or "", "")
            lines.append(f"| `{param.name}` | {_type_name(param.annotation)} | {default} | {role} |")
        lines += ["", "```yaml", operation.example, "```", ""]
    return lines


def render() -> str:
    """The whole docs/cases.md page."""
    from . import checks, steps  # noqa: F401  (register)

    heads = "; ".join(f"`{arch}`: {', '.join(f'`{h}`' for h in heads)}" for arch, heads in HEADS.items())
    text = HEADER.format(heads=heads, verdicts=", ".join(f"`{v.value}`" for v in Verdict), tracked=", ".join(TRACKED))
    from .limits import markdown as limits

    lines = [text.rstrip(), "", limits().rstrip(), ""] + _section("step", registry.STEPS) + _section("check", registry.CHECKS)
    return "\n".join(lines).rstrip() + "\n"


def example_fields(operation: registry.Operation) -> dict[str, Any]:
    """The fields of an operation's docstring example (for the docs test)."""
    from .yaml_lines import load_documents

    ((entries, _line),) = load_documents(operation.example)
    (entry,) = entries
    return dict(entry)
