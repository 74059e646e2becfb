"""Helpers shared by the case engine and by exported standalone scripts.

This file is copied verbatim into every script that ``peft-edges export`` writes, so it depends only on
the standard library at import time and on torch, transformers, peft and safetensors inside functions.
One implementation serves both, which keeps a script's verdict equal to the plugin's.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings


class CheckFailed(AssertionError):
    """A check found behaviour other than the fixed one."""


class CaseError(RuntimeError):
    """The case itself is wrong at run time (a missing object, a bad name): never a known bug."""


class Captured:
    """One warning or peft/transformers log record raised during a step."""

    def __init__(self, categories, message):
        self.categories = tuple(categories)  # MRO class names of a warning, or ("log", "log.WARNING")
        self.message = message

    def __str__(self):
        return f"{self.categories[0]}: {self.message}"


class _ListHandler(logging.Handler):
    def __init__(self, sink):
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record):
        self.sink.append(Captured(("log", f"log.{record.levelname}"), record.getMessage()))


@contextlib.contextmanager
def capture_warnings(sink, loggers=("peft", "transformers")):
    """Append every warning and peft/transformers log record raised inside the block to ``sink``."""
    handler = _ListHandler(sink)
    targets = [logging.getLogger(name) for name in loggers]
    for logger in targets:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield sink
            finally:
                for item in caught:
                    names = [cls.__name__ for cls in item.category.__mro__ if cls is not object]
                    sink.append(Captured(names, str(item.message)))
    finally:
        for logger in targets:
            logger.removeHandler(handler)


def build_model(config_class, model_class, seed, config):
    """A tiny transformers model from config with a fixed seed, in eval mode; the global RNG is untouched.

    ``model_class="TinyMLP"`` builds :func:`tiny_mlp` instead (modules with names a case chooses).
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model_class == "TinyMLP":
            return tiny_mlp(**config).eval()
        import transformers

        model_config = getattr(transformers, config_class)(**config)
        model = getattr(transformers, model_class)(model_config)
    return model.eval()


def tiny_mlp(layers=("lin0", "lin1", "lin2"), hidden=8):
    """A plain torch model of Linear layers at the dotted paths ``layers``, applied in order.

    It lets a case name modules freely (``lin1`` and ``lin10``, ``pair_weighted_avg.0``), as PEFT's own
    tests do with their MLP. Its input is ``{"x": (batch, hidden) floats}``.
    """
    import torch

    class TinyMLP(torch.nn.Module):
        is_tiny_mlp = True

        def __init__(self):
            super().__init__()
            self.layer_paths = list(layers)
            self.hidden = hidden
            for path in self.layer_paths:
                parent = self
                *heads, leaf = path.split(".")
                for head in heads:
                    if not hasattr(parent, head):
                        parent.add_module(head, torch.nn.Module())
                    parent = getattr(parent, head)
                parent.add_module(leaf, torch.nn.Linear(hidden, hidden))

        def forward(self, x):
            for path in self.layer_paths:
                x = torch.relu(self.get_submodule(path)(x))
            return x

    return TinyMLP()


def make_inputs(model, batch=2, seq_len=8, seed=0):
    """Deterministic input_ids (no pad token: ids from 2 up) and an all-ones attention_mask.

    A TinyMLP (also wrapped in a PeftModel) gets ``{"x": seeded floats}``.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base, "is_tiny_mlp", False):
        return {"x": torch.randn(batch, base.hidden, generator=generator)}
    input_ids = torch.randint(2, model.config.vocab_size, (batch, seq_len), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def _matching(names, pattern):
    regex = re.compile(pattern)
    return [name for name in names if regex.search(name)]


def _renamed(name, rename):
    for old, new in (rename or {}).items():
        name = re.sub(old, new, name)
    return name


def perturb(model, pattern="lora_B", seed=0, scale=0.5):
    """Simulate training: overwrite the parameters whose names match ``pattern`` with seeded noise."""
    import torch

    parameters = dict(model.named_parameters())
    chosen = _matching(sorted(parameters), pattern)
    if not chosen:
        raise CaseError(f"perturb: no parameter name matches {pattern!r}")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in chosen:
            tensor = parameters[name]
            noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32)
            tensor.copy_((noise * scale).to(tensor.dtype))


def output(model, seed=0):
    """The logits (or last hidden state) of ``model`` on the deterministic inputs of ``seed``."""
    import torch

    model.eval()
    with torch.no_grad():
        out = model(**make_inputs(model, seed=seed))
    return _main_output(out).detach().clone()


def _main_output(out):
    """The logits, the last hidden state, or the tensor a plain model returns."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    return out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state


def tensors(model, pattern=".*", rename=None):
    """The state_dict entries whose keys match ``pattern`` (keys renamed by ``rename``), cloned."""
    state = model.state_dict()
    return {_renamed(key, rename): state[key].detach().clone() for key in _matching(sorted(state), pattern)}


def deltas(model, pattern=".*", adapter="default"):
    """``{module path: get_delta_weight(adapter)}`` of the LoRA layers whose path matches ``pattern``."""
    regex = re.compile(pattern)
    found = {}
    for name, module in model.named_modules():
        if regex.search(name) and hasattr(module, "get_delta_weight") and adapter in getattr(module, "lora_A", {}):
            found[name] = module.get_delta_weight(adapter).detach().clone()
    if not found:
        raise CaseError(f"no LoRA layer matching {pattern!r} holds adapter {adapter!r}")
    return found


def trainable(model, pattern=".*", rename=None):
    """The sorted names of the trainable parameters matching ``pattern``."""
    names = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    return sorted(_renamed(name, rename) for name in _matching(names, pattern))


def state_keys(model, pattern=".*", rename=None):
    """The sorted state_dict keys matching ``pattern``."""
    return sorted(_renamed(key, rename) for key in _matching(list(model.state_dict()), pattern))


def adapter_dir(path):
    """PEFT saves a non-default adapter in a sub-folder named after it: the folder of the adapter itself."""
    import pathlib

    path = pathlib.Path(path)
    if (path / "adapter_config.json").is_file():
        return path
    saved = [sub for sub in sorted(path.iterdir()) if (sub / "adapter_config.json").is_file()]
    return saved[0] if len(saved) == 1 else path


def dump_state_dict(model, path, pattern="lora_", adapter_name="default"):
    """Write the raw state_dict entries matching ``pattern`` (keys keep ".default.") as an adapter."""
    import pathlib

    from safetensors.torch import save_file

    state = model.state_dict()
    chosen = {key: state[key].detach().contiguous().clone() for key in _matching(list(state), pattern)}
    if not chosen:
        raise CaseError(f"dump_state_dict: no state_dict key matches {pattern!r}")
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(chosen, str(path / "adapter_model.safetensors"))
    model.peft_config[adapter_name].save_pretrained(str(path))
    return path


def load_result(result):
    """``{"missing": [...], "unexpected": [...]}`` from what load_adapter returned (None on old releases)."""
    if result is None:
        return {"missing": [], "unexpected": []}
    return {"missing": list(getattr(result, "missing_keys", []) or []),
            "unexpected": list(getattr(result, "unexpected_keys", []) or [])}


def read_adapter_file(path):
    """``{"keys": sorted tensor names, "config": adapter_config.json}`` of a saved adapter."""
    import pathlib

    from safetensors import safe_open

    path = pathlib.Path(path)
    with safe_open(str(path / "adapter_model.safetensors"), framework="pt") as handle:
        keys = sorted(handle.keys())
    return {"keys": keys, "config": json.loads((path / "adapter_config.json").read_text())}


def optimizer_step(model, lr=1e-3, seed=0):
    """One real AdamW step over the trainable parameters (forward, loss, backward, step)."""
    import torch

    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise CaseError("optimizer_step: the model has no trainable parameter")
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    _main_output(model(**make_inputs(model, seed=seed))).float().pow(2).mean().backward()
    optimizer.step()
    optimizer.zero_grad()
    return optimizer


def load_optimizer_state(optimizer, model, lr=1e-3):
    """Resume: serialize ``optimizer.state_dict()`` and load it into an AdamW over ``model``'s trainable params."""
    import torch

    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    resumed.load_state_dict(state)
    return resumed


# Checks: each raises CheckFailed with a message that says what differs. ---------------------------

def _as_tensors(value, name):
    import torch

    if isinstance(value, torch.Tensor):
        return {"": value}
    if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
        return value
    if isinstance(value, dict) and not value:
        raise CaseError(f"{name!r} holds no tensor: the snapshot pattern matched nothing")
    raise CaseError(f"{name!r} holds {type(value).__name__}, not tensors (take a 'snapshot' first)")


def _pairs(a, b, names):
    left, right = _as_tensors(a, names[0]), _as_tensors(b, names[1])
    if set(left) != set(right):
        only_a, only_b = sorted(set(left) - set(right))[:5], sorted(set(right) - set(left))[:5]
        raise CheckFailed(f"{names[0]} and {names[1]} hold different tensors: only in {names[0]}: {only_a}; "
                          f"only in {names[1]}: {only_b}")
    pairs = []
    for key in sorted(left):
        if left[key].shape != right[key].shape:
            raise CheckFailed(f"{key or names[0]}: shape {tuple(left[key].shape)} != {tuple(right[key].shape)}")
        pairs.append((key, left[key].float(), right[key].float()))
    return pairs


def _max_diff(x, y):
    return float((x - y).abs().max()) if x.numel() else 0.0


def _label(name, key):
    return f"{name}[{key}]" if key else name


def check_allclose(a, b, atol=1e-5, rtol=1e-5, names=("a", "b")):
    """Every tensor of ``a`` is close to the one of the same name in ``b``."""
    import torch

    for key, x, y in _pairs(a, b, names):
        if not torch.allclose(x, y, atol=atol, rtol=rtol):
            raise CheckFailed(f"{_label(names[0], key)} differs from {names[1]}: max |diff| {_max_diff(x, y):.3g} "
                              f"> atol {atol:g} (rtol {rtol:g})")


def check_equal(a, b, names=("a", "b")):
    """Tensors bit-identical, or plain values equal."""
    import torch

    if isinstance(a, torch.Tensor) or (isinstance(a, dict) and a and all(isinstance(v, torch.Tensor) for v in a.values())):
        for key, x, y in _pairs(a, b, names):
            if not torch.equal(x, y):
                raise CheckFailed(f"{_label(names[0], key)} != {names[1]}: max |diff| {_max_diff(x, y):.3g}")
        return
    if a != b:
        raise CheckFailed(f"{names[0]} != {names[1]}: {_short(a)} vs {_short(b)}")


def check_differ(a, b, atol=1e-6, names=("a", "b")):
    """``a`` and ``b`` differ somewhere by more than ``atol``."""
    if all(_max_diff(x, y) <= atol for _key, x, y in _pairs(a, b, names)):
        raise CheckFailed(f"{names[0]} equals {names[1]} within {atol:g}: the adapter had no effect")


def check_combination(terms, atol=1e-5, names=()):
    """``sum(coefficient * snapshot)`` over ``terms`` is zero within ``atol`` (tensor by tensor).

    ``terms`` is a list of ``(coefficient, tensors)``, e.g. merged - base + (other - base) == 0.
    """
    import torch

    parts = [(float(coef), _as_tensors(value, name)) for (coef, value), name in zip(terms, names or [""] * len(terms))]
    keys = set(parts[0][1])
    if any(set(tensors) != keys for _coef, tensors in parts):
        raise CheckFailed(f"the snapshots {list(names)} hold different tensors")
    for key in sorted(keys):
        total = sum(coef * tensors[key].float() for coef, tensors in parts)
        scale = max(float(tensors[key].float().abs().max()) for _coef, tensors in parts)
        worst = float(total.abs().max())
        if not torch.isfinite(total).all() or worst > atol:
            formula = " + ".join(f"{coef:g}*{name}" for (coef, _t), name in zip(parts, names))
            raise CheckFailed(f"{formula} != 0 at {key or 'tensor'}: max |sum| {worst:.3g} > atol {atol:g} "
                              f"(largest term {scale:.3g})")


def check_same_set(a, b, names=("a", "b")):
    """Two collections of names hold the same set."""
    left, right = set(a), set(b)
    if left != right:
        raise CheckFailed(f"{names[0]} ({len(left)}) != {names[1]} ({len(right)}): only in {names[0]}: "
                          f"{sorted(left - right)[:6]}; only in {names[1]}: {sorted(right - left)[:6]}")


def check_keys(names, pattern=".*", expect="none", label="names"):
    """How many of ``names`` match ``pattern``: none, some or all."""
    if not isinstance(names, (list, tuple)):
        raise CaseError(f"{label!r} is not a list of names")
    regex = re.compile(pattern)
    hits = [n for n in names if regex.search(str(n))]
    if expect == "none" and hits:
        raise CheckFailed(f"{len(hits)} of {label} match /{pattern}/: {hits[:6]}")
    if expect == "some" and not hits:
        raise CheckFailed(f"nothing in {label} matches /{pattern}/ (it holds {len(names)}: {list(names)[:6]})")
    if expect == "all" and (not names or len(hits) != len(names)):
        misses = [n for n in names if not regex.search(str(n))]
        raise CheckFailed(f"not all of {label} match /{pattern}/: {misses[:6] or 'it is empty'}")


def check_modules(model, type_name, under="", expect="none"):
    """Whether a submodule whose path contains ``under`` has ``type_name`` among its classes."""
    found = [name for name, module in model.named_modules()
             if under in name and type_name in {cls.__name__ for cls in type(module).__mro__}]
    if expect == "none" and found:
        raise CheckFailed(f"{len(found)} {type_name} module(s) under {under!r}: {found[:4]}")
    if expect == "some" and not found:
        raise CheckFailed(f"no {type_name} module under {under!r}")


def check_adapters(model, present=None, absent=None, active=None):
    """Adapter names in ``model.peft_config``: present, absent, and the active one."""
    names = set(model.peft_config)
    missing = sorted(set(present or []) - names)
    extra = sorted(set(absent or []) & names)
    if missing or extra:
        raise CheckFailed(f"adapters {sorted(names)}: missing {missing}, unexpectedly present {extra}")
    if active is not None and model.active_adapter != active:
        raise CheckFailed(f"active adapter is {model.active_adapter!r}, not {active!r}")


def _records_matching(records, category, match):
    regex = re.compile(match)
    return [r for r in records if category in r.categories and regex.search(r.message)]


def check_warns(records, match, category="Warning", step="step"):
    """The step emitted a warning (or log record, category ``log``) matching ``match``."""
    if not _records_matching(records, category, match):
        raise CheckFailed(f"step {step!r} emitted no {category} matching /{match}/; it emitted: "
                          f"{[str(r)[:120] for r in records][:5]}")


def check_no_warns(records, match=".*", category="Warning", step="step"):
    """The step emitted no warning (or log record) of ``category`` matching ``match``."""
    hits = _records_matching(records, category, match)
    if hits:
        raise CheckFailed(f"step {step!r} emitted {category}: {str(hits[0])[:300]}")


def check_value(found, equals, label="value"):
    """A plain value equals the expected one."""
    if found != equals:
        raise CheckFailed(f"{label} is {_short(found)}, expected {_short(equals)}")


def _short(value):
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


# Set order: a bug that depends on the iteration order of a set of names, checked in every order. ----

def set_order_renamings(names, tries=10_000):
    """For each iteration order of ``set(names)``: ``(order, renaming)``, with ``renaming`` mapping every
    name to the name that makes a set built from the list iterate in that order in this interpreter.

    The order of a set of strings follows their hashes, fixed per interpreter by PYTHONHASHSEED. Instead
    of one interpreter per seed, the names get a common prefix ("" first, then "v1_", "v2_", ...) until
    every order has shown up: a common prefix keeps the relation that matters for such bugs (one name
    starting with another). Orders come in ``itertools.permutations`` order, the same in every process.
    """
    import itertools

    orders = list(itertools.permutations(names))
    found = {}
    for attempt in range(tries):
        prefix = f"v{attempt}_" if attempt else ""
        order = tuple(name[len(prefix):] for name in set(prefix + name for name in names))
        found.setdefault(order, {name: prefix + name for name in names})
        if len(found) == len(orders):
            return [(order, found[order]) for order in orders]
    missing = [order for order in orders if order not in found]
    raise CaseError(f"no renaming of {list(names)} iterates as {list(missing[0])} in {tries} tries")


def set_order_label(order, renaming):
    """``set order lin10, lin1`` and, when renamed, ``(as v1_lin10, v1_lin1)``."""
    label = "set order " + ", ".join(order)
    if any(renaming[name] != name for name in order):
        label += " (as " + ", ".join(renaming[name] for name in order) + ")"
    return label


def failures_per_set_order(names, run):
    """Run the case once per iteration order of ``set(names)``: ``run(renaming, index)`` returns the
    failure records of one run. The failures of the first failing order, labelled with that order."""
    for index, (order, renaming) in enumerate(set_order_renamings(names)):
        failures = run(renaming, index)
        if failures:
            label = set_order_label(order, renaming)
            return [{**failure, "message": f"[{label}] {failure['message']}"} for failure in failures]
    return []


def renamed(value, renaming):
    """``value`` with every string equal to a key of ``renaming`` replaced (through lists and dicts)."""
    if isinstance(value, str):
        return renaming.get(value, value)
    if isinstance(value, dict):
        return {renamed(key, renaming): renamed(item, renaming) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [renamed(item, renaming) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


# Verdicts: the same judgement for the plugin and for exported scripts. ---------------------------

def in_ranges(ranges, versions):
    """True when every package named in ``ranges`` is installed (``versions``) inside its PEP 440 range.

    Prereleases count; the local label is ignored (``2.13.0+cpu`` counts as ``2.13.0``).
    """
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    for package, spec in ranges.items():
        found = versions.get(package)
        if found is None:
            return False
        try:
            version = Version(Version(found).public)
        except InvalidVersion:
            return False
        if not SpecifierSet(spec, prereleases=True).contains(version, prereleases=True):
            return False
    return True


def describe_failure(failure):
    """``at 'step': ValueError: message`` / ``at 'check': check failed: message``."""
    kinds = {"exception": f"{failure['types'][0]}: ", "check": "check failed: ", "case": "case error: "}
    return f"at {failure['at']!r}: {kinds[failure['kind']]}{failure['message']}"


def failure_matches(spec, failure):
    """Does ``failure`` happen exactly as the recorded failure ``spec`` says?"""
    if spec.get("raises") is not None:
        if failure["kind"] != "exception" or spec["raises"] not in failure["types"]:
            return False
        if spec.get("step") is not None and failure["at"] != spec["step"]:
            return False
    elif failure["kind"] != "check" or failure["at"] != spec.get("check"):
        return False
    return spec.get("match") is None or re.search(spec["match"], failure["message"]) is not None


def _explaining(bugs, failure):
    for bug in bugs:
        if any(failure_matches(spec, failure) for spec in bug["fails"]):
            return bug
    return None


def judge(failures, bugs, versions):
    """The verdict of a run: ``{"verdict", "message", "bug", "failure"}``.

    ``failures``: dicts with at, kind (exception | check | case), types, message, in the order they
    happened. ``bugs``: dicts with id, label, affected, range, fails (recorded failure specs).
    """
    in_range = [bug for bug in bugs if in_ranges(bug["affected"], versions)]
    stack = ", ".join(f"{name} {versions.get(name)}" for name in ("peft", "transformers", "torch"))
    case_errors = [f for f in failures if f["kind"] == "case"]
    if case_errors:
        return {"verdict": "error", "message": f"the case itself is broken {describe_failure(case_errors[0])}",
                "bug": None, "failure": case_errors[0]}
    if not failures:
        if in_range:
            bug = in_range[0]
            return {"verdict": "range-wrong", "bug": bug, "failure": None,
                    "message": f"known bug {bug['id']} ({bug['range']}) should affect {stack}, but the case "
                               "passed: its recorded range is wrong"}
        return {"verdict": "fixed", "message": "behaves as fixed", "bug": None, "failure": None}
    first = failures[0]
    if in_range:
        unexplained = [f for f in failures if _explaining(in_range, f) is None]
        if not unexplained:
            bug = _explaining(in_range, first)
            return {"verdict": "reproduced", "bug": bug, "failure": first,
                    "message": f"known bug {bug['id']} reproduced ({bug['label']}): {describe_failure(first)}"}
        expected = "; ".join(f"{bug['id']}: " + " | ".join(_describe_spec(s) for s in bug["fails"]) for bug in in_range)
        odd = unexplained[0]
        return {"verdict": "error", "bug": None, "failure": odd,
                "message": f"failed another way than recorded {describe_failure(odd)} (recorded: {expected})"}
    other = _explaining(bugs, first)
    if other is not None:
        return {"verdict": "regressed", "bug": other, "failure": first,
                "message": f"known bug {other['id']} ({other['label']}) shows outside its recorded range "
                           f"({other['range']}): {describe_failure(first)}"}
    if first["kind"] == "check":
        return {"verdict": "regressed", "bug": None, "failure": first,
                "message": f"the fixed behaviour does not hold {describe_failure(first)}"}
    return {"verdict": "error", "bug": None, "failure": first,
            "message": f"unexpected exception {describe_failure(first)}"}


def _describe_spec(spec):
    where = (f"step {spec['step']!r}" if spec.get("step") else f"check {spec['check']!r}" if spec.get("check")
             else "any step")
    what = spec["raises"] if spec.get("raises") else "check failure"
    return f"{what} at {where}" + (f" matching /{spec['match']}/" if spec.get("match") else "")


# Running: steps stop at the first failure, checks are collected. --------------------------------

class StopCase(Exception):
    """Raised by ``Recorder.step`` after a step failed: the remaining steps cannot run."""


def exception_record(at, exc):
    """A failure record of an exception raised at step or check ``at``."""
    import traceback

    kind = "case" if isinstance(exc, CaseError) else "exception"
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    where = "; ".join(f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}" for frame in frames)
    return {"at": at, "kind": kind, "types": [cls.__name__ for cls in type(exc).__mro__ if cls is not object],
            "message": str(exc).strip() or type(exc).__name__, "where": where}


class Recorder:
    """Runs steps and checks, capturing warnings per step and recording failures in order."""

    def __init__(self):
        self.failures = []
        self.captured = {}

    def records(self, step_id):
        """The warnings and log records step ``step_id`` captured."""
        if step_id not in self.captured:
            raise CaseError(f"step {step_id!r} did not run (skipped by 'when'?)")
        return self.captured[step_id]

    @contextlib.contextmanager
    def step(self, step_id, raises=None):
        """Run the block as step ``step_id``; ``raises=(type name, regex)`` when the fixed behaviour raises.

        An unexpected exception is recorded and stops the case (StopCase); a missing expected exception
        is recorded as a check failure and the case goes on.
        """
        sink = self.captured.setdefault(step_id, [])
        raised = None
        with capture_warnings(sink):
            try:
                yield
            except Exception as exc:  # noqa: BLE001 - any exception of the library under test
                raised = exc
        if raises is None:
            if raised is not None:
                self.failures.append(exception_record(step_id, raised))
                raise StopCase(step_id)
            return
        if raised is None:
            self.failures.append({"at": step_id, "kind": "check", "types": ["CheckFailed"],
                                  "message": f"expected {raises[0]} matching /{raises[1]}/, nothing was raised"})
            return
        names = {cls.__name__ for cls in type(raised).__mro__}
        if raises[0] not in names or not re.search(raises[1], str(raised)):
            self.failures.append(exception_record(step_id, raised))
            raise StopCase(step_id)

    def check(self, check_id, run):
        """Run check ``check_id`` (a callable raising CheckFailed) and record how it failed."""
        try:
            run()
        except CheckFailed as exc:
            self.failures.append({"at": check_id, "kind": "check", "types": ["CheckFailed"], "message": str(exc)})
        except Exception as exc:  # noqa: BLE001
            self.failures.append(exception_record(check_id, exc))
