"""Hypothesis strategies for PEFT on the tiny models (public: use them in your own property tests).

Requires the ``properties`` extra (``pip install pytest-peft-edges[properties]``). Importing this module
does not import torch, transformers or peft.

>>> from hypothesis import given
>>> from pytest_peft_edges import strategies as pst
>>> @given(config=pst.lora_configs("llama"), name=pst.adapter_names())
... def test_round_trip(config, name): ...
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: The linear layers LoRA may target in each tiny architecture (no head layers).
TARGETS: dict[str, tuple[str, ...]] = {
    "bert": ("query", "key", "value", "dense"),
    "roberta": ("query", "key", "value", "dense"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "opt": ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
}
#: The classification head of each architecture (for modules_to_save).
HEADS = {"bert": "classifier", "roberta": "classifier", "llama": "score", "gpt2": "score", "opt": "score"}
#: Names that collide with something PEFT matches by substring: the tuner prefix, module-path segments.
HAZARDOUS_NAMES = ("lora", "ora", "a", "lora_A", "default", "attn", "self_attn", "layers", "model", "base_model",
                   "weight", "q_proj", "query", "classifier", "modules_to_save", "Lora")
#: Names PEFT must reject (a "." would nest the adapter inside a module path; "" names nothing).
INVALID_NAMES = ("", "a.b", "lora.default")


def adapter_names(hazardous: bool = True) -> st.SearchStrategy[str]:
    """Valid adapter names: plain identifiers, unicode words and (with ``hazardous``) the risky ones."""
    plain = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
    unicode_words = st.text(st.characters(categories=("Ll", "Lu", "Lo")), min_size=1, max_size=6)
    options = [plain, unicode_words]
    if hazardous:
        options.insert(0, st.sampled_from(HAZARDOUS_NAMES))
    return st.one_of(*options).filter(lambda name: "." not in name and name.strip() == name and name)


def invalid_adapter_names() -> st.SearchStrategy[str]:
    """Names PEFT is expected to reject with an exception."""
    return st.sampled_from(INVALID_NAMES)


def lora_configs(architecture: str = "llama", head: str | None = None, modules_to_save: bool = False,
                 targets: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """``LoraConfig`` keyword arguments: r, alpha, dropout, rslora, init, targets, modules_to_save.

    ``head`` (``"seq_cls"`` or ``"token_cls"``) adds the matching task_type.
    """
    task = {"seq_cls": "SEQ_CLS", "token_cls": "TOKEN_CLS", "causal_lm": "CAUSAL_LM"}.get(head or "")
    target_lists = st.lists(st.sampled_from(TARGETS[architecture]), min_size=1, max_size=3, unique=True)

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "r": draw(st.integers(1, 8)),
            "lora_alpha": draw(st.integers(1, 16)),
            "lora_dropout": draw(st.sampled_from([0.0, 0.1])),
            "use_rslora": draw(st.booleans()),
            "init_lora_weights": draw(st.sampled_from([True, False, "gaussian"])),
        }
        if targets:
            config["target_modules"] = draw(target_lists)
        if task:
            config["task_type"] = task
        if modules_to_save and draw(st.booleans()):
            config["modules_to_save"] = [HEADS[architecture]]
        return config

    return build()


def weighted_merge_specs(max_adapters: int = 3,
                         combination_types: tuple[str, ...] = ("linear", "cat", "svd")) -> st.SearchStrategy[dict[str, Any]]:
    """``{"count", "weights", "combination_type"}``: how many adapters, their weights (negative
    included), and the combination type. ``linear`` gets a single adapter (with several, peft's
    linear combination mixes A and B factors and is not a linear combination of the deltas)."""

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        combination = draw(st.sampled_from(combination_types))
        count = 1 if combination == "linear" else draw(st.integers(2, max_adapters))
        weight = st.floats(-2.0, 2.0, allow_nan=False).filter(lambda w: abs(w) > 0.05).map(lambda w: round(w, 3))
        return {"count": count, "weights": draw(st.lists(weight, min_size=count, max_size=count)),
                "combination_type": combination}

    return build()
