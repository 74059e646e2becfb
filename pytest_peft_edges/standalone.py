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
    """A tiny transformers model from config with a fixed seed, in eval mode; the global RNG is untouched."""
    import torch
    import transformers

    model_config = getattr(transformers, config_class)(**config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(transformers, model_class)(model_config)
    return model.eval()


def make_inputs(model, batch=2, seq_len=8, seed=0):
    """Deterministic input_ids (no pad token: ids from 2 up) and an all-ones attention_mask."""
    import torch

    generator = torch.Generator().manual_seed(seed)
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
    value = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    return value.detach().clone()


def tensors(model, pattern=".*", rename=None):
    """The state_dict entries whose keys match ``pattern`` (keys renamed by ``rename``), cloned."""
    state = model.state_dict()
    return {_renamed(key, rename): state[key].detach().clone() for key in _matching(sorted(state), pattern)}


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
    out = model(**make_inputs(model, seed=seed))
    logits = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state
    logits.float().pow(2).mean().backward()
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
