"""One config package: the schemas of predict, serve and monitor, their key=value parsing and the
checks that run before any data is read (issue 15, point 4)."""
import re

import pytest
from omegaconf import OmegaConf

from automl.cli import main
from automl.config import (MonitorConfig, PredictConfig, ServeConfig, command_keys, compose_command, compose_config,
                           compose_for)
from automl.config.keys import flat_values
from automl.errors import ConfigError

# The key sets the commands spelled by hand before the schemas (automl/cli.py PREDICT_KEYS,
# automl/serving/server.py SERVE_KEYS, automl/monitor/command.py MONITOR_KEYS): same keys, same defaults.
OLD_KEYS = {
    "predict": {"run_dir": None, "input": None, "output": None, "overwrite": False, "trial": None,
                "allow_pickle": False, "predict.backend": "local", "predict.keep_columns": [],
                "predict.chunk_rows": 100_000, "ray.address": None, "verbose": False},
    "serve": {"run_dir": None, "trial": None, "host": "127.0.0.1", "port": 8080, "api_key": None,
              "max_body_bytes": 6 * 1024 * 1024, "response_keys": None, "capture.enabled": False,
              "capture.sampling_percentage": 100.0, "capture.destination": None, "capture.max_records": 1000,
              "capture.rotate_s": 60.0, "serve.backend": "uvicorn", "serve.replicas": 1, "serve.max_batch_rows": 256,
              "ray.address": None, "verbose": False, "api_key_file": None, "serve.body_timeout_s": 30.0,
              "capture.max_file_mb": 16.0, "capture.max_total_mb": 1024.0, "allow_pickle": False},
    "monitor": {"run_dir": None, "data": None, "output": None, "overwrite": False, "constraints": None,
                "alert.webhook": None, "watch": False, "interval_s": 60.0, "verbose": False,
                "ground_truth": None,  # added with model-quality monitoring (issue 19)
                "predict.backend": "local", "ray.address": None},  # added with streamed monitoring (issue 20)
}
REQUIRED = {"predict": ["run_dir=r", "input=in.csv", "output=out.csv"], "serve": ["run_dir=r"],
            "monitor": ["run_dir=r", "data=batch.csv"]}
SCHEMAS = {"predict": PredictConfig, "serve": ServeConfig, "monitor": MonitorConfig}


@pytest.mark.parametrize("command", sorted(OLD_KEYS))
def test_each_command_schema_round_trips_its_defaults(command):
    assert command_keys(command) == OLD_KEYS[command]
    schema = SCHEMAS[command]
    assert OmegaConf.to_object(OmegaConf.structured(schema)) == schema()  # the schema composes as is
    parsed = flat_values(compose_for(command, REQUIRED[command]))
    given = dict(a.split("=", 1) for a in REQUIRED[command])
    assert parsed == {**OLD_KEYS[command], **given}


@pytest.mark.parametrize("command, arg, closest", [
    ("predict", "predict.chunk_row=5", "predict.chunk_rows"),
    ("predict", "keep_columns=[id]", "predict.keep_columns"),
    ("serve", "capture.enable=true", "capture.enabled"),
    ("serve", "api-key=k", "api_key"),
    ("monitor", "interval=5", "interval_s"),
    ("monitor", "alert.webhok=http://h", "alert.webhook"),
])
def test_an_unknown_key_names_the_closest_valid_key(command, arg, closest):
    with pytest.raises(ConfigError) as err:
        compose_command(command, [*REQUIRED[command], arg])
    text = str(err.value)
    key = arg.split("=")[0]
    assert text.startswith(f"unknown key '{key}' for `automl {command}` (did you mean '{closest}'?); valid keys: ")
    assert text.endswith(", ".join(command_keys(command)))  # then every valid key


def test_an_unknown_fit_key_names_the_closest_one():
    with pytest.raises(ConfigError, match=re.escape("unknown key 'budget.max_trails' for `automl fit` "
                                                    "(did you mean 'budget.max_trials'?)")):
        compose_config(["budget.max_trails=3"])
    with pytest.raises(ConfigError, match=re.escape("(did you mean 'processing.scale'?)")):
        compose_config(["candidates.dpp0-xgboost.processing.scal=none"])


@pytest.mark.parametrize("command, args, line", [
    ("predict", [*REQUIRED["predict"], "predict.chunk_rows=many"], "predict.chunk_rows must be an integer; got 'many'"),
    ("predict", [*REQUIRED["predict"], "overwrite=maybe"], "overwrite must be true or false; got 'maybe'"),
    ("serve", ["run_dir=r", "port=eighty"], "port must be an integer; got 'eighty'"),
    ("serve", ["run_dir=r", "capture.sampling_percentage=[1,2]"],
     "capture.sampling_percentage must be a number; got [1, 2]"),
    ("monitor", [*REQUIRED["monitor"], "interval_s=soon"], "interval_s must be a number; got 'soon'"),
    ("fit", ["budget.max_trials=many"], "budget.max_trials must be an integer; got 'many'"),
])
def test_a_type_error_is_one_line_with_exit_2_through_the_cli(capsys, command, args, line):
    assert main([command, *args]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"automl {command}: error: {line}"]


def test_ids_keys_and_paths_keep_the_exact_text_and_other_values_are_typed():
    cfg = compose_command("predict", [*REQUIRED["predict"], "trial=0012", "predict.keep_columns=id",
                                      "predict.chunk_rows=25", "overwrite=yes"])
    assert cfg.trial == "0012" and cfg.predict.keep_columns == ["id"] and cfg.predict.chunk_rows == 25
    assert cfg.overwrite is True
    cfg = compose_command("serve", ["run_dir=r", "api_key=007", "port=0", "response_keys=[labels]"])
    assert cfg.api_key == "007" and cfg.port == 0 and cfg.response_keys == ["labels"]
    cfg = compose_command("monitor", [*REQUIRED["monitor"], "watch=true", "interval_s=5", "output=null"])
    assert cfg.watch is True and cfg.interval_s == 5.0 and cfg.output is None  # monitor's values are all typed


@pytest.mark.parametrize("command, args, words", [
    ("predict", ["run_dir=r"], "`automl predict` needs input=..."),
    ("predict", [*REQUIRED["predict"], "predict.backend=spark"], "predict.backend must be one of local, ray"),
    ("serve", ["run_dir=r", "capture.enabled=true"], "capture.enabled=true needs capture.destination=URL"),
    ("serve", ["run_dir=r", "capture.enabled=true", "capture.destination=/tmp/c", "capture.sampling_percentage=150"],
     "capture.sampling_percentage must be a number from 0 to 100; got 150.0"),
    ("monitor", [*REQUIRED["monitor"], "alert.webhook=ftp://h/x"], "alert.webhook must be an http:// or https://"),
    ("monitor", [*REQUIRED["monitor"], "interval_s=0"], "interval_s must be a positive number of seconds"),
])
def test_value_checks_run_when_the_config_is_composed(command, args, words):
    with pytest.raises(ConfigError, match=re.escape(words)):
        compose_for(command, args)


def test_candidates_and_search_spaces_are_checked_before_any_data_is_read(tmp_path):
    missing = f"data.path={tmp_path / 'not-there.csv'}"  # never read: the config is refused first
    with pytest.raises(ConfigError, match=re.escape("candidates.dpp4-extra_trees.processing: scale='bogus' is unknown")):
        compose_config([missing, "candidates.dpp4-extra_trees.processing.scale=bogus"])
    with pytest.raises(ConfigError, match="search space 'nope' not found"):
        compose_config([missing, "candidates.dpp0-xgboost.search_space=nope"])
    with pytest.raises(ConfigError, match="has low > high"):
        compose_config([missing], values={"candidates": {"mine": {"algorithm": "linear", "space": {
            "params": {"model.C": {"type": "float", "low": 2.0, "high": 1.0}}}}}})
    with pytest.raises(ConfigError, match="problem_types has unknown type"):
        compose_config([missing, "candidates.dpp1-linear.problem_types=[ranking]"])
    # a disabled candidate, and one for another (explicit) problem type, are never built: not checked further
    compose_config([missing, "candidates.dpp0-xgboost.search_space=nope", "candidates.dpp0-xgboost.enabled=false"])
    compose_config([missing, "problem_type=regression", "candidates.dpp0-xgboost.search_space=nope",
                    "candidates.dpp0-xgboost.problem_types=[binary]"])
    assert main(["fit", missing, "data.target=y", "candidates.dpp4-extra_trees.processing.scale=bogus",
                 f"output_dir={tmp_path / 'out'}"]) == 2
    assert not (tmp_path / "out").exists()
