"""Tiny models: every architecture and head builds offline, deterministically, and runs forward."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from pytest_peft_edges.architectures import HEADS  # noqa: E402
from pytest_peft_edges.models import make_inputs  # noqa: E402

PAIRS = [(arch, head) for arch, heads in HEADS.items() for head in heads]


@pytest.mark.parametrize(("architecture", "head"), PAIRS, ids=[f"{a}-{h}" for a, h in PAIRS])
def test_every_architecture_builds_and_runs(tiny_model, tiny_inputs, architecture, head):
    model = tiny_model(architecture, head)
    again = tiny_model(architecture, head)
    for (name, left), (_, right) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(left, right), name
    assert not model.training
    from pytest_peft_edges.helpers import output

    assert output(model).shape[0] == 2


def test_seed_changes_weights_and_leaves_global_rng(tiny_model):
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a, b = tiny_model("bert", seed=0), tiny_model("bert", seed=1)
    assert torch.rand(1) == expected  # the build did not consume the global RNG
    assert not torch.equal(a.classifier.weight, b.classifier.weight)


def test_fixture_shapes(tiny_bert, tiny_llama):
    assert type(tiny_bert).__name__ == "BertForSequenceClassification"
    assert (tiny_bert.config.hidden_size, tiny_bert.config.num_hidden_layers, tiny_bert.config.num_attention_heads,
            tiny_bert.config.intermediate_size, tiny_bert.config.vocab_size, tiny_bert.config.num_labels) == (32, 2, 4, 37, 99, 2)
    assert type(tiny_llama).__name__ == "LlamaForCausalLM"
    assert tiny_llama.config.num_key_value_heads == 2


def test_overrides_and_bad_names(tiny_model):
    assert tiny_model("llama", "seq_cls", num_labels=3).score.out_features == 3
    with pytest.raises(ValueError, match="unknown architecture 'bertt'"):
        tiny_model("bertt")
    with pytest.raises(ValueError, match="opt has no head 'token_cls'|architecture 'opt' has no head 'token_cls'"):
        tiny_model("opt", "token_cls")


@pytest.mark.parametrize("architecture, head", [("t5", "seq2seq_lm"), ("bart", "seq2seq_lm"), ("gemma3", "causal_lm"),
                                                ("conv", "base"), ("mha", "base"), ("gpt2", "causal_lm")])
def test_new_architectures_are_bit_identical_per_seed_and_run(tiny_model, architecture, head):
    from pytest_peft_edges.helpers import output

    first, second = tiny_model(architecture, head, seed=3), tiny_model(architecture, head, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not torch.equal(next(iter(tiny_model(architecture, head, seed=4).parameters())),
                           next(iter(first.parameters())))
    assert torch.equal(output(first), output(second))


def test_gpt2_ties_input_and_output_embeddings(tiny_model):
    model = tiny_model("gpt2", "causal_lm")
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()


def test_mlp_names_modules_freely(tiny_model):
    model = tiny_model("mlp", layers=["lin1", "lin10", "pair_weighted_avg.0"], hidden=4)
    assert [n for n, _ in model.named_modules()] == ["", "lin1", "lin10", "pair_weighted_avg", "pair_weighted_avg.0"]
    assert tiny_model("mlp", layers=["lin1"], hidden=4).lin1.weight.shape == (4, 4)


def test_inputs_are_deterministic(tiny_bert):
    first, second = make_inputs(tiny_bert, seed=3), make_inputs(tiny_bert, seed=3)
    assert torch.equal(first["input_ids"], second["input_ids"])
    assert int(first["input_ids"].max()) < 99


def test_saved_base_dir_round_trips(tiny_model_dir, tiny_bert):
    import transformers

    directory = tiny_model_dir(tiny_bert)
    assert (directory / "config.json").is_file() and (directory / "model.safetensors").is_file()
    loaded = transformers.BertForSequenceClassification.from_pretrained(directory)
    assert torch.equal(loaded.classifier.weight, tiny_bert.classifier.weight)
    assert (tiny_model_dir(architecture="llama", head="causal_lm") / "config.json").is_file()
