"""Each stage is declared once: its spec, its run() signature, its CLI and its rule agree."""

from __future__ import annotations

import importlib
import inspect

import pytest

from hoi_pipeline.cli import build_parser
from hoi_pipeline.config import SECTION_TYPES
from hoi_pipeline.stages.specs import STAGES


@pytest.mark.parametrize("spec", STAGES, ids=lambda s: s.command)
def test_spec_matches_the_stage_run_signature(spec):
    run = importlib.import_module(spec.module).run
    parameters = inspect.signature(run).parameters
    declared = [spec.section_argument(s) for s in spec.sections] + [o.dest for o in spec.options]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    assert set(declared) <= set(parameters), f"{spec.command}: declared but not taken by run(): {set(declared) - set(parameters)}"
    undeclared = [name for name, p in parameters.items() if name not in declared and p.default is inspect.Parameter.empty]
    assert not undeclared, f"{spec.command}: run() requires {undeclared}, which the spec does not declare"
    assert set(spec.sections) <= set(SECTION_TYPES)


@pytest.mark.parametrize("spec", STAGES, ids=lambda s: s.command)
def test_cli_subcommand_has_every_declared_option(spec):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[spec.command]
    flags = {flag for action in sub._actions for flag in action.option_strings} | {a.dest for a in sub._actions}
    for option in spec.options:
        assert option.flag in flags
    if spec.sections:
        assert {"--config", "--run", "--config-json"} <= flags
