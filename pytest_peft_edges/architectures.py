"""The tiny architectures as plain data (no torch import), shared by the models and the case schema."""

from __future__ import annotations

from typing import Any

#: Architectures and the transformers class for each head they have.
HEADS: dict[str, dict[str, str]] = {
    "bert": {
        "base": "BertModel",
        "seq_cls": "BertForSequenceClassification",
        "token_cls": "BertForTokenClassification",
        "causal_lm": "BertLMHeadModel",
    },
    "llama": {
        "base": "LlamaModel",
        "seq_cls": "LlamaForSequenceClassification",
        "token_cls": "LlamaForTokenClassification",
        "causal_lm": "LlamaForCausalLM",
    },
    "gpt2": {
        "base": "GPT2Model",
        "seq_cls": "GPT2ForSequenceClassification",
        "token_cls": "GPT2ForTokenClassification",
        "causal_lm": "GPT2LMHeadModel",
    },
    "opt": {
        "base": "OPTModel",
        "seq_cls": "OPTForSequenceClassification",
        "causal_lm": "OPTForCausalLM",
    },
    "mlp": {"base": "TinyMLP"},
    "roberta": {
        "base": "RobertaModel",
        "seq_cls": "RobertaForSequenceClassification",
        "token_cls": "RobertaForTokenClassification",
        "causal_lm": "RobertaForCausalLM",
    },
}

#: The tiny configs: hidden 32, 2 layers, 4 heads, intermediate 37, vocab 99, 2 labels.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": (
        "BertConfig",
        dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=37, max_position_embeddings=64, type_vocab_size=2, num_labels=2),
    ),
    "llama": (
        "LlamaConfig",
        dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, intermediate_size=37, max_position_embeddings=64,
             pad_token_id=0, num_labels=2, tie_word_embeddings=False),
    ),
    "gpt2": (
        "GPT2Config",
        dict(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_inner=37, n_positions=64,
             pad_token_id=0, bos_token_id=1, eos_token_id=1, num_labels=2),
    ),
    "opt": (
        "OPTConfig",
        dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=37,
             word_embed_proj_dim=32, max_position_embeddings=64, pad_token_id=1, num_labels=2),
    ),
    "mlp": ("TinyMLP", dict(layers=["lin0", "lin1", "lin2"], hidden=8)),
    "roberta": (
        "RobertaConfig",
        dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=37, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1,
             num_labels=2),
    ),
}


def model_classes(architecture: str, head: str) -> tuple[str, str]:
    """``(config class name, model class name)`` in transformers for ``architecture`` and ``head``."""
    return CONFIGS[architecture][0], HEADS[architecture][head]


def config_kwargs(architecture: str, head: str = "base", **overrides: Any) -> dict[str, Any]:
    """The tiny config's keyword arguments for ``architecture``/``head`` with ``overrides`` applied.

    BERT and RoBERTa causal-LM heads need ``is_decoder=True``.
    """
    extra = {"is_decoder": True} if architecture in ("bert", "roberta") and head == "causal_lm" else {}
    return {**CONFIGS[architecture][1], **extra, **overrides}


def default_head(architecture: str) -> str:
    """``seq_cls`` where the architecture has it, else its first head (``base`` for the MLP)."""
    heads = HEADS[architecture]
    return "seq_cls" if "seq_cls" in heads else next(iter(heads))
