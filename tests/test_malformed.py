"""Malformed cases: each is one clear error naming file, line and field; the other cases still run."""

from __future__ import annotations

import pytest

pytest.importorskip("peft")

GOOD = """\
id: good
title: a good case
model: {architecture: bert}
steps:
  - {op: get_peft_model, config: {r: 2, target_modules: [query]}}
expect:
  - {check: adapters, present: [default]}
"""

HEAD = "id: {id}\ntitle: t\nmodel: {{architecture: bert}}\n"

# file name -> (content, expected "file:line: field: message" fragment)
MALFORMED = {
    "syntax.yaml": ("id: syntax\ntitle: [unclosed\n", "syntax.yaml:3: yaml: "),
    "not-a-mapping.yaml": ("- just\n- a list\n", "not-a-mapping.yaml:1: case: expected a mapping, got a list"),
    "steps-type.yaml": (HEAD.format(id="steps-type") + "steps: nope\n",
                        "steps-type.yaml:4: steps: expected a list, got a string"),
    "unknown-key.yaml": (HEAD.format(id="unknown-key") + "colour: red\nsteps: [{op: unload}]\n",
                         "unknown-key.yaml:4: colour: unknown field"),
    "unknown-step.yaml": (HEAD.format(id="unknown-step") + "steps:\n  - op: get_pef_model\n",
                          "unknown-step.yaml:5: steps[0].op: unknown step 'get_pef_model' (did you mean 'get_peft_model'?)"),
    "unknown-field.yaml": (HEAD.format(id="unknown-field") + "steps:\n  - op: get_peft_model\n  - op: perturb\n    sead: 1\n",
                           "unknown-field.yaml:7: steps[1].sead: step 'perturb' has no field 'sead' (did you mean 'seed'?)"),
    "unknown-check.yaml": (HEAD.format(id="unknown-check") + "steps: [{op: get_peft_model}]\nexpect:\n  - check: alclose\n",
                           "unknown-check.yaml:6: expect[0].check: unknown check 'alclose' (did you mean 'allclose'?)"),
    "architecture.yaml": ("id: architecture\ntitle: t\nmodel: {architecture: bertt}\nsteps: [{op: get_peft_model}]\n",
                          "architecture.yaml:3: model.architecture: unknown architecture 'bertt' (did you mean 'bert'?)"),
    # an unquoted ' #' in a text or regex field is a YAML comment that silently cuts the value
    "comment-in-title.yaml": ("id: comment-in-title\ntitle: Control for #1579 - the rest\nmodel: {architecture: bert}\n"
                              "steps: [{op: get_peft_model}]\n",
                              "comment-in-title.yaml:2: title: an unquoted ' #' starts a YAML comment, which cuts this "
                              "value to 'Control for': quote the value"),
    "comment-in-match.yaml": (HEAD.format(id="comment-in-match") + "steps: [{op: get_peft_model}]\nknown_bugs:\n"
                              "  - id: b\n    affected: {peft: '>=0'}\n    fails:\n      check: x\n      match: a #b\n",
                              "comment-in-match.yaml:10: known_bugs[0].fails.match: an unquoted ' #' starts a YAML comment"),
    "comment-in-pattern.yaml": (HEAD.format(id="comment-in-pattern") + "steps:\n  - op: get_peft_model\n"
                                "  - op: perturb\n    pattern: lora_B #only B\n",
                                "comment-in-pattern.yaml:7: steps[1].pattern: an unquoted ' #' starts a YAML comment"),
    "head.yaml": ("id: head\ntitle: t\nmodel:\n  architecture: opt\n  head: token_cls\nsteps: [{op: get_peft_model}]\n",
                  "head.yaml:5: model.head: opt has no head 'token_cls'"),
    "specifier.yaml": (HEAD.format(id="specifier") + "steps: [{op: get_peft_model}]\nknown_bugs:\n"
                       "  - id: b\n    affected: {peft: '>=banana'}\n    fails: {check: x}\n",
                       "specifier.yaml:7: known_bugs[0].affected.peft: not a PEP 440 version specifier: '>=banana'"),
    "package.yaml": (HEAD.format(id="package") + "steps:\n  - {op: get_peft_model, when: {jax: '>=0'}}\n",
                     "package.yaml:5: steps[0].when.jax: unknown package"),
    "python-tag.yaml": ("id: python-tag\ntitle: !!python/object/apply:os.system ['echo pwned']\nsteps: []\n",
                        "python-tag.yaml:2: yaml: tag not allowed in a case (safe YAML only)"),
    "huge.yaml": ("id: huge\ntitle: t\nmodel: {architecture: bert, seed: 99999999999999999999999}\nsteps: [{op: unload}]\n",
                  "huge.yaml:3: model.seed: integer 99999999999999999999999 is out of range"),
    "empty.yaml": ("", "empty.yaml:1: file: holds no case (empty YAML)"),
    "missing-title.yaml": ("id: missing-title\nsteps: [{op: unload}]\n", "missing-title.yaml:1: title: required field is missing"),
    "bad-ref.yaml": (HEAD.format(id="bad-ref") + "steps: [{op: get_peft_model}]\nexpect:\n  - {check: differ, a: out_nope, b: base}\n",
                     "bad-ref.yaml:6: expect[0].a: 'out_nope' is not made by an earlier step"),
    "fails-step.yaml": (HEAD.format(id="fails-step") + "steps: [{op: get_peft_model}]\nknown_bugs:\n"
                        "  - id: b\n    affected: {peft: '>=0'}\n    fails: {step: loda, raises: ValueError, match: x}\n",
                        "fails-step.yaml:8: known_bugs[0].fails.step: no step has id 'loda'"),
    "no-match.yaml": (HEAD.format(id="no-match") + "steps: [{op: get_peft_model}]\nknown_bugs:\n"
                      "  - id: b\n    affected: {peft: '>=0'}\n    fails: {step: get_peft_model, raises: ValueError}\n",
                      "no-match.yaml:8: known_bugs[0].fails.match: an exception needs its message regex"),
    "regex.yaml": (HEAD.format(id="regex") + "steps:\n  - op: get_peft_model\n    raises: {type: ValueError, match: '(unclosed'}\n",
                   "regex.yaml:6: steps[0].raises.match: not a valid regular expression"),
    "duplicate-key.yaml": ("id: duplicate-key\ntitle: t\ntitle: u\nsteps: [{op: unload}]\n",
                           "duplicate-key.yaml:3: yaml: duplicate key 'title'"),
    "wrong-field-type.yaml": (HEAD.format(id="wrong-field-type") + "steps:\n  - {op: perturb, seed: one}\n",
                              "wrong-field-type.yaml:5: steps[0].seed: expected an integer, got a string ('one')"),
    "path-escape.yaml": (HEAD.format(id="path-escape") + "steps:\n  - {op: get_peft_model}\n  - {op: save_pretrained, dir: ../../etc}\n",
                         "path-escape.yaml:6: steps[1].dir: '../../etc' is not a plain name"),
    "set-order-one.yaml": (HEAD.format(id="set-order-one") + "set_order: [lin1]\nsteps: [{op: unload}]\n",
                           "set-order-one.yaml:4: set_order: 2 to 4 distinct, non-empty names"),
    "set-order-type.yaml": (HEAD.format(id="set-order-type") + "set_order: [1, 10]\nsteps: [{op: unload}]\n",
                            "set-order-type.yaml:4: set_order: item 0: expected a string, got an integer (1)"),
    "set-order-object.yaml": (HEAD.format(id="set-order-object") + "set_order: [base, lin1]\nsteps: [{op: unload}]\n",
                              "set-order-object.yaml:4: set_order: 'base' also names an object"),
    "duplicate-id.yaml": (GOOD, "duplicate-id.yaml:1: id: duplicate case id 'good'; first defined at"),
}


def test_each_malformed_case_is_one_clear_error(pytester):
    cases = pytester.path / "cases"
    cases.mkdir()
    (cases / "a-good.yaml").write_text(GOOD)
    for name, (text, _expected) in MALFORMED.items():
        (cases / name).write_text(text)
    (cases / "binary.yaml").write_bytes(b"\x00\xff\xfe binary")
    (pytester.path / "no-cases-here").mkdir()
    result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "cases", "--peft-edges-cases", "nowhere",
                                "--peft-edges-cases", "no-cases-here", "-rE")
    result.assert_outcomes(passed=1, errors=len(MALFORMED) + 3)
    out = result.stdout.str()
    for name, (_text, expected) in MALFORMED.items():
        assert expected in out, f"{name}: {expected!r} not in output"
    assert "binary.yaml:1: file: not UTF-8 text" in out
    assert "nowhere:0: path: does not exist" in out
    assert "no-cases-here:0: path: is a directory without *.yaml/*.yml case files" in out
    assert "Traceback" not in out and "yaml_lines.py" not in out and "pytest_peft_edges/schema/" not in out
    assert "pwned" not in out.replace("echo pwned", "")


def test_a_malformed_case_reports_as_error_verdict(pytester):
    (pytester.path / "bad.yaml").write_text("id: bad\ntitle: t\nsteps: [{op: nope}]\n")
    result = pytester.runpytest("-p", "peft_edges", "--peft-edges-cases", "bad.yaml", "--peft-edges-report", "r.json")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*1 cases: 0 fixed, 0 reproduced, 0 regressed, 0 range-wrong, 1 errors*"])
    assert '"verdict": "error"' in (pytester.path / "r.json").read_text()
