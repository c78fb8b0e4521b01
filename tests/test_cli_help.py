"""`automl` behaves like a Hydra app (issue 17, point 1): --help from the schema, --cfg job,
--version, shell completion, and `+key=value` checked against the schema."""
from __future__ import annotations

import os
import re
import subprocess
from importlib.metadata import version

import pytest
import yaml
from omegaconf import OmegaConf

from automl.cli import main
from automl.config import compose_config
from automl.config.commands import SCHEMAS
from automl.config.fit import Config
from automl.config.help import field_docs, key_docs
from conftest import VENV_BIN, automl_cli

REQUIRED = {"predict": ["run_dir=r", "input=in.csv", "output=out.csv"], "serve": ["run_dir=r"],
            "monitor": ["run_dir=r", "data=batch.csv"]}


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def key_line(text: str, key: str) -> str:
    """The line of ``key`` in a help text, joined with its doc when that went to the next line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"  {key}: "):
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            return line + (" " + nxt.strip() if nxt.startswith(" " * 10) else "")
    raise AssertionError(f"{key} is not in the help:\n{text}")


@pytest.mark.parametrize("schema", [Config, *SCHEMAS.values()], ids=["fit", *SCHEMAS])
def test_every_key_of_every_schema_has_a_one_line_doc_in_its_dataclass(schema):
    undocumented = [k.key for k in key_docs(schema) if not k.doc]
    assert not undocumented, f"add a comment to these fields of {schema.__name__}: {undocumented}"


def test_docs_come_from_the_field_comments_at_the_end_of_the_line_or_above_it():
    from automl.config.fit import BudgetConfig, ValidationConfig

    docs = field_docs(BudgetConfig)
    assert docs["max_trials"] == "most trials the search runs"  # at the end of the line
    assert docs["trial_time_limit_s"].startswith("None: derived from the total")  # the line above
    assert field_docs(ValidationConfig)["max_train_rows"].startswith("Trials fit on at most")  # two lines above


def test_fit_help_lists_the_groups_and_every_key_with_its_default_and_doc(capsys):
    code, out, err = run_cli(capsys, "fit", "--help")
    assert code == 0 and err == ""
    assert out.startswith("usage: automl fit [-m] [--cfg job]")
    assert re.search(r"^  data: digits +options: .*digits", out, re.M)
    assert re.search(r"^  candidates: default +options: .*default", out, re.M)
    assert "dpp0-xgboost (xgboost)" in out  # the composed candidates
    for k in key_docs(Config):
        assert f"  {k.key}: {k.type} = " in out, k.key
    # defaults as composed (conf/ on top of the schema), each with the doc of its field
    assert "= sklearn:digits" in key_line(out, "data.path") and "table to learn from" in key_line(out, "data.path")
    assert "float = 120.0" in key_line(out, "budget.time_limit_s")
    assert "wall-clock limit of the whole run" in key_line(out, "budget.time_limit_s")
    assert "str = auto" in key_line(out, "search.executor")
    assert "int = 1" in key_line(out, "sweep.parallel") and "sweep points run at once" in key_line(out, "sweep.parallel")
    assert "str = ???" in key_line(out, "candidates.<name>.algorithm")
    for option in ("--cfg job", "-m, --multirun", "--version", "--shell-completion"):
        assert option in out


def test_fit_help_shows_the_defaults_composed_with_the_overrides_given(capsys):
    code, out, _ = run_cli(capsys, "fit", "budget.time_limit_s=30", "--help")
    assert code == 0 and "float = 30.0" in key_line(out, "budget.time_limit_s")


@pytest.mark.parametrize("command, key, default, doc", [
    ("predict", "predict.chunk_rows", "int = 100000", "rows per chunk"),
    ("serve", "port", "int = 8080", "port to listen on"),
    ("serve", "capture.enabled", "bool = false", "sample requests"),
    ("monitor", "interval_s", "float = 60.0", "seconds between polls"),
])
def test_each_command_has_help_with_every_key(capsys, command, key, default, doc):
    code, out, err = run_cli(capsys, command, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: automl {command} key=value")
    line = key_line(out, key)
    assert default in line and doc in line
    for k in key_docs(SCHEMAS[command]):
        assert f"  {k.key}: " in out


def test_the_console_script_answers_help_and_version():
    res = automl_cli("predict", "--help", timeout=120)
    assert res.returncode == 0 and "run_dir: str = null" in res.stdout and "(required)" in res.stdout
    res = automl_cli("--version", timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == f"automl {version('automl')}"


def test_version_works_before_or_after_a_command(capsys):
    assert run_cli(capsys, "fit", "--version")[:2] == (0, f"automl {version('automl')}\n")
    assert run_cli(capsys, "--version")[:2] == (0, f"automl {version('automl')}\n")


def test_cfg_job_prints_the_composed_config_as_yaml_that_round_trips_and_runs_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run would write outputs/ here
    args = ["budget.time_limit_s=7", "~candidates.dpp2-mlp", "+candidates.mine.algorithm=linear", "seed=3"]
    code, out, err = run_cli(capsys, "fit", "--cfg", "job", *args)
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown == OmegaConf.to_container(compose_config(args), resolve=True)
    assert shown["budget"]["time_limit_s"] == 7 and "dpp2-mlp" not in shown["candidates"]
    assert shown["candidates"]["mine"]["algorithm"] == "linear"
    again = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(out))  # the schema takes it back
    assert OmegaConf.to_container(again) == shown
    assert list(tmp_path.iterdir()) == []  # no run folder, no outputs/
    code, out, _ = run_cli(capsys, "predict", "--cfg=job", *REQUIRED["predict"], "predict.chunk_rows=5")
    assert code == 0 and yaml.safe_load(out)["predict"]["chunk_rows"] == 5


def test_cfg_job_masks_secrets(capsys):
    code, out, _ = run_cli(capsys, "serve", "--cfg", "job", "run_dir=r", "api_key=s3cr3t-value")
    assert code == 0 and "s3cr3t-value" not in out and yaml.safe_load(out)["api_key"] == "***"


@pytest.mark.parametrize("args, words", [
    (["+budget.time_limt_s=20"], "unknown key 'budget.time_limt_s' for `automl fit` (did you mean 'budget.time_limit_s'?)"),
    (["++budget.time_limt_s=20"], "(did you mean 'budget.time_limit_s'?)"),
    (["+seeds=3"], "(did you mean 'seed'?)"),
    (["+candidates.my_xgb.algoritm=xgboost"], "(did you mean 'algorithm'?)"),
    (["+budget.time_limit_s=20"], "budget.time_limit_s is already in the config; set it with budget.time_limit_s=VALUE"),
    (["--info"], "unknown option '--info' for `automl fit`"),
    (["--cfg", "hydra"], "--cfg takes 'job'"),
    (["--cfg", "job", "seed=1,2"], "seed=1,2 is a sweep (several values); sweeps run with -m"),
    (["candidates.mine.algorithm=linear"], "candidate 'mine' is not in the config; add it with a '+'"),
    (["+candidates.mine.max_rows=5"], "candidate 'mine' added with '+' needs an algorithm"),
])
def test_a_bad_added_key_or_option_is_one_line_with_exit_2(capsys, args, words):
    code, out, err = run_cli(capsys, "fit", *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err, err


def test_a_candidate_is_added_from_the_shell_with_the_schema_defaults():
    cfg = compose_config(["+candidates.my_xgb.algorithm=xgboost", "+candidates.my_xgb.processing.scale=standard"])
    mine = cfg.candidates.my_xgb
    assert mine.algorithm == "xgboost" and mine.enabled is True and mine.processing.scale == "standard"
    assert mine.processing.categorical == "onehot"  # the schema's default
    cfg = compose_config(["+candidates.my_lin={algorithm: linear, max_rows: 500}"])
    assert cfg.candidates.my_lin.algorithm == "linear" and cfg.candidates.my_lin.max_rows == 500


def test_shell_completion_completes_commands_fit_keys_and_command_keys(capsys, monkeypatch):
    for line, expected in [("automl pre", "predict"), ("automl fit budget.time", "budget.time_limit_s="),
                           ("automl fit data=", "data=digits"), ("automl serve capture.ena", "capture.enabled=")]:
        monkeypatch.setenv("COMP_LINE", line)
        code, out, _ = run_cli(capsys, "--shell-completion", "query=bash")
        assert code == 0 and expected in out.split(), (line, out)
    code, out, err = run_cli(capsys, "--shell-completion", "install=tcsh")
    assert code == 2 and "install=SHELL" in err


def test_hydras_bash_completion_script_completes_automl_in_a_real_bash():
    script = ('eval "$(automl --shell-completion install=bash)"\n'
              'COMP_LINE="automl fit search.exec"; COMP_POINT=${#COMP_LINE}; COMP_CWORD=2\n'
              'hydra_bash_completion; echo "${COMPREPLY[@]}"\n')
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["search.executor="], done.stdout + done.stderr
