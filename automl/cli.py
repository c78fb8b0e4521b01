"""The `automl` command: `automl fit [overrides]`, `automl predict key=value ...`.

User errors print one line and exit 2; `verbose=true` shows the traceback.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Callable, Dict, List

from automl.errors import AutoMLError, storage_failure
from automl.redact import install_log_filter, is_secret_name, redact_text, register_secrets

log = logging.getLogger("automl")

USAGE = """usage:
  automl fit [-m] [key=value ...]      tune candidates and save the best model (Hydra overrides;
                                       -m/--multirun sweeps comma-separated values)
  automl predict run_dir=DIR input=URL output=URL [overwrite=true] [trial=ID] [predict.backend=local|ray]
                 [predict.keep_columns=[id,...]] [predict.chunk_rows=N]
                                       batch transform of a file or folder/prefix, streamed in chunks
                                       (CSV output, or Parquet for *.parquet)
  automl monitor run_dir=DIR data=URL [output=URL] [overwrite=true] [alert.webhook=URL] [watch=true interval_s=N]
                                       data-quality and drift checks against the run's baseline
                                       (exit 0: no violations, 3: violations)
  automl serve run_dir=DIR [trial=ID] [host=127.0.0.1] [port=8080] [api_key=KEY] [capture.enabled=true ...]
                                       an HTTP endpoint for any trial's model (FastAPI on uvicorn or Ray Serve)
see README.md for every config key."""


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
    from automl.config import compose_config, expand_sweep
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
    runs = expand_sweep(overrides)
    base = None
    for i, ov in enumerate(runs):
        cfg = compose_config(ov)
        if base is None:
            from automl.runner import default_output_dir

            base = cfg.output_dir or default_output_dir().replace("outputs/", "outputs/multirun/", 1)
        from omegaconf import OmegaConf

        OmegaConf.set_struct(cfg, False)
        cfg.output_dir = f"{base.rstrip('/')}/{i}"
        OmegaConf.set_struct(cfg, True)
        log.info("sweep run %d/%d: %s", i + 1, len(runs), " ".join(ov) or "(defaults)")
        _print_result(fit(cfg, started=time.time()))
    return 0


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
    if best:
        line += f" | best {best['candidate']} {s['metric']}={best['score']:.5f}"
    if s.get("test_score") is not None:
        line += f" | test {s['metric']}={s['test_score']:.5f}"
    print(line)


def cmd_predict(args: List[str]) -> int:
    from automl.config import compose_command
    from automl.predict import batch_predict

    cfg = compose_command("predict", args)  # typed and checked: PredictConfig
    n = batch_predict(cfg.run_dir, cfg.input, cfg.output, trial=cfg.trial, backend=cfg.predict.backend,
                      keep_columns=list(cfg.predict.keep_columns), chunk_rows=cfg.predict.chunk_rows,
                      ray_address=cfg.ray.address, overwrite=cfg.overwrite, allow_pickle=cfg.allow_pickle)
    print(f"wrote {n} predictions to {cfg.output}")
    return 0


def cmd_monitor(args: List[str]) -> int:
    from automl.monitor.command import cmd_monitor as run_monitor

    return run_monitor(args)


def cmd_serve(args: List[str]) -> int:
    from automl.serving.server import cmd_serve as run_serve

    return run_serve(args)


COMMANDS: Dict[str, Callable[[List[str]], int]] = {"fit": cmd_fit, "predict": cmd_predict, "monitor": cmd_monitor,
                                                   "serve": cmd_serve}


def main(argv: List[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    verbose = _is_verbose(args)
    setup_logging(verbose)
    register_secrets(a.split("=", 1)[1] for a in args if "=" in a and is_secret_name(a.split("=", 1)[0]))
    install_log_filter()  # secrets never reach the terminal or a log file
    if command not in COMMANDS:
        print(f"automl: unknown command '{command}'; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[command](args)
    except AutoMLError as exc:
        if verbose:
            raise
        print(f"automl {command}: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"automl {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if verbose:
            raise
        known = storage_failure(exc, "", "storage")  # credentials, URL, permission: a user mistake
        if known is not None:
            print(f"automl {command}: error: {redact_text(str(known))}", file=sys.stderr)
            return 2
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"automl {command}: unexpected error: {type(exc).__name__}: {redact_text(first)} (rerun with verbose=true for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
