"""Shell completion for the `automl` command: Hydra's own for `automl fit`, the schema's keys for
the other commands.

``eval "$(automl --shell-completion install=bash)"`` installs Hydra's bash script (zsh: the same
through ``bashcompinit``; fish: ``install=fish``). The script runs ``automl -sc query=bash`` with the
command line in ``COMP_LINE``: the first word after ``automl`` completes to a command; after
``fit``, Hydra completes keys, values and config groups of the composed config; after
``predict``, ``serve`` or ``monitor``, the keys of that command's schema.
"""
from __future__ import annotations

import os
import sys
from typing import List, Sequence

SHELLS = ("bash", "zsh", "fish")
ACTIONS = ("install", "uninstall", "query")


def _parse(args: Sequence[str]) -> tuple[str, str]:
    from automl.errors import ConfigError

    words = [a for a in args if "=" in a and a.split("=", 1)[0] in ACTIONS]
    if len(words) != 1 or words[0].split("=", 1)[1] not in SHELLS:
        raise ConfigError("--shell-completion takes one of install=SHELL, uninstall=SHELL or query=SHELL, "
                          f"SHELL one of {', '.join(SHELLS)}; e.g. eval \"$(automl --shell-completion install=bash)\"")
    action, shell = words[0].split("=", 1)
    return action, shell


def _hydra(args: List[str], comp_line: str | None = None) -> None:
    """Run Hydra's completion for `automl fit` (Hydra's public ``hydra.main`` app, given ``args``)."""
    import hydra

    from automl.config import fit  # noqa: F401  (registers the schema in Hydra's ConfigStore)
    from automl.resources import project_dir

    @hydra.main(config_path=str(project_dir("conf")), config_name="config", version_base=None)
    def app(cfg) -> None:  # never called: Hydra only completes
        return None

    saved_argv, saved_line = sys.argv, os.environ.get("COMP_LINE")
    sys.argv = ["automl", *args]  # Hydra names the completed command after argv[0]
    if comp_line is not None:
        os.environ["COMP_LINE"] = comp_line
    try:
        app()
    finally:
        sys.argv = saved_argv
        if comp_line is not None:
            if saved_line is None:
                os.environ.pop("COMP_LINE", None)
            else:
                os.environ["COMP_LINE"] = saved_line


def complete_keys(command: str, word: str) -> List[str]:
    """``key=`` for every key of a command's schema that starts with ``word``."""
    from automl.config.commands import SCHEMAS, command_keys

    if "=" in word or command not in SCHEMAS:
        return []  # a value: the shell completes file names
    return [f"{k}=" for k in command_keys(command) if k.startswith(word)]


def query(shell: str, commands: Sequence[str], flags: Sequence[str]) -> None:
    """Print the completions of the command line in ``COMP_LINE`` (one line for bash, one per
    completion for fish)."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()[1:]  # drop `automl`
    new_word = line.endswith(" ")
    if not words or (len(words) == 1 and not new_word):
        word = words[0] if words else ""
        found = [c for c in [*commands, *flags] if c.startswith(word)]
    elif words[0] == "fit":
        rest = line.split(None, 2)[2] if len(words) > 1 else ""  # the line after `automl fit`
        _hydra(["-sc", f"query={shell}"], comp_line="automl " + rest)
        return
    elif words[0] in commands:
        word = "" if new_word else words[-1]
        found = complete_keys(words[0], word)
    else:
        found = []
    print(("\n" if shell == "fish" else " ").join(found))


def shell_completion(args: Sequence[str], commands: Sequence[str], flags: Sequence[str]) -> int:
    """``automl [COMMAND] --shell-completion install|uninstall|query=SHELL``."""
    action, shell = _parse(args)
    if action == "query":
        query(shell, commands, flags)
    else:
        _hydra(["-sc", f"{action}={shell}"])
    return 0
