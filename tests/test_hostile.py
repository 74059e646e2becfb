"""A case file is untrusted input (issue 15): no escape, no hang, no blow-up.

The hostile corpus is generated here. Every entry is refused at collection with one clean
``file:line: field: message`` error, fast, and the good cases of the same run still pass. Each
entry is its own test (it failed, hung or crashed on the main of 2026-12-02), plus one pytester run
of the whole corpus next to a good case.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from pytest_peft_edges import codegen, limits, schema
from pytest_peft_edges.yaml_lines import load_documents

HEAD = "id: {id}\ntitle: t\nmodel: {{architecture: bert}}\n"
GOOD = """\
id: zz-good
title: a good case
model: {architecture: bert}
steps:
  - {op: get_peft_model, config: {r: 2, target_modules: [query]}}
expect:
  - {check: adapters, present: [default]}
"""


def case(case_id: str, steps: str, extra: str = "") -> str:
    return HEAD.format(id=case_id) + extra + "steps:\n" + steps


def billion_laughs(levels: int = 10, width: int = 10) -> str:
    """``levels`` anchors of ``width`` aliases each in a model config: width**levels leaves from ~800 bytes."""
    lines = ["    a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "id: bomb\ntitle: t\nmodel:\n  architecture: bert\n  config:\n" + "\n".join(lines) + "\nsteps: [{op: unload}]\n"


def nested(depth: int) -> str:
    return "id: deep\ntitle: t\ndescription: " + "[" * depth + "]" * depth + "\nsteps: [{op: unload}]\n"


SAVE_OTHER = "  - {op: get_peft_model, adapter_name: %s}\n  - {op: save_pretrained, dir: out}\n"

# file name -> (content, expected "file:line: field: message" fragment)
HOSTILE = {
    # A case can touch only its own tmp dir.
    "adapter-abs-path.yaml": (case("adapter-abs-path", SAVE_OTHER % "/tmp/peft-edges-escape/x"),
                              "adapter-abs-path.yaml:5: steps[0].adapter_name: '/tmp/peft-edges-escape/x' is not a plain name"),
    "adapter-dotdot.yaml": (case("adapter-dotdot", SAVE_OTHER % "'../../x'"),
                            "adapter-dotdot.yaml:5: steps[0].adapter_name: '../../x' is not a plain name"),
    "adapter-backslash.yaml": (case("adapter-backslash", "  - {op: get_peft_model}\n  - {op: add_adapter, adapter_name: 'a\\b', config: {r: 2}}\n"),
                               "adapter-backslash.yaml:6: steps[1].adapter_name: 'a\\\\b' is not a plain name"),
    "adapter-dot.yaml": (case("adapter-dot", SAVE_OTHER % ".hidden"), "adapter-dot.yaml:5: steps[0].adapter_name: '.hidden' is not a plain name"),
    "adapter-newline.yaml": (case("adapter-newline", SAVE_OTHER % '"x\\n"'),
                             "adapter-newline.yaml:5: steps[0].adapter_name: 'x\\n' is not a plain name"),
    "selected-adapters.yaml": (case("selected-adapters", "  - {op: get_peft_model}\n"
                                    "  - {op: save_pretrained, dir: out, selected_adapters: [default, ../up]}\n"),
                               "selected-adapters.yaml:6: steps[1].selected_adapters: '../up' is not a plain name"),
    "weighted-adapters.yaml": (case("weighted-adapters", "  - {op: get_peft_model}\n  - {op: add_weighted_adapter, adapters: [default],"
                                    " weights: [1.0], adapter_name: x/y, combination_type: linear}\n"),
                               "weighted-adapters.yaml:6: steps[1].adapter_name: 'x/y' is not a plain name"),
    "dir-dotted.yaml": (case("dir-dotted", "  - {op: get_peft_model}\n  - {op: read_adapter_file, dir: peft.peft_config.default.revision, as: x}\n"),
                        "dir-dotted.yaml:6: steps[1].dir: 'peft.peft_config.default.revision' is not a directory made by an earlier step"),
    "dir-not-a-dir.yaml": (case("dir-not-a-dir", "  - {op: from_pretrained, dir: base, as: p2}\n"),
                           "dir-not-a-dir.yaml:5: steps[0].dir: 'base' is not a directory made by an earlier step"),
    "set-order-path.yaml": (HEAD.format(id="set-order-path") + "set_order: [lin1, ../x]\nsteps: [{op: unload}]\n",
                            "set-order-path.yaml:4: set_order[1]: '../x' is not a plain name"),
    # Nothing in a case is code (or a path).
    "revision.yaml": (case("revision", "  - {op: get_peft_model, config: {r: 2, revision: /etc}}\n"),
                      "revision.yaml:5: steps[0].config.revision: not allowed in a case"),
    "megatron.yaml": (case("megatron", "  - op: get_peft_model\n    config:\n      r: 2\n      megatron_config: {tensor_model_parallel_size: 1}\n"
                                       "      megatron_core: os\n"),
                      "megatron.yaml:8: steps[0].config.megatron_config: not allowed in a case: it goes with megatron_core"),
    "megatron-core.yaml": (case("megatron-core", "  - {op: add_adapter, adapter_name: x, model: base, config: {megatron_core: os}}\n"),
                           "megatron-core.yaml:5: steps[0].config.megatron_core: not allowed in a case: peft imports the module it names"),
    "trust-remote-code.yaml": ("id: trust-remote-code\ntitle: t\nmodel:\n  architecture: bert\n  config: {trust_remote_code: true}\n"
                               "steps: [{op: unload}]\n", "trust-remote-code.yaml:5: model.config.trust_remote_code: not allowed in a case"),
    "auto-map.yaml": ("id: auto-map\ntitle: t\nmodel:\n  architecture: bert\n  config: {auto_map: {AutoModel: evil.Model}}\n"
                      "steps: [{op: unload}]\n", "auto-map.yaml:5: model.config.auto_map: not allowed in a case"),
    "name-or-path.yaml": (case("name-or-path", "  - {op: build_model, as: b2, config: {_name_or_path: /etc}}\n"),
                          "name-or-path.yaml:5: steps[0].config._name_or_path: private config fields are not allowed"),
    "base-model-path.yaml": (case("base-model-path", "  - {op: get_peft_model, config: {base_model_name_or_path: /etc}}\n"),
                             "base-model-path.yaml:5: steps[0].config.base_model_name_or_path: not allowed in a case"),
    "auto-mapping.yaml": (case("auto-mapping", "  - {op: get_peft_model, config: {auto_mapping: {parent_library: os, base_model_class: x}}}\n"),
                          "auto-mapping.yaml:5: steps[0].config.auto_mapping: not allowed in a case"),
    "attn-kernel.yaml": ("id: attn-kernel\ntitle: t\nmodel:\n  architecture: llama\n  config: {attn_implementation: kernels-community/flash-attn}\n"
                         "steps: [{op: unload}]\n", "attn-kernel.yaml:5: model.config.attn_implementation: 'kernels-community/flash-attn': only eager or sdpa"),
    "tokenizer-path.yaml": (case("tokenizer-path", "  - {op: get_peft_model, config_type: PromptTuningConfig, config: {task_type: SEQ_CLS,"
                                 " num_virtual_tokens: 4, prompt_tuning_init: TEXT, tokenizer_name_or_path: /etc}}\n"),
                            "tokenizer-path.yaml:5: steps[0].config.tokenizer_name_or_path: not allowed in a case"),
    "state-dict-path.yaml": (case("state-dict-path", "  - {op: get_peft_model, config: {prompt_tuning_init_state_dict_path: /etc/x}}\n"),
                             "state-dict-path.yaml:5: steps[0].config.prompt_tuning_init_state_dict_path: not allowed in a case"),
    "corda.yaml": (case("corda", "  - {op: get_peft_model, config: {init_lora_weights: corda, corda_config: {cache_file: /tmp/x}}}\n"),
                   "corda.yaml:5: steps[0].config.corda_config: not allowed in a case"),
    "quantization.yaml": ("id: quantization\ntitle: t\nmodel:\n  architecture: bert\n  config: {quantization_config: {quant_method: bitsandbytes}}\n"
                          "steps: [{op: unload}]\n", "quantization.yaml:5: model.config.quantization_config: not allowed in a case"),
    "xlora.yaml": (case("xlora", "  - {op: get_peft_model, config_type: XLoraConfig, config: {adapters: {a: /etc}}}\n"),
                   "xlora.yaml:5: steps[0].config_type: XLoraConfig is not allowed in a case"),
    "config-type.yaml": (case("config-type", "  - {op: get_peft_model, config_type: __class__}\n"),
                         "config-type.yaml:5: steps[0].config_type: '__class__' is not the name of a peft config class"),
    # Bounded collection.
    "bomb.yaml": (billion_laughs(), "bomb.yaml:10: yaml: more than 20000 YAML nodes (aliases expanded)"),
    "bomb-mapping.yaml": ("id: bomb-mapping\ntitle: t\nmodel:\n  architecture: bert\n  config:\n" + "\n".join(
        [f"    a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(10)) + "}" if i else "    a0: &a0 {x: 1}"
         for i in range(8)]) + "\nsteps: [{op: unload}]\n", "bomb-mapping.yaml:10: yaml: more than 20000 YAML nodes (aliases expanded)"),
    "deep.yaml": (nested(500), "deep.yaml:3: yaml: nesting deeper than 32 levels"),
    "deep-alias.yaml": ("id: deep-alias\ntitle: t\nmodel:\n  architecture: bert\n  config:\n    x: &x " + "[" * 20 + "]" * 20
                        + "\n    y: " + "[" * 20 + "*x" + "]" * 20 + "\nsteps: [{op: unload}]\n",
                        "deep-alias.yaml:7: yaml: nesting deeper than 32 levels (aliases expanded)"),
    "many-cases.yaml": ("".join(f"---\nid: c{i}\ntitle: t\nsteps: [{{op: unload}}]\n" for i in range(201)),
                        "many-cases.yaml:1: file: holds 201 documents; the limit is 200 cases per file"),
    "long-list.yaml": (case("long-list", "  - {op: unload}\n", "tags: [" + ", ".join(["t"] * 2000) + "]\n"),
                       "long-list.yaml:4: tags: list of 2000 items; the limit is 1000"),
    # Bounded execution: regexes at collection, sizes.
    "regex-fails.yaml": (case("regex-fails", "  - {op: get_peft_model}\n", "known_bugs:\n  - id: b\n    affected: {peft: '>=0'}\n"
                              "    fails: {check: adapters, match: '(a+)+$'}\n")
                         .replace("steps:\n  - {op: get_peft_model}\n", "steps:\n  - {op: get_peft_model}\nexpect:\n  - {check: adapters, present: [default]}\n"),
                         "regex-fails.yaml:7: known_bugs[0].fails.match: '(a+)+$': a repeat inside a repeat"),
    "regex-raises.yaml": (case("regex-raises", "  - op: get_peft_model\n    raises: {type: ValueError, match: '(x|x)*y'}\n"),
                          "regex-raises.yaml:6: steps[0].raises.match: '(x|x)*y': an alternation inside a repeat"),
    "regex-pattern.yaml": (case("regex-pattern", "  - {op: get_peft_model}\n  - {op: perturb, pattern: '(lora_'}\n"),
                           "regex-pattern.yaml:6: steps[1].pattern: not a valid regular expression: missing ), unterminated subpattern"),
    "regex-rename.yaml": (case("regex-rename", "  - {op: get_peft_model}\n  - {op: snapshot, kind: keys, as: k, rename: {'(\\w+\\.)*x': y}}\n"),
                          "regex-rename.yaml:6: steps[1].rename.(\\w+\\.)*x: '(\\\\w+\\\\.)*x': a repeat inside a repeat"),
    "regex-keys.yaml": (case("regex-keys", "  - {op: get_peft_model}\n  - {op: snapshot, kind: keys, as: k}\n",
                             ) + "expect:\n  - {check: keys, of: k, pattern: '([a-z]+)*$'}\n",
                        "regex-keys.yaml:8: expect[0].pattern: '([a-z]+)*$': a repeat inside a repeat"),
    "regex-warns.yaml": (case("regex-warns", "  - {op: get_peft_model}\n") + "expect:\n  - {check: warns, step: get_peft_model, match: '(.*a){20}'}\n",
                         "regex-warns.yaml:7: expect[0].match: '(.*a){20}': a repeat inside a repeat"),
    "regex-target.yaml": (case("regex-target", "  - {op: get_peft_model, config: {target_modules: '(q+)+$'}}\n"),
                          "regex-target.yaml:5: steps[0].config.target_modules: '(q+)+$': a repeat inside a repeat"),
    "regex-rank-pattern.yaml": (case("regex-rank-pattern", "  - {op: get_peft_model, config: {rank_pattern: {'(a|a)+': 2}}}\n"),
                                "regex-rank-pattern.yaml:5: steps[0].config.rank_pattern.(a|a)+: '(a|a)+': an alternation inside a repeat"),
    "layers.yaml": ("id: layers\ntitle: t\nmodel:\n  architecture: bert\n  config: {num_hidden_layers: 1000000}\nsteps: [{op: unload}]\n",
                    "layers.yaml:5: model.config.num_hidden_layers: 1000000 is larger than a tiny model needs (limit 8;"),
    "rank.yaml": (case("rank", "  - {op: get_peft_model, config: {r: 1000000}}\n"),
                  "rank.yaml:5: steps[0].config.r: 1000000 is larger than a tiny model needs (limit 64;"),
    "rank-pattern.yaml": (case("rank-pattern", "  - {op: get_peft_model, config: {rank_pattern: {query: 100000}}}\n"),
                          "rank-pattern.yaml:5: steps[0].config.rank_pattern.query: rank 100000 is larger than a tiny model needs"),
    "vocab.yaml": ("id: vocab\ntitle: t\nmodel:\n  architecture: bert\n  config: {vocab_size: 500000, hidden_size: 1024}\n"
                   "steps: [{op: unload}]\n", "vocab.yaml:5: model.config.vocab_size: 500000 is larger than a tiny model needs"),
    "virtual-tokens.yaml": (case("virtual-tokens", "  - {op: get_peft_model, config_type: PromptTuningConfig,"
                                 " config: {task_type: SEQ_CLS, num_virtual_tokens: 100000}}\n"),
                            "virtual-tokens.yaml:5: steps[0].config.num_virtual_tokens: 100000 is larger than a tiny model needs"),
    "svd-rank.yaml": (case("svd-rank", "  - {op: get_peft_model}\n  - {op: add_weighted_adapter, adapters: [default], weights: [1.0],"
                           " adapter_name: m, svd_rank: 100000}\n"),
                      "svd-rank.yaml:6: steps[1].svd_rank: 100000 is larger than a tiny model needs"),
    "mlp-hidden.yaml": ("id: mlp-hidden\ntitle: t\nmodel:\n  architecture: mlp\n  config: {hidden: 100000}\nsteps: [{op: unload}]\n",
                        "mlp-hidden.yaml:5: model.config.hidden: 100000 is larger than a tiny model needs"),
    # The minor points.
    "known-bug-ids.yaml": (case("known-bug-ids", "  - {op: get_peft_model}\n", "known_bugs:\n"
                                + "".join(f"  - id: same\n    affected: {{peft: '<0.{n}'}}\n    fails: {{step: get_peft_model, raises: E, match: x}}\n"
                                          for n in (1, 2))),
                           "known-bug-ids.yaml:8: known_bugs[1].id: duplicate known-bug id 'same'; first at line 5"),
    "escape\x1b[2J.yaml": (case("escape-key", "  - {op: unload}\n", '"colour\\e]0;pwned\\a": 1\n'),
                           "escape\\x1b[2J.yaml:4: colour\\x1b]0;pwned\\x07: unknown field"),
    "escape-title.yaml": ('id: escape-title\ntitle: "\\e]8;;http://x\\e\\\\click\\e[2J"\nsteps: [{op: unload}]\n',
                          "escape-title.yaml:2: title: control character U+001B is not allowed in a case"),
    "escape-config-key.yaml": (case("escape-config-key", '  - {op: get_peft_model, config: {"r\\e[2J": 2}}\n'),
                               "escape-config-key.yaml:5: steps[0].config.r\\x1b[2J: control character U+001B"),
    "long-message.yaml": ("id: " + "x" * 9_000 + "\ntitle: t\nsteps: [{op: unload}]\n",
                          "long-message.yaml:1: id: 'xxxx"),
}


@contextlib.contextmanager
def within(seconds: float):
    """Fail the test (instead of hanging) when the block takes longer than ``seconds``."""

    def alarm(signum, frame):
        raise pytest.fail.Exception(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read(tmp_path: Path, name: str, text: str) -> list:
    path = tmp_path / name
    path.write_text(text)
    with within(5):
        return schema.read_case_file(path)


@pytest.mark.parametrize("name", sorted(HOSTILE), ids=lambda n: n.split(".")[0].encode("ascii", "backslashreplace").decode())
def test_hostile_file_is_one_clean_error(tmp_path, name):
    text, expected = HOSTILE[name]
    start = time.perf_counter()
    found = read(tmp_path, name, text)
    elapsed = time.perf_counter() - start
    errors = [str(item.error) for item in found if isinstance(item, schema.MalformedCase)]
    assert len(found) == 1 and len(errors) == 1, f"{name}: {found}"
    assert expected in errors[0], f"{expected!r} not in {errors[0]!r}"
    assert "\x1b" not in errors[0] and "\x07" not in errors[0]
    assert len(errors[0]) < 3_000 + len(str(tmp_path))
    assert elapsed < 1.0, f"{name} took {elapsed:.2f} s to refuse"


def test_merge_key_override_is_accepted_as_yaml_defines_it(tmp_path):
    text = ("id: merge\ntitle: t\nmodel: {architecture: bert}\nsteps:\n"
            "  - {op: get_peft_model, config: {<<: {r: 2, lora_alpha: 4}, r: 4}}\n")
    (found,) = read(tmp_path, "merge.yaml", text)
    assert isinstance(found, schema.Case), found
    assert found.steps[0].fields["config"] == {"r": 4, "lora_alpha": 4}


def test_merge_key_with_an_alias_overrides_but_an_own_key_still_cannot_repeat():
    text = "base: &b {r: 2, lora_alpha: 4}\nconfig: {<<: *b, r: 4%s}\n"
    ((document, _line),) = load_documents(text % "")
    assert document["config"] == {"r": 4, "lora_alpha": 4}
    (error,) = load_documents(text % ", r: 8")
    assert (error.line, error.problem) == (2, "duplicate key 'r'")


def test_a_syntax_error_in_one_document_keeps_the_others(tmp_path):
    docs = [f"id: doc-{n}\ntitle: t\nsteps: [{{op: unload}}]\n" for n in (1, 2, 3, 4)]
    docs[2] = "id: doc-3\ntitle: [unclosed\nsteps: []\n"
    found = read(tmp_path, "multi.yaml", "---\n" + "---\n".join(docs))
    assert [type(item).__name__ for item in found] == ["Case", "Case", "MalformedCase", "Case"]
    assert [item.id for item in found] == ["doc-1", "doc-2", "malformed-multi-3", "doc-4"]
    assert str(found[2].error).endswith("multi.yaml:12: yaml: did not find expected ',' or ']' "
                                        "(document 3 of this file; the others are read on their own)")
    assert found[3].line == 14


def test_special_files_are_refused_even_when_named(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with within(5):
        found = schema.load_cases([fifo, Path("/dev/zero"), tmp_path])  # the directory holds only the FIFO
    messages = sorted(str(item.error) for item in found)
    assert messages == sorted([f"{fifo}:0: file: is a FIFO, not a case file", "/dev/zero:0: file: is a device, not a case file",
                               f"{tmp_path}:0: path: is a directory without *.yaml/*.yml case files"])


def test_a_link_out_of_a_case_directory_is_not_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "passwd.yaml").symlink_to(secret)
    (cases / "ok.yaml").write_text("id: ok-case\ntitle: t\nsteps: [{op: unload}]\n")
    (cases / "inside.yaml").symlink_to(cases / "ok.yaml")  # a link inside the directory is fine (same id twice)
    found = schema.load_cases([cases])
    assert [item.id for item in found] == ["duplicate-ok-case", "malformed-passwd", "ok-case"]
    assert str(found[1].error) == (f"{cases / 'passwd.yaml'}:0: file: is a link to a file outside the case directory; "
                                   "name that file itself to run it")
    assert all("root:" not in str(getattr(item, "error", "")) for item in found)


def test_the_limits_section_for_the_docs_names_every_refused_field_and_limit():
    text = limits.markdown()
    for name in list(schema.CODE_FIELDS) + list(schema.REFUSED_CONFIG_TYPES):
        assert f"`{name}`" in text
    for name, value in {**limits.SIZES, **limits.COLLECTION}.items():
        assert f"`{name}` {value}" in text


def test_search_is_time_bounded():
    pytest.importorskip("regex")
    with pytest.raises(TimeoutError):
        limits.search(r"(a|aa)+$", "a" * 40 + "b", seconds=0.2)
    assert limits.search(r"lora_B", "x.lora_B.default") and not limits.search(r"^x$", "y")


def test_file_size_limit(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("id: big\ntitle: t\nsteps: [{op: unload}]\n# " + "x" * 1_000_000 + "\n")
    with within(5):
        (found,) = schema.read_case_file(path)
    assert str(found.error) == (f"{path}:0: file: is {path.stat().st_size} bytes; the limit is 1000000 "
                                "(--peft-edges-limits file_bytes=N)")


def test_any_exception_while_reading_one_file_is_that_files_error(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("id: aa\ntitle: t\nsteps: [{op: unload}]\n")
    (tmp_path / "b.yaml").write_text("id: bb\ntitle: t\nsteps: [{op: unload}]\n")
    real = schema.files.load_documents

    def explode(text, *args):
        if "id: aa" in text:
            raise RecursionError("maximum recursion depth exceeded")
        return real(text, *args)

    monkeypatch.setattr(schema.files, "load_documents", explode)
    found = schema.load_cases([tmp_path])
    assert [item.id for item in found] == ["bb", "malformed-a"]
    assert str(found[1].error) == f"{tmp_path / 'a.yaml'}:0: file: cannot be read: RecursionError: maximum recursion depth exceeded"


def test_size_limits_can_be_raised(tmp_path):
    text = "id: wide\ntitle: t\nmodel:\n  architecture: bert\n  config: {num_hidden_layers: 12}\nsteps: [{op: unload}]\n"
    (refused,) = read(tmp_path, "wide.yaml", text)
    assert "num_hidden_layers: 12 is larger than a tiny model needs (limit 8; raise it with --peft-edges-limits" in str(refused.error)
    try:
        limits.limits_option("num_hidden_layers=12, list_items=5000")
        (accepted,) = read(tmp_path, "wide.yaml", text)
    finally:
        limits.limits_option("")
    assert isinstance(accepted, schema.Case) and accepted.model.config == {"num_hidden_layers": 12}
    assert limits.limit("num_hidden_layers") == 8 and limits.limit("list_items") == 1000
    with pytest.raises(Exception, match="unknown limit 'layers'"):
        limits.limits_option("layers=3")


def test_the_regex_shape_check_keeps_every_catalogue_pattern():
    found = schema.load_cases([Path(__file__).resolve().parent.parent / "cases"])
    assert found and all(isinstance(item, schema.Case) for item in found), [getattr(i, "error", "") for i in found]


def test_time_limit_interrupts_a_slow_regex_and_names_the_step():
    def slow_step():
        block = codegen.Block("step", "perturb-2", "perturb", (), {})  # noqa: F841 - found on the stack
        __import__("re").search(r"(a+)+$", "a" * 40 + "b")

    start = time.perf_counter()
    with pytest.raises(limits.CaseTimeout) as info:
        with limits.time_limit(0.2):
            slow_step()
    assert time.perf_counter() - start < 1.5
    assert str(info.value).startswith("timed out at step 'perturb-2' after 0.2 s")
    assert info.value.failure.kind == "case"
    with limits.time_limit(0.2):  # the timer is gone after the block: nothing fires later
        pass
    time.sleep(0.3)


def test_time_limit_fires_again_when_the_first_timeout_is_swallowed():
    swallowed = []
    with pytest.raises(limits.CaseTimeout):
        with limits.time_limit(0.05):
            try:
                time.sleep(5)
            except BaseException as exc:  # noqa: BLE001 - code that eats everything
                swallowed.append(exc)
            time.sleep(5)
    assert len(swallowed) == 1 and isinstance(swallowed[0], limits.CaseTimeout)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_outer_timer_survives_the_time_limit():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *args: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with limits.time_limit(5):
            pass
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 0.5
        time.sleep(0.8)
        assert fired == [True]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_time_limit_is_not_swallowed_by_except_exception():
    with pytest.raises(limits.CaseTimeout):
        with limits.time_limit(0.05):
            try:
                time.sleep(1)
            except Exception:  # noqa: BLE001 - what peft or transformers may do
                pass


# Whole runs: the corpus next to a good case ---------------------------------------------------

@pytest.fixture(scope="session")
def peft_loaded():
    """peft imported once, before pytester snapshots sys.modules (numpy cannot be imported twice)."""
    return pytest.importorskip("peft")



def write_corpus(directory: Path) -> None:
    directory.mkdir()
    for name, (text, _expected) in HOSTILE.items():
        (directory / name).write_text(text)
    (directory / "zz-good.yaml").write_text(GOOD)


def test_the_whole_corpus_is_refused_and_the_good_case_still_passes(peft_loaded, pytester):
    write_corpus(pytester.path / "cases")
    good = [GOOD.replace("id: zz-good", f"id: zz-good-{number}") for number in (1, 2, 4)]
    (pytester.path / "multi.yaml").write_text("---\n".join([good[0], good[1], "id: [unclosed\n", good[2]]))
    os.mkfifo(pytester.path / "pipe.yaml")
    start = time.perf_counter()
    with within(60):
        result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", "--peft-edges-cases", "multi.yaml",
                                    "--peft-edges-cases", "pipe.yaml", "--peft-edges-cases", "/dev/zero",
                                    "--peft-edges-report", "r.json", "-rE")
    elapsed = time.perf_counter() - start
    result.assert_outcomes(passed=4, errors=len(HOSTILE) + 3)
    out = result.stdout.str()
    for name, (_text, expected) in HOSTILE.items():
        assert limits.printable(expected) in out, f"{name}: {expected!r} not in output"
    for expected in ("multi.yaml:18: yaml: did not find expected ',' or ']' (document 3 of this file",
                     "pipe.yaml:0: file: is a FIFO, not a case file", "/dev/zero:0: file: is a device, not a case file"):
        assert expected in out
    assert "\x1b" not in out and "Traceback" not in out and "pytest_peft_edges/schema/" not in out
    report = json.loads((pytester.path / "r.json").read_text())
    verdicts = {entry["id"]: entry["verdict"] for entry in report["cases"]}
    assert [verdicts.pop(f"zz-good{suffix}") for suffix in ("", "-1", "-2", "-4")] == ["fixed"] * 4
    assert set(verdicts.values()) == {"error"} and len(verdicts) == len(HOSTILE) + 3
    print(f"hostile corpus: {len(HOSTILE) + 3} refused + 4 good cases in {elapsed:.2f} s")


SLOW = """\
id: aa-slow
title: a regex that backtracks polynomially on every state_dict key
model: {architecture: bert}
steps:
  - {op: get_peft_model, config: {r: 2, target_modules: [query]}}
  - {op: snapshot, kind: keys, pattern: '.*.*.*.*.*.*.*.*.*.*!', as: k}
"""


def test_a_case_past_its_time_limit_is_an_error_and_the_next_case_runs(peft_loaded, pytester):
    (pytester.path / "cases").mkdir()
    (pytester.path / "cases" / "aa-slow.yaml").write_text(SLOW)
    (pytester.path / "cases" / "zz-good.yaml").write_text(GOOD)
    with within(60):
        result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", "--peft-edges-timeout", "2",
                                    "--peft-edges-report", "r.json", "-v")
    result.assert_outcomes(passed=1, failed=1)
    # 'snapshot' on a quiet machine; under heavy load an earlier step may be the one still running at 2 s
    result.stdout.fnmatch_lines(["*aa-slow*FAILED*", "*zz-good*PASSED*",
                                 "*timed out at step '*' after 2 s (the per-case time limit; raise it with "
                                 "--peft-edges-timeout)*"])
    limits.configure(timeout_s=limits.DEFAULT_TIMEOUT)  # the option is process-wide: leave the default behind
    verdicts = {entry["id"]: entry["verdict"] for entry in json.loads((pytester.path / "r.json").read_text())["cases"]}
    assert verdicts == {"aa-slow": "error", "zz-good": "fixed"}


def test_the_limit_options_reach_collection(pytester):
    (pytester.path / "wide.yaml").write_text("id: wide\ntitle: t\nmodel:\n  architecture: bert\n"
                                             "  config: {num_hidden_layers: 12}\nsteps: [{op: unload, model: base}]\n")
    refused = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "wide.yaml", "--collect-only", "-q")
    refused.stdout.fnmatch_lines(["*wide.yaml::malformed-wide*"])
    raised = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "wide.yaml", "--collect-only", "-q",
                                "--peft-edges-limits", "num_hidden_layers=12")
    raised.stdout.fnmatch_lines(["*wide.yaml::wide*"])
    again = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "wide.yaml", "--collect-only", "-q")
    again.stdout.fnmatch_lines(["*wide.yaml::malformed-wide*"])  # the next run starts from the defaults
    bad = pytester.runpytest("-p", "peft_edges", "--peft-edges-limits", "layers=3", "--peft-edges-timeout", "-1")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "--peft-edges-limits: unknown limit 'layers'" in bad.stderr.str()


def test_a_case_directory_is_checked_to_stay_inside_before_use(tmp_path, peft_loaded):
    """Defence in depth: a link planted where a case directory goes is refused before the step runs."""
    from pytest_peft_edges import engine

    (case,) = schema.load_cases([_write(tmp_path, "link.yaml", GOOD_SAVE)])
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (workdir / "adapter").symlink_to(tmp_path / "elsewhere")
    outcome = engine.run_case(case, workdir)
    (failure,) = outcome.failures
    assert (failure.kind, failure.message) == ("case", "'adapter' leads outside the case's directory")
    assert list((tmp_path / "elsewhere").iterdir()) == []


GOOD_SAVE = """\
id: link
title: t
model: {architecture: bert}
steps:
  - {op: get_peft_model, config: {r: 2, target_modules: [query]}}
  - {op: save_pretrained, dir: adapter}
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path
