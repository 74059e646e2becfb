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
    "conv": {"base": "TinyConv"},
    "mha": {"base": "TinyMHA"},
    "t5": {"base": "T5Model", "seq2seq_lm": "T5ForConditionalGeneration"},
    "bart": {"base": "BartModel", "seq2seq_lm": "BartForConditionalGeneration"},
    "gemma3": {"base": "Gemma3TextModel", "causal_lm": "Gemma3ForCausalLM"},
    "roberta": {
        "base": "RobertaModel",
        "seq_cls": "RobertaForSequenceClassification",
        "token_cls": "RobertaForTokenClassification",
        "causal_lm": "RobertaForCausalLM",
    },
}

#: The tiny configs: hidden 32, 2 layers, 4 heads, intermediate 37, vocab 99, 2 labels. ``mlp``, ``conv``
#: and ``mha`` are plain torch models (:mod:`.helpers`) whose modules a case names freely; ``t5`` and
#: ``bart`` are seq2seq; ``gemma3`` has a scaled embedding; ``gpt2`` ties its input and output embeddings.
#: Models of no ``transformers`` config class.
TORCH_MODELS = {"TinyMLP": "tiny_mlp", "TinyConv": "tiny_conv", "TinyMHA": "tiny_mha"}
SEQ2SEQ = {"t5", "bart"}
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
    "conv": ("TinyConv", dict(kind="conv2d", channels=3, out_channels=8, kernel_size=3, groups=1, size=8)),
    "mha": ("TinyMHA", dict(hidden=8, heads=2, call="keywords")),
    "t5": (
        "T5Config",
        dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=4,
             relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1),
    ),
    "bart": (
        "BartConfig",
        dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
             decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
             pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2),
    ),
    "gemma3": (
        "Gemma3TextConfig",
        dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=8, max_position_embeddings=64, pad_token_id=0,
             tie_word_embeddings=False),
    ),
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
