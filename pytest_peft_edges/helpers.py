"""The small functions the code of a case calls, in the plugin and in an exported script alike.

A step or check renders plain Python (see :mod:`.steps` and :mod:`.checks`); where one line of peft or
torch is not enough, that code calls one of these. ``peft-edges export`` copies the source of exactly the
helpers a case uses into its script, so every helper here is self-contained: it imports only the standard
library, torch, transformers, peft or safetensors, inside its body, and may call other helpers of this
module by name. Each check helper returns ``None`` when the fixed behaviour holds, else the message.
"""

from __future__ import annotations

import contextlib
import re


class CaseError(RuntimeError):
    """The case itself is wrong at run time (a pattern that matches nothing, a missing object)."""


def raised(exc, type_name, pattern):
    """True when ``exc`` is a ``type_name`` (a class name in its MRO) whose message matches ``pattern``."""
    return type_name in [cls.__name__ for cls in type(exc).__mro__] and re.search(pattern, str(exc)) is not None


def dig(value, path):
    """``value.a.b`` along the dotted ``path``, reading a key where a step is a dict (``scaling.default``)."""
    for field in path.split("."):
        value = value[field] if isinstance(value, dict) else getattr(value, field)
    return value


def tiny_mlp(layers=("lin0", "lin1", "lin2"), hidden=8):
    """A plain torch model of Linear layers at the dotted paths ``layers``, applied in order (input ``x``)."""
    import torch

    class TinyMLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer_paths, self.input_shape = list(layers), (hidden,)
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


def tiny_conv(kind="conv2d", channels=3, out_channels=8, kernel_size=3, groups=1, size=8):
    """A ``conv`` (Conv1d/2d/3d, padding kernel_size // 2, bias) then a mean over space and a Linear ``lin``."""
    import torch

    dims = {"conv1d": 1, "conv2d": 2, "conv3d": 3}[kind]

    class TinyConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.input_shape = (channels,) + (size,) * dims
            conv = getattr(torch.nn, f"Conv{dims}d")
            self.conv = conv(channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups)
            self.lin = torch.nn.Linear(out_channels, 2)

        def forward(self, x):
            return self.lin(torch.relu(self.conv(x)).flatten(2).mean(-1))

    return TinyConv()


def tiny_mha(hidden=8, heads=2, call="keywords"):
    """An ``nn.MultiheadAttention`` ``mha`` (batch first, called with keywords or positionally) then a
    Linear ``out``; input ``x`` of shape (batch, 8, hidden)."""
    import torch

    class TinyMHA(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.input_shape = (8, hidden)
            self.mha = torch.nn.MultiheadAttention(hidden, heads, batch_first=True)
            self.out = torch.nn.Linear(hidden, hidden)

        def forward(self, x):
            attn, _ = self.mha(query=x, key=x, value=x, need_weights=False) if call == "keywords" else \
                self.mha(x, x, x, need_weights=False)
            return self.out(attn)

    return TinyMHA()


def make_inputs(model, batch=2, seq_len=8, seed=0):
    """Seeded inputs: token ids from 2 up (no pad token) and an all-ones mask; a plain torch model of this
    module (``input_shape``) gets floats ``x`` in its dtype; an encoder-decoder also decoder ids.

    Lines marked ``# only: <kind>`` are left out of an exported script whose models are of no such kind.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    if hasattr(model, "input_shape"):  # only: torch (a TinyMLP/TinyConv/TinyMHA, or a PeftModel around one)
        return {"x": torch.randn(batch, *model.input_shape, generator=generator).to(next(model.parameters()).dtype)}  # only: torch
    ids = torch.randint(2, model.config.vocab_size, (batch, seq_len), generator=generator)
    if model.config.is_encoder_decoder:  # only: seq2seq
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "decoder_input_ids": ids[:, :4]}  # only: seq2seq
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def perturb(model, pattern="lora_B", seed=0, scale=0.5):
    """Simulate training: overwrite the parameters whose names match ``pattern`` with seeded noise."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    chosen = sorted((name, parameter) for name, parameter in model.named_parameters() if re.search(pattern, name))
    if not chosen:
        raise CaseError(f"perturb: no parameter name matches {pattern!r}")
    with torch.no_grad():
        for _name, parameter in chosen:
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)


def output(model, seed=0, inputs_embeds=False, **kwargs):
    """The logits (or last hidden state) of ``model`` on the inputs of ``seed`` (``kwargs`` go to forward;
    ``inputs_embeds``: the embeddings of the ids instead of the ids)."""
    import torch

    inputs = make_inputs(model, seed=seed)
    if inputs_embeds:  # only: inputs_embeds
        inputs["inputs_embeds"] = model.get_input_embeddings()(inputs.pop("input_ids"))  # only: inputs_embeds
    with torch.no_grad():
        out = model.eval()(**inputs, **kwargs)
    return (out if isinstance(out, torch.Tensor) else out.logits if "logits" in out else out.last_hidden_state).clone()


def generate(model, max_new_tokens=4, seed=0, **kwargs):
    """Greedy ``generate`` on the inputs of ``seed`` (``kwargs`` go to generate): the generated ids."""
    import torch

    inputs = make_inputs(model, seed=seed)
    inputs.pop("decoder_input_ids", None)
    with torch.no_grad():
        return model.eval().generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, **kwargs).clone()


def greedy_decode(model, max_new_tokens=4, seed=0):
    """Greedy decoding by repeated full forward passes (no cache): prompt + new ids."""
    import torch

    ids = make_inputs(model, seed=seed)["input_ids"]
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model.eval()(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids


def deltas(model, pattern=".*", adapter="default"):
    """``{module path: get_delta_weight(adapter)}`` of the LoRA layers whose path matches ``pattern``."""
    found = {name: module.get_delta_weight(adapter).detach().clone() for name, module in model.named_modules()
             if re.search(pattern, name) and hasattr(module, "get_delta_weight") and adapter in getattr(module, "lora_A", {})}
    if not found:
        raise CaseError(f"no LoRA layer matching {pattern!r} holds adapter {adapter!r}")
    return found


def adapter_dir(path):
    """PEFT saves a non-default adapter in a sub-folder named after it: the folder holding the adapter."""
    saved = [sub for sub in sorted(path.iterdir()) if (sub / "adapter_config.json").is_file()]
    return path if (path / "adapter_config.json").is_file() or len(saved) != 1 else saved[0]


def dump_state_dict(model, path, pattern="lora_", adapter_name="default"):
    """Write the raw state_dict entries matching ``pattern`` (keys keep ".default.") as an adapter folder."""
    import safetensors.torch

    chosen = {key: tensor.contiguous() for key, tensor in model.state_dict().items() if re.search(pattern, key)}
    if not chosen:
        raise CaseError(f"dump_state_dict: no state_dict key matches {pattern!r}")
    model.peft_config[adapter_name].save_pretrained(str(path))  # creates the folder
    safetensors.torch.save_file(chosen, str(path / "adapter_model.safetensors"))
    return path


def optimizer_step(model, lr=1e-3, seed=0):
    """One real AdamW step over the trainable parameters (forward, loss, backward, step)."""
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    out = model(**make_inputs(model, seed=seed))
    (out if isinstance(out, torch.Tensor) else out[0]).float().pow(2).mean().backward()
    optimizer.step()
    return optimizer


def load_optimizer_state(optimizer, model, lr=1e-3):
    """Resume: load ``optimizer``'s state into an AdamW over ``model``'s trainable parameters."""
    import torch

    resumed = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    resumed.load_state_dict(optimizer.state_dict())
    return resumed


@contextlib.contextmanager
def captured_logs(level="WARNING"):
    """The warnings and the peft/transformers log records from ``level`` up raised inside (a list)."""
    import logging
    import warnings

    handler, loggers = logging.Handler(level), [logging.getLogger("peft"), logging.getLogger("transformers")]
    handler.emit, records, old_levels = lambda record: records.append(record), [], [lg.level for lg in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(min(logger.getEffectiveLevel(), handler.level))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield caught
        finally:
            caught += records
            for logger, old in zip(loggers, old_levels):
                logger.removeHandler(handler)
                logger.setLevel(old)


# Check helpers: None when the fixed behaviour holds, else what differs. --------------------------

def differs(a, b, atol=0.0, rtol=0.0, names=("a", "b")):
    """None when snapshots ``a`` and ``b`` are equal (tensors within ``atol``/``rtol``, compared by
    ``torch.testing.assert_close``; 0 and 0: bit for bit), else how they differ."""
    import torch

    if not isinstance(a, (dict, torch.Tensor)):
        return None if a == b else f"{names[0]} != {names[1]}: {a!r:.200} vs {b!r:.200}"
    if isinstance(a, dict) and not (a and b):
        raise CaseError(f"{names[0] if not a else names[1]!r} holds no tensor: its pattern matched nothing")
    try:
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol, check_dtype=False)
    except AssertionError as error:
        return f"{names[0]} {'!=' if atol == rtol == 0 else 'differs from'} {names[1]}: {' '.join(str(error).split())}"


def no_difference(a, b, atol=1e-6, names=("a", "b")):
    """A message when ``a`` and ``b`` are equal within ``atol`` everywhere: the change had no effect."""
    if differs(a, b, atol=atol, names=names) is None:
        return f"{names[0]} equals {names[1]} within {atol:g}: the adapter had no effect"


def not_scaled(a, b, factor, atol=1e-6, names=("a", "b")):
    """Where the non-zero entries of ``a`` are not ``factor`` times those of ``b`` (tensors of the same names)."""
    import torch

    for key in sorted(a):
        kept = a[key] != 0
        if not kept.any():
            return f"{names[0]}[{key}] has no non-zero entry"
        x, y = a[key][kept].float(), factor * b[key][kept].float()
        if not torch.allclose(x, y, atol=atol, rtol=0):
            ratio = x / b[key][kept].float()
            return f"{names[0]}[{key}]: kept entries are {float(ratio.min()):.3g} to {float(ratio.max()):.3g} times {names[1]}, expected {factor:g}"


def nonzero_sum(terms, atol=1e-5):
    """Where ``sum(coefficient * tensors)`` over ``terms`` (``{name: (coefficient, tensors)}``) is not zero."""
    import torch

    parts = [(name, float(coef), value if isinstance(value, dict) else {"": value}) for name, (coef, value) in terms.items()]
    if any(tensors.keys() != parts[0][2].keys() for _name, _coef, tensors in parts):
        return f"the snapshots {list(terms)} hold different tensors"
    for key in sorted(parts[0][2]):
        total = sum(coef * tensors[key].float() for _name, coef, tensors in parts)
        if not torch.isfinite(total).all() or float(total.abs().max()) > atol:
            formula = " + ".join(f"{coef:g}*{name}" for name, coef, _tensors in parts)
            return f"{formula} != 0 at {key or 'tensor'}: max |sum| {float(total.abs().max()):.3g} > atol {atol:g}"
    return None


def set_difference(a, b, names=("a", "b")):
    """What only one of two collections of names holds."""
    if set(a) != set(b):
        return f"{names[0]} ({len(set(a))}) != {names[1]} ({len(set(b))}): only in {names[0]}: {sorted(set(a) - set(b))[:6]}; only in {names[1]}: {sorted(set(b) - set(a))[:6]}"


def modules_of_type(model, type_name, under):
    """The paths of the submodules under ``under`` whose class (or a base class) is named ``type_name``."""
    return [name for name, module in model.named_modules() if under in name and type_name in [c.__name__ for c in type(module).__mro__]]


def adapter_problem(model, present, absent, active):
    """Adapter names of ``model.peft_config`` missing from ``present``, found from ``absent``, or the
    wrong one active."""
    names = set(model.peft_config)
    if set(present) - names or set(absent) & names:
        return (f"adapters {sorted(names)}: missing {sorted(set(present) - names)}, "
                f"unexpectedly present {sorted(set(absent) & names)}")
    if active is not None and model.active_adapter != active:
        return f"active adapter is {model.active_adapter!r}, not {active!r}"
    return None


def emitted(records, category="Warning", pattern=""):
    """The messages of the warnings (``category``: a class name in their MRO) or peft/transformers log
    records (``log``, ``log.INFO``) in ``records`` that match ``pattern``."""
    found = [(["log", f"log.{r.levelname}"], r.getMessage()) if hasattr(r, "levelname") else
             ([c.__name__ for c in r.category.__mro__], str(r.message)) for r in records]
    return [message[:300] for kinds, message in found if category in kinds and re.search(pattern, message)]


def version_in(ranges):
    """True when every package of ``ranges`` is installed inside its PEP 440 range (local label ignored)."""
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    return all(Version(Version(version(name)).public) in SpecifierSet(spec, prereleases=True) for name, spec in ranges.items())


# Set order: a bug that depends on the iteration order of a set of names is run once per order. ------

def set_order_renamings(names, tries=10_000):
    """For each iteration order of ``set(names)``: ``(order, renaming)``; ``renaming`` maps every name to
    the name that makes a set built from them iterate in that order in this interpreter.

    String hashes (so set order) are fixed per interpreter by PYTHONHASHSEED. Instead of one interpreter
    per seed, the names get a common prefix ("" first, then "v1_", "v2_", ...) until every order showed
    up: a common prefix keeps what such bugs depend on (one name starting with another).
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
    missing = next(order for order in orders if order not in found)
    raise CaseError(f"no renaming of {list(names)} iterates as {list(missing)} in {tries} tries")


def set_order_label(order, renaming):
    """``set order lin10, lin1`` and, when renamed, ``(as v1_lin10, v1_lin1)``."""
    label = "set order " + ", ".join(order)
    if any(renaming[name] != name for name in order):
        label += " (as " + ", ".join(renaming[name] for name in order) + ")"
    return label


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
