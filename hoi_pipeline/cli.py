"""Command line: one subcommand per pipeline stage, built from the stage declarations.

This is the only module that parses arguments and sets up logging. Each stage's subcommand comes
from its `StageSpec` (`hoi_pipeline/stages/specs.py`); stage modules are imported lazily, so
`evaluate` starts without importing torch.

Settings reach a stage in one of two ways:
- `--config config.yaml --run NAME`: the run's sections (and its dataset's and detector's) from a config file;
- `--config-json '{"train": {...}, ...}'`: exactly the sections the stage uses (what the Snakemake rules pass).

Two utility commands stand beside the stages: `config` prints a run's resolved settings as YAML and
`config-schema` the JSON schema of config.yaml. Every bad input is one logged line and exit code 2;
`-v` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
from typing import Any

from hoi_pipeline import config as C
from hoi_pipeline.stages.specs import STAGES, StageSpec

log = logging.getLogger("hoi_pipeline")

# errors that are the user's input, not our bug: one line, exit 2
USER_ERRORS = (C.ConfigError, FileNotFoundError, ValueError, OSError)


def resolve_sections(config_file: str | None, run: str | None, config_json: str | None, names: list[str]) -> dict:
    """The named config sections as dataclasses, from a config file and run, or from a JSON mapping."""
    if config_json is not None:
        try:
            data = json.loads(config_json)
        except json.JSONDecodeError as error:
            raise C.ConfigError(f"--config-json: not valid JSON ({error})") from error
        if not isinstance(data, dict):
            raise C.ConfigError("--config-json: expected a JSON object of sections")
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise C.ConfigError(f"--config-json: this stage takes sections {names}, not {unknown}")
        # a section left out takes its defaults (the rules always pass every section)
        return {name: C.from_dict(C.SECTION_TYPES[name], data.get(name, {}), name) for name in names}
    if run is None:
        if all(name == "eval" for name in names):
            return {"eval": C.EvalConfig()}
        raise C.ConfigError("give --run NAME (with --config FILE) or --config-json")
    from hoi_pipeline.workflow import resolve_run

    project = C.load_project_config(config_file or "config.yaml")
    run_config = resolve_run(project, run)
    dataset = project.datasets[run_config.dataset]
    available = {
        "synthetic": dataset.synthetic or C.SyntheticConfig(),
        "detector": project.detectors[run_config.detector],
        **{name: getattr(run_config, name) for name in ("clip", "model", "loss", "train", "infer", "eval")},
    }
    return {name: available[name] for name in names}


def _add_stage(sub: argparse._SubParsersAction, spec: StageSpec) -> None:
    parser = sub.add_parser(spec.command, help=spec.help, description=spec.help)
    parser.set_defaults(spec=spec)
    if spec.sections:
        group = parser.add_argument_group(f"settings: config sections {', '.join(spec.sections)} (one of)")
        group.add_argument("--config", default=None, help="config file (default config.yaml), used with --run")
        group.add_argument("--run", default=None, help="run name in the config file (or {run}/ablations/{preset})")
        group.add_argument("--config-json", default=None, help="JSON object of the config sections this stage uses")
    for option in spec.options:
        kwargs: dict[str, Any] = {"type": option.type, "help": option.help}
        if option.nargs:
            kwargs["nargs"] = option.nargs
        if option.positional:
            parser.add_argument(option.dest, **kwargs)
            continue
        if option.required:
            kwargs["required"] = True
        else:
            kwargs["default"] = option.default
        parser.add_argument(option.flag, dest=option.dest, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hoi-pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for spec in STAGES:
        _add_stage(sub, spec)
    p = sub.add_parser("config", help="print a run's resolved settings as YAML (defaults, presets and overrides applied)")
    p.add_argument("--config", default="config.yaml", help="config file")
    p.add_argument("--run", required=True, help="run name (or {run}/ablations/{preset})")
    sub.add_parser("config-schema", help="print the JSON schema of config.yaml (as YAML)")
    return parser


def run_stage(spec: StageSpec, args: argparse.Namespace) -> None:
    """Import the stage's module and call its `run()` with its sections and options."""
    kwargs: dict[str, Any] = {}
    if spec.sections:
        sections = resolve_sections(args.config, args.run, args.config_json, list(spec.sections))
        kwargs.update({spec.section_argument(name): value for name, value in sections.items()})
    kwargs.update({option.dest: getattr(args, option.dest) for option in spec.options})
    importlib.import_module(spec.module).run(**kwargs)


def dispatch(args: argparse.Namespace) -> None:
    if args.command == "config":
        from hoi_pipeline.workflow import resolved_run_yaml

        sys.stdout.write(resolved_run_yaml(C.load_project_config(args.config), args.run))
    elif args.command == "config-schema":
        import yaml

        sys.stdout.write(yaml.safe_dump(C.json_schema(), sort_keys=False, width=100))
    else:
        run_stage(args.spec, args)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # a cancelled job (Snakemake, SLURM and torchrun send SIGTERM) unwinds like Ctrl-C, so no temporary file stays
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        dispatch(args)
    except USER_ERRORS as error:
        log.error("%s", _one_line(error), exc_info=args.verbose)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _one_line(error: BaseException) -> str:
    """The error's message on one line (an OSError without a file name gets its strerror)."""
    text = str(error) or type(error).__name__
    return " ".join(text.split())
