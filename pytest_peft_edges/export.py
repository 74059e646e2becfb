"""Export a case as a standalone Python script (or an upstream issue body) that needs no pytest-peft-edges.

Every string from YAML reaches the script through ``repr()`` (a Python literal) or as comment lines split
with ``str.splitlines()``, so a title or adapter name cannot inject code. The script embeds
:mod:`.standalone` verbatim: it runs and judges the case with the same code as the plugin.
"""

from __future__ import annotations

import inspect
import keyword
import textwrap
from typing import Any, Callable

from . import __version__, registry, standalone, versions
from .architectures import config_kwargs, default_head, model_classes
from .engine import bug_record
from .schema import Case

Emitter = Callable[[dict[str, Any], "Names"], list[str]]
_RESERVED = set(dir(standalone)) | {
    "peft", "torch", "transformers", "os", "re", "sys", "json", "io", "pathlib", "tempfile", "warnings",
    "logging", "contextlib", "main", "reproduce", "recorder", "workdir", "WORKDIR", "KNOWN_BUGS", "REQUIRES",
    "CASE_ID", "print", "str", "list", "dict", "locals", "check", "step", "version_in", "show_status",
    "N", "SET_ORDER", "run",
}
# Steps whose output is a mapping: dotted references read a key, not an attribute.
_MAPPING_OUTPUTS = {"load_adapter", "read_adapter_file"}


class Names:
    """YAML object names -> readable, collision-free Python identifiers."""

    def __init__(self) -> None:
        self.python: dict[str, str] = {}
        self.mapping_objects: set[str] = set()

    def var(self, name: str) -> str:
        if name not in self.python:
            candidate = "peft_model" if name == "peft" else name.replace("-", "_")
            if keyword.iskeyword(candidate) or candidate in _RESERVED or not candidate.isidentifier():
                candidate += "_"
            while candidate in self.python.values():
                candidate += "_"
            self.python[name] = candidate
        return self.python[name]

    def ref(self, reference: str) -> str:
        head, *fields = reference.split(".")
        code = self.var(head)
        for field in fields:
            code += f"[{field!r}]" if head in self.mapping_objects else f".{field}"
        return code


class _SetOrderName(str):
    """A ``set_order`` name inside step fields: rendered as ``N['lin1']``, the name this run uses."""

    def __repr__(self) -> str:
        return f"N[{str(self)!r}]"


def _set_order_names(value: Any, names: tuple[str, ...]) -> Any:
    return standalone.renamed(value, {name: _SetOrderName(name) for name in names}) if names else value


def _kwargs(values: dict[str, Any]) -> str:
    """``a=1, b='x'``, or ``**{...}`` when a key is not a plain identifier."""
    if all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in values):
        return ", ".join(f"{key}={value!r}" for key, value in values.items())
    return f"**{values!r}"


def _peft_config(fields: dict[str, Any]) -> str:
    config_type = fields["config_type"]
    if not config_type.isidentifier():
        raise ValueError(f"config_type {config_type!r} is not a class name")
    return f"peft.{config_type}({_kwargs(fields['config'] or {})})"


def _dir(name: str) -> str:
    return f"WORKDIR / {name!r}"


def _opt(fields: dict[str, Any], *keys: str) -> str:
    return "".join(f", {key}={fields[key]!r}" for key in keys if fields.get(key) is not None)


def _emit_build_model(f: dict[str, Any], n: Names) -> list[str]:
    architecture = f["architecture"]
    head = f["head"] or default_head(architecture)
    config_class, model_class = model_classes(architecture, head)
    config = config_kwargs(architecture, head, **(f["config"] or {}))
    return [f"{n.var(f['as'])} = build_model({config_class!r}, {model_class!r}, {f['seed']!r}, {config!r})"]


def _emit_save_base(f: dict[str, Any], n: Names) -> list[str]:
    return [f"{n.ref(f['model'])}.save_pretrained(str({_dir(f['dir'])}), safe_serialization=True)",
            f"{n.var(f['dir'])} = {_dir(f['dir'])}"]


def _emit_load_base(f: dict[str, Any], n: Names) -> list[str]:
    _config, model_class = model_classes(f["architecture"], f["head"])
    return [f"{n.var(f['as'])} = transformers.{model_class}.from_pretrained({n.ref(f['dir'])}).eval()"]


def _emit_get_peft_model(f: dict[str, Any], n: Names) -> list[str]:
    return [f"{n.var(f['as'])} = peft.get_peft_model({n.ref(f['model'])}, {_peft_config(f)}, "
            f"adapter_name={f['adapter_name']!r})"]


def _emit_add_adapter(f: dict[str, Any], n: Names) -> list[str]:
    return [f"{n.ref(f['model'])}.add_adapter({f['adapter_name']!r}, {_peft_config(f)})"]


def _emit_perturb(f: dict[str, Any], n: Names) -> list[str]:
    return [f"perturb({n.ref(f['model'])}, {f['pattern']!r}, seed={f['seed']!r}, "
            f"scale={f['scale']!r})  # simulate training"]


def _emit_save_pretrained(f: dict[str, Any], n: Names) -> list[str]:
    return [f"{n.ref(f['model'])}.save_pretrained(str({_dir(f['dir'])}), "
            f"safe_serialization={f['safe_serialization']!r}{_opt(f, 'selected_adapters')})",
            f"{n.var(f['dir'])} = adapter_dir({_dir(f['dir'])})"]


def _emit_dump_state_dict(f: dict[str, Any], n: Names) -> list[str]:
    return ["# a raw model.state_dict() dump, keys still holding the adapter name",
            f"{n.var(f['dir'])} = dump_state_dict({n.ref(f['model'])}, {_dir(f['dir'])}, "
            f"{f['pattern']!r}, {f['adapter_name']!r})"]


def _emit_from_pretrained(f: dict[str, Any], n: Names) -> list[str]:
    return [f"{n.var(f['as'])} = peft.PeftModel.from_pretrained({n.ref(f['model'])}, "
            f"str({n.ref(f['dir'])}), adapter_name={f['adapter_name']!r}, "
            f"is_trainable={f['is_trainable']!r}{_opt(f, 'key_mapping')}).eval()"]


def _emit_load_adapter(f: dict[str, Any], n: Names) -> list[str]:
    target = f["as"]
    n.mapping_objects.add(target)
    return [f"{n.var(target)} = load_result({n.ref(f['model'])}.load_adapter(str({n.ref(f['dir'])}), "
            f"adapter_name={f['adapter_name']!r}, is_trainable={f['is_trainable']!r}"
            f"{_opt(f, 'key_mapping')}))"]


def _emit_set_adapter(f: dict[str, Any], n: Names) -> list[str]:
    level = ".base_model" if f["level"] == "tuner" else ""
    return [f"{n.ref(f['model'])}{level}.set_adapter({f['adapter_name']!r})"]


def _emit_add_weighted_adapter(f: dict[str, Any], n: Names) -> list[str]:
    weights = [float(w) for w in f["weights"]]
    return [f"{n.ref(f['model'])}.add_weighted_adapter({f['adapters']!r}, {weights!r}, "
            f"{f['adapter_name']!r}, combination_type={f['combination_type']!r}"
            f"{_opt(f, 'svd_rank', 'density', 'majority_sign_method')})"]


def _emit_call(method: str) -> Emitter:
    def emit(f: dict[str, Any], n: Names) -> list[str]:
        call = f"{n.ref(f['model'])}.{method}({f['adapter_name']!r})" if "adapter_name" in f else \
            f"{n.ref(f['model'])}.{method}()"
        return [f"{n.var(f['as'])} = {call}" if "as" in f else call]

    return emit


def _emit_snapshot(f: dict[str, Any], n: Names) -> list[str]:
    model, kind = n.ref(f["model"]), f["kind"]
    if kind == "output":
        call = f"output({model}, seed={f['seed']!r})"
    elif kind == "delta":
        call = f"deltas({model}, {f['pattern']!r}, adapter={f['adapter']!r})"
    else:
        function = {"tensors": "tensors", "trainable": "trainable", "keys": "state_keys"}[kind]
        call = f"{function}({model}, {f['pattern']!r}{', ' + repr(f['rename']) if f['rename'] else ''})"
    return [f"{n.var(f['as'])} = {call}"]


def _emit_optimizer_step(f: dict[str, Any], n: Names) -> list[str]:
    return [f"{n.var(f['as'])} = optimizer_step({n.ref(f['model'])}, "
            f"lr={f['lr']!r}, seed={f['seed']!r})"]


def _emit_load_optimizer_state(f: dict[str, Any], n: Names) -> list[str]:
    return ["# resume training: load the optimizer state into an optimizer over the other model",
            f"{n.var(f['as'])} = load_optimizer_state({n.ref(f['optimizer'])}, {n.ref(f['model'])}, "
            f"lr={f['lr']!r})"]


def _emit_read_adapter_file(f: dict[str, Any], n: Names) -> list[str]:
    n.mapping_objects.add(f["as"])
    return [f"{n.var(f['as'])} = read_adapter_file({n.ref(f['dir'])})"]


def _emit_import_peft(f: dict[str, Any], n: Names) -> list[str]:
    return ["import peft  # noqa: F811  (fails on some peft/transformers pairs)"]


def _emit_transformers_adapter_api(f: dict[str, Any], n: Names) -> list[str]:
    method = f["method"]
    args = []
    if method == "add_adapter":
        args.append(_peft_config(f))
        if f["adapter_name"] is not None:
            args.append(f"adapter_name={f['adapter_name']!r}")
    elif f["adapter_name"] is not None:
        args.append(repr(f["adapter_name"]))
    return [f"{n.var(f['as'])} = {n.ref(f['model'])}.{method}({', '.join(args)})"]


def _emit_transformers_load_adapter(f: dict[str, Any], n: Names) -> list[str]:
    name = f", adapter_name={f['adapter_name']!r}" if f["adapter_name"] is not None else ""
    model = n.ref(f["model"])
    return [f"{model}.load_adapter(str({n.ref(f['dir'])}){name})  # transformers' own PEFT integration",
            f"{model}.eval()"]


def _emit_auto_from_pretrained(f: dict[str, Any], n: Names) -> list[str]:
    auto_class = f["auto_class"]
    if not auto_class.isidentifier():
        raise ValueError(f"auto_class {auto_class!r} is not a class name")
    library = "peft" if auto_class.startswith("AutoPeftModel") else "transformers"
    return [f"{n.var(f['as'])} = {library}.{auto_class}.from_pretrained(str({n.ref(f['dir'])})).eval()"]


STEP_EMITTERS: dict[str, Emitter] = {
    "import_peft": _emit_import_peft, "transformers_adapter_api": _emit_transformers_adapter_api,
    "transformers_load_adapter": _emit_transformers_load_adapter, "auto_from_pretrained": _emit_auto_from_pretrained,
    "build_model": _emit_build_model, "save_base": _emit_save_base, "load_base": _emit_load_base,
    "get_peft_model": _emit_get_peft_model, "add_adapter": _emit_add_adapter, "perturb": _emit_perturb,
    "save_pretrained": _emit_save_pretrained, "dump_state_dict": _emit_dump_state_dict,
    "from_pretrained": _emit_from_pretrained, "load_adapter": _emit_load_adapter, "set_adapter": _emit_set_adapter,
    "add_weighted_adapter": _emit_add_weighted_adapter, "delete_adapter": _emit_call("delete_adapter"),
    "merge_and_unload": _emit_call("merge_and_unload"), "unload": _emit_call("unload"),
    "merge_adapter": _emit_call("merge_adapter"), "unmerge_adapter": _emit_call("unmerge_adapter"),
    "snapshot": _emit_snapshot, "optimizer_step": _emit_optimizer_step,
    "load_optimizer_state": _emit_load_optimizer_state, "read_adapter_file": _emit_read_adapter_file,
}


def _check_call(name: str, f: dict[str, Any], n: Names) -> str:
    pair = lambda: f"{n.ref(f['a'])}, {n.ref(f['b'])}"  # noqa: E731
    labels = f"names=({f.get('a')!r}, {f.get('b')!r})"  # only the pair checks have a and b
    if name == "allclose":
        return f"check_allclose({pair()}, atol={f['atol']!r}, rtol={f['rtol']!r}, {labels})"
    if name == "equal":
        return f"check_equal({pair()}, {labels})"
    if name == "differ":
        return f"check_differ({pair()}, atol={f['atol']!r}, {labels})"
    if name == "same_set":
        return f"check_same_set({pair()}, {labels})"
    if name == "keys":
        return f"check_keys({n.ref(f['of'])}, {f['pattern']!r}, {f['expect']!r}, {f['of']!r})"
    if name == "modules":
        return (f"check_modules({n.ref(f['model'])}, {f['type']!r}, under={f['under']!r}, "
                f"expect={f['expect']!r})")
    if name == "adapters":
        return (f"check_adapters({n.ref(f['model'])}, present={f['present']!r}, "
                f"absent={f['absent']!r}, active={f['active']!r})")
    if name in ("warns", "no_warns"):
        return (f"check_{name}(recorder.records({f['step']!r}), {f['match']!r}, "
                f"category={f['category']!r}, step={f['step']!r})")
    if name == "combination":
        terms = ", ".join(f"({coef!r}, {n.ref(ref)})" for ref, coef in f["terms"].items())
        return f"check_combination([{terms}], atol={f['atol']!r}, names={list(f['terms'])!r})"
    if name == "value":
        return f"check_value({n.ref(f['of'])}, {f['equals']!r}, {f['of']!r})"
    raise KeyError(name)


CHECK_NAMES = ("allclose", "equal", "differ", "same_set", "keys", "modules", "adapters", "warns", "no_warns", "value",
               "combination")


def _comment(text: str, prefix: str = "# ") -> list[str]:
    """Text as comment lines: every line break Python knows splits it, so nothing escapes the comment."""
    lines = []
    for line in text.splitlines() or [""]:
        lines += textwrap.wrap(line, 100, break_long_words=False, break_on_hyphens=False) or [""]
    return [(prefix + line).rstrip() for line in lines]


def _when(ranges: dict[str, str], lines: list[str], indent: str) -> list[str]:
    if not ranges:
        return [indent + line for line in lines]
    return [f"{indent}if version_in({ranges!r}):"] + [indent + "    " + line for line in lines]


def _with_defaults(operation: registry.Operation, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of a step or check, completed with the defaults of its registered function."""
    defaults = {p.name: p.default for p in operation.params.values() if not p.required}
    return {**defaults, **fields}


def render_script(case: Case) -> str:
    """The case as one standalone Python file (PEP 723 header pinning the installed versions)."""
    stack = versions.stack()
    names = Names()
    body: list[str] = []
    if case.model is not None:
        model_fields = {"as": "base", "architecture": case.model.architecture, "head": case.model.head,
                        "seed": case.model.seed, "config": case.model.config}
        model_fields = _set_order_names(_with_defaults(registry.STEPS["build_model"], model_fields), case.set_order)
        body += ["with recorder.step('model'):"] + ["    " + line for line in _emit_build_model(model_fields, names)]
    for spec in case.steps:
        raises = f", raises=({spec.raises.type!r}, {spec.raises.match!r})" if spec.raises else ""
        block = [] if spec.id.startswith(spec.op) else [f"# {spec.op}"]
        block += [f"with recorder.step({spec.id!r}{raises}):"]
        fields = _set_order_names(_with_defaults(registry.STEPS[spec.op], spec.fields), case.set_order)
        block += ["    " + line for line in STEP_EMITTERS[spec.op](fields, names)]
        body += _when(spec.when, block, "")
    body += ["show_status(locals())"]
    checks: list[str] = []
    for spec in case.expect:
        fields = _set_order_names(_with_defaults(registry.CHECKS[spec.check], spec.fields), case.set_order)
        call = _check_call(spec.check, fields, names)
        checks += _when(spec.when, [f"recorder.check({spec.id!r}, lambda: {call})"], "")
    deps = [f"torch=={_public(stack['torch'])}", f"transformers=={stack['transformers']}", f"peft=={stack['peft']}",
            f"safetensors=={stack['safetensors']}"]
    header = ["# /// script", '# requires-python = ">=3.10"', "# dependencies = ["]
    header += [f'#     "{dep}",' for dep in deps] + ["# ]", "# ///"]
    header += _comment(case.title)
    header += ["#", f"# Case {case.id!r}, exported by pytest-peft-edges {__version__} ('peft-edges export').",
               "# Run it with plain python: exit 1 prints 'BUG REPRODUCED: ...', exit 0 means it behaves as fixed."]
    if case.upstream.links():
        header += ["# Upstream: " + ", ".join(case.upstream.links())]
    for bug in case.known_bugs:
        header += _comment(f"Known bug {bug.id} ({bug.range_label()}): {bug.summary}")
    if case.description:
        header += ["#"] + _comment(case.description)
    lines = header + [
        "",
        "import os",
        "",
        'os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny models are built from config: never reach the Hub',
        'os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")',
        'os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")',
        "",
        "import pathlib",
        "import sys",
        "import tempfile",
        "",
        "import torch  # noqa: F401",
        "import torch.distributed.tensor  # noqa: F401  (old transformers + new peft need it imported first)",
        "import transformers",
        "",
        "try:",
        "    import peft",
        "except ImportError as exc:  # some peft/transformers pairs cannot import peft at all",
        "    PEFT_IMPORT_ERROR = exc",
        "else:",
        "    PEFT_IMPORT_ERROR = None",
        "",
        "",
        f"CASE_ID = {case.id!r}",
        f"TITLE = {case.title!r}",
        f"REQUIRES = {dict(case.requires)!r}",
        f"CASE_IMPORTS_PEFT = {bool(case.steps and case.steps[0].op == 'import_peft')!r}",
        f"SET_ORDER = {list(case.set_order)!r}  # names whose order in a set matters: run once per order",
        f"KNOWN_BUGS = {[bug_record(bug) for bug in case.known_bugs]!r}",
        "",
        "",
        "def version_in(ranges):",
        '    """True when the installed packages are inside every PEP 440 range of ``ranges``."""',
        "    return in_ranges(ranges, installed_versions())",
        "",
        "",
        "def installed_versions():",
        "    from importlib import metadata",
        "",
        "    found = {}",
        '    for name in ("peft", "transformers", "torch", "safetensors"):',
        "        try:",
        "            found[name] = metadata.version(name)",
        "        except metadata.PackageNotFoundError:",
        "            found[name] = None",
        "    return found",
        "",
        "",
        "def show_status(namespace):",
        '    """Print the adapter status of every PeftModel made so far, where peft offers it."""',
        "    seen = set()",
        "    for name, value in namespace.items():",
        '        if PEFT_IMPORT_ERROR is None and isinstance(value, peft.PeftModel) and id(value) not in seen \\',
        '                and hasattr(value, "get_model_status"):',
        "            seen.add(id(value))",
        "            try:",
        '                print(f"adapter status of {name}: {value.get_model_status()}")',
        "            except Exception as exc:  # noqa: BLE001",
        '                print(f"adapter status of {name}: unavailable ({type(exc).__name__}: {exc})")',
        "",
        "",
        "def reproduce(recorder, WORKDIR, N):",
        '    """The case. ``N`` maps each SET_ORDER name to the name this run uses (see set_order_renamings)."""',
        "    try:",
    ]
    lines += ["        " + line if line else "" for line in body]
    lines += ["    except StopCase:", "        show_status(locals())", "        return", "    if recorder.failures:", "        return"]
    lines += ["    " + line for line in checks] or ["    pass"]
    lines += [
        "",
        "",
        "def main():",
        "    if not version_in(REQUIRES):",
        '        print(f"NOT APPLICABLE: {CASE_ID} needs {REQUIRES}; installed {installed_versions()}")',
        "        return 0",
        "    if PEFT_IMPORT_ERROR is not None and not CASE_IMPORTS_PEFT:",
        '        print(f"NOT APPLICABLE: peft cannot be imported here ({PEFT_IMPORT_ERROR})")',
        "        return 0",
        "    recorder = Recorder()",
        '    with tempfile.TemporaryDirectory(prefix="peft-edges-") as workdir:',
        "        if SET_ORDER:",
        "            def run(renaming, index):",
        "                run_recorder = Recorder()",
        '                order_dir = pathlib.Path(workdir) / f"set-order-{index}"',
        "                order_dir.mkdir()",
        "                reproduce(run_recorder, order_dir, renaming)",
        "                return run_recorder.failures",
        "",
        "            recorder.failures = failures_per_set_order(SET_ORDER, run)",
        "        else:",
        "            reproduce(recorder, pathlib.Path(workdir), {})",
        "    result = judge(recorder.failures, KNOWN_BUGS, installed_versions())",
        '    verdict, message = result["verdict"], result["message"]',
        '    if verdict == "fixed":',
        '        print(f"{CASE_ID}: behaves as fixed on {installed_versions()}")',
        "        return 0",
        '    if verdict == "range-wrong":',
        '        print(f"{CASE_ID}: behaves as fixed ({message})")',
        "        return 0",
        '    if verdict in ("reproduced", "regressed"):',
        '        print(f"BUG REPRODUCED: {message}")',
        "        return 1",
        '    print(f"ERROR (not a recorded failure): {message}")',
        "    return 2",
        "",
        "",
        "# ---- helpers shared with pytest-peft-edges (its standalone.py, copied verbatim) ----",
        "",
        _helpers_source(),
        "",
        'if __name__ == "__main__":',
        "    sys.exit(main())",
        "",
    ]
    return "\n".join(lines)


def _public(version: str | None) -> str:
    return (version or "0").split("+", 1)[0]


def _helpers_source() -> str:
    source = inspect.getsource(standalone)
    docstring_end = source.index('"""', 3) + 3
    return source[docstring_end:].replace("from __future__ import annotations\n", "").strip() + "\n"


def render_issue(case: Case, env: str) -> str:
    """Markdown with PEFT's bug-report sections around the environment block and the script."""
    script = render_script(case)
    expected = case.description or case.title
    known = "\n".join(f"- Known bug `{bug.id}` ({bug.range_label()}): {bug.summary}" for bug in case.known_bugs)
    fence = "```"
    while fence in script:
        fence += "`"
    return "\n".join([
        f"<!-- {_one_line(case.title)} -->",
        "### System Info",
        "",
        "```",
        env,
        "```",
        "",
        "### Reproduction",
        "",
        f"Standalone script (tiny model built from config, offline, seed {case.model.seed if case.model else 0}); "
        "it exits 1 and prints `BUG REPRODUCED: ...` when the bug is present:",
        "",
        f"{fence}python",
        script.rstrip(),
        fence,
        "",
        "### Expected behavior",
        "",
        _one_line(expected),
        "",
        known,
        "",
        "Upstream: " + (", ".join(case.upstream.links()) or "no upstream issue yet"),
        "",
    ])


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace("-->", "-- >")
