"""The pytest plugin ``peft_edges``: options, tiny-model fixtures and the case catalogue.

Only hooks and fixture definitions live here. Loading the plugin imports neither torch, transformers nor
peft: each fixture imports its implementation inside its body, and every hook returns early unless its
feature is in use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from . import gc_freeze
from .offline import enforce_offline

if TYPE_CHECKING:
    import torch

KNOWN_MODES = ("xfail", "fail", "skip")
CATALOGUE_MODULE = Path(__file__).with_name("catalogue.py")


def bundled_cases_dir() -> Path:
    """The catalogue shipped with the package (in a wheel) or the repo's ``cases/`` (editable install)."""
    packaged = Path(__file__).with_name("cases")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "cases"


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
    parser.addini("peft_edges_cases", type="paths", default=[],
                  help="YAML case files or directories of this repo (relative to the ini file)")
    parser.addini("peft_edges_known", default="xfail", help="default of --peft-edges-known")


def _case_paths(config: pytest.Config) -> list[Path]:
    paths = [Path(p) for p in config.option.peft_edges_cases]
    paths += [Path(p) for p in config.getini("peft_edges_cases")]
    if config.option.peft_edges_catalogue:
        paths.insert(0, bundled_cases_dir())
    return paths


def cases_in_use(config: pytest.Config) -> bool:
    """True when this run collects YAML cases (bundled or the user's)."""
    return bool(config.option.peft_edges_catalogue or config.option.peft_edges_cases
                or config.getini("peft_edges_cases"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "peft_edges_case(id): a pytest-peft-edges YAML case")
    config.stash[_OFFLINE_KEY] = enforce_offline()
    gc_freeze.register_freeze_at_exit()
    known = config.option.peft_edges_known or config.getini("peft_edges_known")
    if known not in KNOWN_MODES:
        raise pytest.UsageError(f"peft_edges_known must be one of {', '.join(KNOWN_MODES)}, not {known!r}")
    config.option.peft_edges_known = known
    if not cases_in_use(config):
        return
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    asked = config.option.peft_edges_catalogue or config.option.peft_edges_cases
    module = str(CATALOGUE_MODULE)
    if not explicit and asked:
        config.args[:] = [module]  # `pytest --peft-edges` runs the catalogue, not the whole repo
    elif (asked or not explicit) and module not in config.args:
        config.args.append(module)
    from .reporting import VerdictReporter

    config.pluginmanager.register(VerdictReporter(config), "peft_edges_reporter")


_OFFLINE_KEY = pytest.StashKey[dict]()


def pytest_unconfigure(config: pytest.Config) -> None:
    for name in config.stash.get(_OFFLINE_KEY, {}):
        os.environ.pop(name, None)


def pytest_report_header(config: pytest.Config) -> str | None:
    if not (cases_in_use(config) or config.option.verbose > 0):
        return None
    from . import versions

    return f"peft-edges: {versions.describe()}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "peft_edges_case" not in metafunc.fixturenames:
        return
    from .schema import load_cases

    cases = load_cases(_case_paths(metafunc.config))
    if not cases:
        metafunc.parametrize("peft_edges_case", [pytest.param(None, marks=pytest.mark.skip(
            reason="no peft-edges case found (give --peft-edges or --peft-edges-cases PATH)"))], indirect=True)
        return
    metafunc.parametrize("peft_edges_case", [pytest.param(case, id=case.id, marks=pytest.mark.peft_edges_case(case.id))
                                             for case in cases], indirect=True)


@pytest.fixture
def peft_edges_case(request: pytest.FixtureRequest) -> Any:
    """The validated YAML case of this test id; a malformed case errors here with file, line and field."""
    from . import reporting
    from .schema import MalformedCase

    case = request.param
    if isinstance(case, MalformedCase):
        reporting.record(request.node, case_id=case.id, verdict="error", message=str(case.error), upstream=[])
        pytest.fail(f"malformed peft-edges case: {case.error}", pytrace=False)
    return case


@pytest.fixture
def peft_edges_judge(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Any], None]:
    """Run a case in ``tmp_path`` and turn its verdict into pass, strict xfail, or a failure with the reason."""

    def judge(case: Any) -> None:
        from . import reporting

        option = request.config.option
        export_dir = option.peft_edges_export_failures
        if export_dir is not None:
            export_dir = Path(request.config.invocation_params.dir) / export_dir
        reporting.judge_and_act(request.node, case, tmp_path, option.peft_edges_known, export_dir)

    return judge


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if "peft_edges_judge" in getattr(item, "fixturenames", ()):  # only cases carry a verdict section
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
