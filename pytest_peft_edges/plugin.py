"""The pytest plugin ``peft_edges``: options, tiny-model fixtures and the case catalogue.

Only hooks and fixture definitions live here. Loading the plugin imports neither torch, transformers nor
peft: each fixture imports its implementation inside its body, and every hook returns early unless its
feature is in use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from . import collection
from .collection import bundled_cases_dir  # noqa: F401  (public: the CLI and tests read the catalogue here)

if TYPE_CHECKING:
    import torch

KNOWN_MODES = ("xfail", "fail", "skip")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("peft-edges", "known PEFT edge-case bugs (pytest-peft-edges)")
    group.addoption("--peft-edges", action="store_true", dest="peft_edges_catalogue", default=False,
                    help="run the bundled catalogue of PEFT edge-case bugs against the installed versions")
    group.addoption("--peft-edges-cases", action="append", dest="peft_edges_cases", default=[], metavar="PATH",
                    help="run the YAML cases in PATH (file or directory; repeatable)")
    group.addoption("--peft-edges-known", dest="peft_edges_known", default=None, choices=KNOWN_MODES,
                    help="what a known bug affecting the installed versions does: xfail (default), fail, skip")
    group.addoption("--peft-edges-report", dest="peft_edges_report", default=None, metavar="FILE",
                    help="write the verdict of every case as JSON to FILE")
    group.addoption("--peft-edges-export-failures", dest="peft_edges_export_failures", default=None, metavar="DIR",
                    help="write a standalone reproduction script to DIR for every case that failed or reproduced")
    from . import limits  # issue 15: options applied when parsed (limits.timeout_option/limits_option)

    group.addoption("--peft-edges-timeout", dest="peft_edges_timeout", default="60", type=limits.timeout_option,
                    metavar="SECONDS", help="per-case time limit (default 60; 0 turns it off)")
    group.addoption("--peft-edges-limits", dest="peft_edges_limits", default="", type=limits.limits_option,
                    metavar="NAME=N,...", help="raise size limits of cases, e.g. num_hidden_layers=32,r=128 (see docs/cases.md)")
    group.addoption("--peft-edges-tag", action="append", dest="peft_edges_tags", default=[], metavar="TAG",
                    help="run only the cases with this tag (the YAML 'tags:'; repeatable)")
    group.addoption("--peft-edges-bug", action="append", dest="peft_edges_bugs", default=[], metavar="ID",
                    help="run only the cases that record this known bug id (repeatable)")
    group.addoption("--peft-edges-accept", action="append", dest="peft_edges_accept", default=None, metavar="ID",
                    help="accept this known bug (xfail); every other reproduced bug fails (repeatable; "
                         "adds to ini peft_edges_accept)")
    parser.addini("peft_edges_accept", type="args", default=[],
                  help="known bug ids accepted (xfail); any other known bug affecting the installed versions fails")
    parser.addini("peft_edges_cases", type="paths", default=[],
                  help="YAML case files or directories of this repo (relative to the ini file)")
    parser.addini("peft_edges_known", default="xfail", help="default of --peft-edges-known")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "peft_edges_case(id): a pytest-peft-edges YAML case")
    config.addinivalue_line("markers", "peft_edges_bug(id, strict=False): this test hits the catalogued peft bug "
                            "ID; where the installed versions are in its range it is an xfail naming the fix")
    known = config.option.peft_edges_known or config.getini("peft_edges_known")
    if known not in KNOWN_MODES:
        raise pytest.UsageError(f"peft_edges_known must be one of {', '.join(KNOWN_MODES)}, not {known!r}")
    config.option.peft_edges_known = known
    state = collection.configure(config)
    if state is None:
        return  # no case in this session: nothing else changes
    config.stash[collection.STATE] = state
    accept = config.getini("peft_edges_accept")
    if accept or config.option.peft_edges_accept:
        wanted = [*accept, *(config.option.peft_edges_accept or [])]
        collection.unknown("bug id", wanted, set(collection.known_bugs(config)))
        config.stash[collection.ACCEPTED] = frozenset(wanted)
    from .reporting import VerdictReporter

    config.pluginmanager.register(VerdictReporter(config), "peft_edges_reporter")


def cases_in_use(config: pytest.Config) -> bool:
    """True when this run collects YAML cases (bundled or the user's)."""
    return collection.STATE in config.stash


def pytest_report_header(config: pytest.Config) -> str | None:
    if not (cases_in_use(config) or config.option.verbose > 0):
        return None
    from . import versions

    return f"peft-edges: {versions.describe()}"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    state = parent.config.stash.get(collection.STATE, None)
    if state is None or file_path.suffix not in collection.SUFFIXES or not state.claims(file_path):
        return None
    return collection.CaseFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    state = config.stash.get(collection.STATE, None)
    return None if state is None else collection.ignore_collect(state, collection_path)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    report = yield
    if isinstance(collector, pytest.Session) and report.passed:
        state = collector.config.stash.get(collection.STATE, None)
        if state is not None:
            report.result.extend(collection.session_nodes(collector, state))
    return report


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    tags, bugs = config.option.peft_edges_tags, config.option.peft_edges_bugs
    if (tags or bugs) and collection.STATE in config.stash:
        state = config.stash[collection.STATE]  # the cases of this run
        cases = [case for found in state.index().values() for case in found if hasattr(case, "known_bugs")]
        collection.unknown("tag", tags, {tag for case in cases for tag in case.tags})
        collection.unknown("bug id", bugs, {bug.id for case in cases for bug in case.known_bugs})
        keep, drop = [], []
        for item in items:
            case = getattr(item, "case", None)
            chosen = case is None or (
                (not tags or bool(set(tags) & set(getattr(case, "tags", ()))))
                and (not bugs or bool(set(bugs) & {bug.id for bug in getattr(case, "known_bugs", ())})))
            (keep if chosen else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
    marked = [(item, mark) for item in items for mark in item.iter_markers("peft_edges_bug")]
    if marked:
        _mark_known_bugs(config, marked)


def _mark_known_bugs(config: pytest.Config, marked: list[tuple[pytest.Item, Any]]) -> None:
    """``@pytest.mark.peft_edges_bug("ID")``: an xfail naming the bug and its fix where it affects the stack."""
    from . import reporting, versions

    bugs = collection.known_bugs(config)
    collection.unknown("bug id", [mark.args[0] if mark.args else "" for _, mark in marked], set(bugs))
    stack = versions.stack()
    for item, mark in marked:
        bug = bugs[mark.args[0]]
        if bug.affects(stack):
            info = reporting.bug_info(bug)
            link = info["upstream"][0] if info["upstream"] else "no upstream issue"
            reason = (f"known peft bug {bug.id} ({bug.summary}) affects {bug.range_label()}: "
                      f"{reporting.advice(info)} — {link}")
            item.add_marker(pytest.mark.xfail(reason=reason, strict=bool(mark.kwargs.get("strict", False))))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if isinstance(item, collection.CaseItem):  # only cases carry a verdict section
        from . import reporting

        reporting.add_section(item, report)
    return report


# Tiny-model fixtures ------------------------------------------------------------------------------

@pytest.fixture
def tiny_model() -> Callable[..., "torch.nn.Module"]:
    """Factory for fresh tiny models built from config (offline, milliseconds, bit-identical per seed).

    ``tiny_model(architecture="bert", head="seq_cls", seed=0, **config_overrides)`` with architecture
    bert | llama | gpt2 | opt | roberta and head base | seq_cls | token_cls | causal_lm (OPT has no
    token_cls). Every call builds a new model: ``get_peft_model`` mutates its base in place.
    """
    from .models import build_model

    return build_model


@pytest.fixture
def tiny_bert(tiny_model: Callable[..., Any]) -> "torch.nn.Module":
    """A fresh ``BertForSequenceClassification`` (hidden 32, 2 layers, 4 heads, intermediate 37, vocab 99,
    2 labels), seed 0, in eval mode."""
    return tiny_model("bert", "seq_cls")


@pytest.fixture
def tiny_llama(tiny_model: Callable[..., Any]) -> "torch.nn.Module":
    """A fresh ``LlamaForCausalLM`` (hidden 32, 2 layers, 4 heads, 2 kv heads, intermediate 37, vocab 99),
    seed 0, in eval mode."""
    return tiny_model("llama", "causal_lm")


@pytest.fixture
def tiny_inputs() -> Callable[..., dict[str, "torch.Tensor"]]:
    """Factory for deterministic inputs: ``tiny_inputs(model, batch=2, seq_len=8, seed=0)`` returns
    ``{"input_ids", "attention_mask"}`` valid for that model's vocabulary."""
    from .models import make_inputs

    return make_inputs


@pytest.fixture
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory that saves a base model to a fresh tmp directory and returns it (for ``from_pretrained``).

    ``tiny_model_dir(model)`` saves ``model``; ``tiny_model_dir(architecture="llama", head="causal_lm",
    seed=0, **overrides)`` builds one first. The directory holds config.json and model.safetensors.
    """
    from .models import build_model, save_base

    def save(model: Any = None, **build_kwargs: Any) -> Path:
        model = build_model(**build_kwargs) if model is None else model
        return save_base(model, tmp_path_factory.mktemp("tiny-base"))

    return save
