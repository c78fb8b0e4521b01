"""The `automl` command: `automl fit [overrides]`, `automl predict key=value ...`.

User errors print one line and exit 2; `verbose=true` shows the traceback. Like a Hydra app,
`automl fit` and the commands with a schema take `--help` (every key with its default and doc,
from the schema), `--cfg job` (the composed config, nothing runs), `--version` and
`--shell-completion`; `automl fit -m` sweeps (automl/sweep.py).
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from automl.errors import AutoMLError, storage_failure
from automl.redact import install_log_filter, is_secret_name, redact_text, register_secrets

log = logging.getLogger("automl")

USAGE = """usage:
  automl fit [-m] [--cfg job] [key=value ...]
                                       tune candidates and save the best model (Hydra overrides;
                                       -m/--multirun sweeps comma-separated values, sweep.parallel=N at a time)
  automl predict run_dir=DIR input=URL output=URL [overwrite=true] [trial=ID] [predict.backend=local|ray]
                 [predict.keep_columns=[id,...]] [predict.chunk_rows=N]
                                       batch transform of a file or folder/prefix, streamed in chunks
                                       (CSV output, or Parquet for *.parquet)
  automl monitor run_dir=DIR data=URL [output=URL] [overwrite=true] [alert.webhook=URL] [watch=true interval_s=N]
                 [ground_truth=URL]
                                       data-quality and drift checks against the run's baseline; with
                                       ground_truth (inference_id,label), model quality on the capture
                                       (exit 0: no violations, 3: violations)
  automl serve run_dir=DIR [trial=ID] [host=127.0.0.1] [port=8080] [api_key=KEY] [capture.enabled=true ...]
                                       an HTTP endpoint for any trial's model (FastAPI on uvicorn or Ray Serve)
  automl export run_dir=DIR [trial=ID] format=onnx output=PATH [overwrite=true]
                                       the whole pipeline, processing included, as one ONNX graph
options: -h/--help, --version, --shell-completion install=bash|zsh|fish; and per command --help, --cfg job.
`automl COMMAND --help` lists every key of COMMAND with its default and doc (docs/cli.md)."""


def setup_logging(verbose: bool = False) -> None:
    root = logging.getLogger("automl")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[automl] %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def _process_start() -> float:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # pragma: no cover - psutil comes with ray
        return time.time()


def _is_verbose(args: List[str]) -> bool:
    return any(a.lower() in ("verbose=true", "verbose=1", "verbose=yes") for a in args)


def cmd_fit(args: List[str]) -> int:
    """Tune candidates on a table and save the best model: Hydra overrides on conf/config.yaml;
    -m sweeps comma-separated values, each point in its own run folder, sweep.parallel=N at a time."""
    from automl.config import compose_config
    from automl.runner import fit

    started = _process_start()
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    if not multirun:
        cfg = compose_config(overrides)
        run = fit(cfg, started=started)
        _print_result(run)
        _stop_ray()
        return 0
    from automl.sweep import run_sweep

    outcome = run_sweep(overrides, main)  # a point run as a process runs `automl fit` through main
    print(outcome.table())
    print(f"sweep summary: {outcome.summary_url}")
    _stop_ray()
    return outcome.exit_code


def _stop_ray() -> None:
    """Stop this process's Ray now that everything is written: Ray's own exit hook waits an
    extra half second for log lines that automl does not forward."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def _print_result(run) -> None:
    s = run.summary
    best = s.get("best") or {}
    line = f"run folder: {run.run_dir}"
    if best.get("fallback"):  # no trial finished: a default configuration without validation score
        line += f" | fallback {best['candidate']} (no trial finished; see summary.json)"
    elif best:
        line += f" | best {best['candidate']} {s['metric']}={best['score']:.5f}"
    if s.get("test_score") is not None:
        line += f" | test {s['metric']}={s['test_score']:.5f}"
    print(line)


def cmd_predict(args: List[str]) -> int:
    """Batch transform of a file or folder/prefix with a run's model, streamed in chunks (CSV
    output, or Parquet for *.parquet)."""
    from automl.config import compose_command
    from automl.predict import batch_predict

    cfg = compose_command("predict", args)  # typed and checked: PredictConfig
    n = batch_predict(cfg.run_dir, cfg.input, cfg.output, trial=cfg.trial, backend=cfg.predict.backend,
                      keep_columns=list(cfg.predict.keep_columns), chunk_rows=cfg.predict.chunk_rows,
                      ray_address=cfg.ray.address, overwrite=cfg.overwrite, allow_pickle=cfg.allow_pickle)
    print(f"wrote {n} predictions to {cfg.output}")
    return 0


def cmd_monitor(args: List[str]) -> int:
    """Data-quality and drift checks of a batch against the run's baseline (exit 0: no
    violations, 3: violations)."""
    from automl.monitor.command import cmd_monitor as run_monitor

    return run_monitor(args)


def cmd_serve(args: List[str]) -> int:
    """An HTTP endpoint for any trial's model (FastAPI on uvicorn, or Ray Serve)."""
    from automl.serving.server import cmd_serve as run_serve

    return run_serve(args)


def cmd_export(args: List[str]) -> int:
    """A run's model, processing included, as one ONNX graph (pip install 'automl[onnx]')."""
    from automl.export import cmd_export as run_export  # automl[onnx]: the whole pipeline as one ONNX graph

    return run_export(args)


COMMANDS: Dict[str, Callable[[List[str]], int]] = {"fit": cmd_fit, "predict": cmd_predict, "monitor": cmd_monitor,
                                                   "serve": cmd_serve, "export": cmd_export}


# ----------------------------------------------------------------------------- Hydra's flags
TOP_FLAGS = ("--help", "--version", "--shell-completion")


@dataclass
class Flags:
    """Hydra's flags among a command's arguments, and its ``key=value`` overrides in order."""

    help: bool = False
    cfg: Optional[str] = None
    version: bool = False
    completion: bool = False
    multirun: bool = False
    overrides: List[str] = field(default_factory=list)


def _options(command: str) -> str:
    if not command:
        return "-h/--help, --version, --shell-completion install=bash|zsh|fish"
    return "-h/--help, --cfg job, --version, --shell-completion" + (", -m/--multirun" if command == "fit" else "")


def parse_flags(command: str, args: List[str]) -> Flags:
    """Split `automl [command]` arguments into Hydra's flags and overrides (their order kept)."""
    from automl.errors import ConfigError

    flags, it = Flags(), iter(args)
    for arg in it:
        name, _, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg in ("-h", "--help"):
            flags.help = True
        elif name in ("--cfg", "-c"):
            flags.cfg = value or next(it, "")
        elif arg == "--resolve":
            continue  # the config is always shown resolved
        elif arg == "--version":
            flags.version = True
        elif arg in ("--shell-completion", "-sc"):
            flags.completion = True
        elif arg in ("-m", "--multirun") and command == "fit":
            flags.multirun = True
        elif arg.startswith("-"):
            where = f"automl {command}".strip()
            raise ConfigError(f"unknown option '{arg}' for `{where}`; options: {_options(command)}; settings are "
                              f"key=value (`automl {command or 'COMMAND'} --help` lists them)")
        else:
            flags.overrides.append(arg)
    if flags.cfg is not None and flags.cfg != "job":
        raise ConfigError(f"--cfg takes 'job' (the composed config); got '{flags.cfg}': automl composes no "
                          "Hydra run config, so 'hydra' and 'all' have nothing more to show")
    return flags


def version() -> str:
    """automl's installed version (the package's own when it is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("automl")
    except PackageNotFoundError:
        from automl import __version__

        return __version__


def _has_schema(command: str) -> bool:
    from automl.config.commands import SCHEMAS

    return command == "fit" or command in SCHEMAS


def dispatch(command: str, args: List[str]) -> int:
    """Run `automl [command] args`: Hydra's flags first, then the command itself."""
    from automl.errors import ConfigError

    if command and not _has_schema(command):
        return COMMANDS[command](args)  # a command that reads its own arguments
    flags = parse_flags(command, args)
    if flags.version:
        print(f"automl {version()}")
        return 0
    if flags.completion:
        from automl.config.completion import shell_completion

        return shell_completion(flags.overrides, list(COMMANDS), TOP_FLAGS)
    if not command:
        raise ConfigError(f"'{args[0]}' needs a command first, e.g. `automl fit {args[0]}`; commands: "
                          f"{', '.join(COMMANDS)}")
    if flags.help:
        from automl.config.help import command_help

        summary = " ".join((COMMANDS[command].__doc__ or "").split())
        print(command_help(command, summary, flags.overrides), end="")
        return 0
    if flags.cfg:
        from automl.config.compose import config_yaml

        print(config_yaml(command, flags.overrides), end="")
        return 0
    return COMMANDS[command](["-m", *flags.overrides] if flags.multirun else flags.overrides)


def main(argv: List[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    if command.startswith("-"):  # `automl --version`, `automl --shell-completion install=bash`
        command, args = "", argv
    verbose = _is_verbose(args)
    setup_logging(verbose)
    register_secrets(a.split("=", 1)[1] for a in args if "=" in a and is_secret_name(a.split("=", 1)[0]))
    install_log_filter()  # secrets never reach the terminal or a log file
    if command and command not in COMMANDS:
        print(f"automl: unknown command '{command}'; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    name = f"automl {command}".strip()
    try:
        return dispatch(command, args)
    except AutoMLError as exc:
        if verbose:
            raise
        print(f"{name}: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if verbose:
            raise
        known = storage_failure(exc, "", "storage")  # credentials, URL, permission: a user mistake
        if known is not None:
            print(f"{name}: error: {redact_text(str(known))}", file=sys.stderr)
            return 2
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"{name}: unexpected error: {type(exc).__name__}: {redact_text(first)} (rerun with verbose=true for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
