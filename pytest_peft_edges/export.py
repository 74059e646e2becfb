"""Export a case as a minimal standalone reproduction script, or as an upstream issue body.

The script is the case's rendered code (:mod:`.codegen`, the code the engine runs) laid out as a
maintainer would write it by hand: the PEP 723 header, the imports, the tiny model config inline,
straight-line calls to transformers/peft/torch, the fixed behaviour as plain ``if ...: fail(...)``
lines, and only the helpers the case calls. Run with plain python it exits with the code of the verdict
table (:data:`.verdicts.ACTIONS`): 0 when it behaves as fixed, 1 printing ``BUG REPRODUCED: ...``, 2 when
it cannot judge (peft not importable, a release the case does not apply to, an unrecorded exception).

Strings from YAML reach the script only through ``repr()`` or as comment lines split with
``str.splitlines()``, so a title or a name cannot inject code.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from . import __version__, codegen, helpers, versions
from .architectures import SEQ2SEQ
from .schema import Case
from .verdicts import ACTIONS, Verdict

EXIT_FIXED = ACTIONS[Verdict.FIXED].exit_code
EXIT_BUG = ACTIONS[Verdict.REPRODUCED].exit_code
EXIT_CANNOT_JUDGE = ACTIONS[Verdict.ERROR].exit_code


def _comment(text: str, prefix: str = "# ") -> list[str]:
    """Text as comment lines: every line break Python knows splits it, so nothing escapes the comment."""
    lines = []
    for line in text.splitlines() or [""]:
        lines += textwrap.wrap(line, 100, break_long_words=False, break_on_hyphens=False) or [""]
    return [(prefix + line).rstrip() for line in lines]


def _indent(lines: list[str], depth: int = 1) -> list[str]:
    return [("    " * depth + line) if line else line for line in lines]


def _step_lines(block: codegen.Block) -> list[str]:
    lines = block.code()
    if block.when:
        lines = [f"if version_in({block.when!r}):"] + _indent(lines)
    if block.kind == "step" and block.id != block.op and not block.id.startswith(block.op + "-") and block.id != "model":
        lines = [f"# {block.id}"] + lines
    return lines


def _known_bugs(case: Case) -> list[str]:
    """``KNOWN_BUGS``: how each recorded bug shows, as data the script's last lines read."""
    rows = [f"    ({bug.id!r}, {spec.raises if spec.raises is not None else f'check {spec.check}'!r}, {spec.match or ''!r}),"
            for bug in case.known_bugs for spec in bug.fails]
    if not rows:
        return ["KNOWN_BUGS = []  # no recorded bug: any failed check means the fixed behaviour does not hold"]
    return ["# How each recorded bug shows: (bug, exception type or 'check <id>', message regex)",
            "KNOWN_BUGS = ["] + rows + ["]"]


def render_script(case: Case) -> str:
    """The case as one standalone Python file (PEP 723 header pinning the installed versions)."""
    program = codegen.program(case)
    stack = versions.stack()
    used = set(program.helpers)
    if any(block.when for block in program.steps + program.checks) or case.requires:
        used.add("version_in")
    if case.set_order:
        used.add("set_order_renamings")
    used = codegen.with_dependencies(used)
    imports_peft_first = bool(case.steps and case.steps[0].op == "import_peft")

    deps = [f"torch=={_public(stack['torch'])}", f"transformers=={stack['transformers']}",
            f"peft=={stack['peft']}", f"safetensors=={stack['safetensors']}"]
    lines = ["# /// script", '# requires-python = ">=3.10"', "# dependencies = ["]
    lines += [f'#     "{dep}",' for dep in deps] + ["# ]", "# ///"]
    lines += _comment(case.title) + ["#"]
    if case.description:
        lines += _comment(case.description) + ["#"]
    for bug in case.known_bugs:
        lines += _comment(f"Known bug {bug.id} ({bug.range_label()}; {bug.upstream.label()}): {bug.summary}")
    if case.upstream.links():
        lines += ["# Upstream: " + ", ".join(case.upstream.links())]
    lines += [f"# Case {case.id!r}, exported by pytest-peft-edges {__version__} (peft-edges export {case.id}).",
              f"# Exit {EXIT_FIXED}: behaves as fixed. Exit {EXIT_BUG}: prints 'BUG REPRODUCED: ...'. "
              f"Exit {EXIT_CANNOT_JUDGE}: cannot judge here.", ""]

    architectures = program.names.architectures
    kinds = ({"torch"} if architectures & {"mlp", "conv", "mha"} else set()) | ({"seq2seq"} if architectures & SEQ2SEQ else set())
    kinds |= program.names.kinds
    sources = {name: codegen.helper_source(name, frozenset(kinds)) for name in used}
    modules = {"collections", "re", "sys", "traceback", "pathlib", "tempfile"}
    modules |= {name for name in ("contextlib", "json", "io") if any(f"{name}." in text for text in sources.values())}
    modules |= {"warnings"} if any(block.capture for block in program.steps) else set()
    code = "\n".join([line for block in program.steps + program.checks for line in block.lines] + list(sources.values()))
    modules |= {name for name in ("json", "safetensors.torch") if f"{name}." in code}
    lines += ["import " + ", ".join(sorted(modules)),
              "import torch, torch.distributed.tensor, transformers  # torch.distributed.tensor: some peft releases need it first", ""]
    lines += _known_bugs(case) + ["", ""]
    for name in sorted(used, key=_definition_order):
        lines += sources[name].splitlines() + ["", ""]

    body = [] if imports_peft_first else ["import peft  # fails on some peft/transformers pairs: the script then cannot judge"]
    body += ["WORKDIR = pathlib.Path(tempfile.mkdtemp(prefix='peft-edges-'))", "problems = {}", "",
             "def fail(check_id, problem):  # a check of the fixed behaviour failed when problem is not None",
             "    if problem is not None: problems.setdefault(check_id, str(problem))", ""]
    if not (program.steps and program.steps[0].lines[0].startswith(codegen.SEED + "(")):
        body.append(f"{codegen.SEED}(0)")
    for block in program.steps:
        body += _step_lines(block)
    if program.checks:
        body += ["", "# The fixed behaviour:"]
    for block in program.checks:
        body += _step_lines(block)
    body += ["return problems"]
    lines += ["def main(N=None):" if case.set_order else "def main():"] + _indent(body) + ["", ""]
    lines += ['if __name__ == "__main__":']
    if case.requires:
        lines += [f"    if not version_in({dict(case.requires)!r}):",
                  f"        print('CANNOT JUDGE: this reproduction needs ' + {_requires(case)!r})", f"        sys.exit({EXIT_CANNOT_JUDGE})"]
    lines += ["    try:"]
    if case.set_order:
        lines += [f"        for order, renaming in set_order_renamings({list(case.set_order)!r}):",
                  "            failures = [([f'check {check_id}'], message) for check_id, message in main(renaming).items()]",
                  "            if failures:", "                print(f'in set order {order}:')", "                break"]
    else:
        lines += ["        failures = [([f'check {check_id}'], message) for check_id, message in main().items()]"]
    lines += ENTRY.format(bug=EXIT_BUG, fixed=EXIT_FIXED, cannot=EXIT_CANNOT_JUDGE).splitlines()
    return "\n".join(lines)


ENTRY = """    except Exception as exc:
        traceback.print_exc()
        failures = [([cls.__name__ for cls in type(exc).__mro__], str(exc))]
    print("\\n".join(f"{{kinds[0]}}: {{message}}" for kinds, message in failures) or "every check held")
    known = collections.Counter(bug for bug, kind, pattern in KNOWN_BUGS for kinds, message in failures if kind in kinds and re.search(pattern, message))
    if known:
        sys.exit(f"BUG REPRODUCED: known bug {{known.most_common(1)[0][0]}} (see the top of this file)")
    if any(not kinds[0].startswith("check ") for kinds, _message in failures):
        print("CANNOT JUDGE: a step failed in a way no recorded bug explains")
        sys.exit({cannot})
    if failures:
        sys.exit("BUG REPRODUCED: the fixed behaviour does not hold (the failed checks above)")
    print("OK: behaves as fixed")
"""


def _requires(case: Case) -> str:
    return ", ".join(f"{package} {spec}" for package, spec in case.requires.items())


def _definition_order(name: str) -> int:
    return inspect.getsourcelines(getattr(helpers, name))[1]


def _public(version: str | None) -> str:
    return (version or "0").split("+", 1)[0]


def code_lines(script: str) -> int:
    """Lines of code in ``script``: neither blank nor a comment (the budget of issue reports)."""
    return sum(1 for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def render_issue(case: Case, env: str, judgement: Any = None) -> str:
    """Markdown with PEFT's bug-report sections: System Info, Who can help, Information, Tasks,
    Reproduction (the script), Expected behavior (the fixed behaviour) and the actual behaviour of this run."""
    script = render_script(case)
    fence = "```"
    while fence in script:
        fence += "`"
    expected = _one_line(case.title)
    if case.description:
        expected += "\n\n" + " ".join(case.description.split())
    if judgement is not None:
        actual = f"On this environment the reproduction gives **{judgement.name}**: {_one_line(judgement.message)}"
    else:
        actual = "Run the script above: it prints what happens on your environment."
    known = [f"- `{bug.id}` ({bug.range_label()}): {_one_line(bug.summary)}" for bug in case.known_bugs]
    tags = ", ".join(case.tags)
    return "\n".join([
        f"<!-- {_one_line(case.title)} -->",
        "### System Info", "", "```", env, "```", "",
        "### Who can help?", "", "<!-- mention the maintainers of the affected area here -->", "",
        "### Information", "", "- [ ] The official example scripts", "- [x] My own modified scripts", "",
        "### Tasks", "", "- [ ] An officially supported task in the `examples` folder",
        f"- [x] My own task or dataset (tiny model built from config; {tags or 'no tags'})", "",
        "### Reproduction", "",
        "A standalone script: a tiny model built from config with a fixed seed, offline, CPU, a few seconds. "
        "It exits 1 printing `BUG REPRODUCED: ...` when the bug is present and 0 when it behaves as fixed.", "",
        f"{fence}python", script.rstrip(), fence, "",
        "### Expected behavior", "", expected, "",
        "#### Actual behavior", "", actual, "",
        *(["Known releases:", *known, ""] if known else []),
        "Related: " + (", ".join(case.upstream.links()) or "no upstream issue yet"), "",
    ])


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("-->", "-- >")
