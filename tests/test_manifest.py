"""Safe artifacts: every run folder carries manifest.json (sha256 of each file); loading a model
checks it and refuses a tampered file. Secrets are masked in saved configs and logs."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
from pathlib import Path

import pytest

import automl
from automl.errors import ArtifactError
from automl.manifest import MANIFEST_FILE, read_manifest, verify_run, write_manifest
from automl.redact import RedactingFilter, redact, redact_text, redacted_yaml, register_secrets
from conftest import automl_cli


class _Payload:
    """A pickle that runs code when loaded: what a tampered model file could do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("pwned",))


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, dst)
    return dst


def test_manifest_lists_every_file_with_its_digest(tiny_run):
    run_dir = Path(tiny_run.run_dir)
    manifest = json.loads((run_dir / MANIFEST_FILE).read_text())
    assert manifest["algorithm"] == "sha256"
    for name in ("model.skops", "summary.json", "leaderboard.csv", "config.yaml"):
        entry = manifest["files"][name]
        assert entry["sha256"] == hashlib.sha256((run_dir / name).read_bytes()).hexdigest()
    assert any(k.startswith("trials/") and k.endswith("result.json") for k in manifest["files"])
    report = verify_run(str(run_dir))
    assert not report["modified"] and not report["missing"] and "model.skops" in report["ok"]


def test_tampered_model_is_refused_before_unpickling(run_copy, tmp_path):
    marker = tmp_path / "side_effect"
    (run_copy / "model.skops").write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ArtifactError, match="model.skops .* sha256 check"):
        automl.load(str(run_copy)).model
    assert not marker.exists()  # the payload never ran
    assert verify_run(str(run_copy))["modified"] == ["model.skops"]


@pytest.mark.slow
def test_cli_predict_refuses_a_tampered_model(run_copy, tmp_path, binary_frame):
    binary_frame.drop(columns=["y"]).head(5).to_csv(tmp_path / "in.csv", index=False)
    data = bytearray((run_copy / "model.skops").read_bytes())
    data[-2] ^= 0xFF  # one flipped byte
    (run_copy / "model.skops").write_bytes(bytes(data))
    res = automl_cli("predict", f"run_dir={run_copy}", f"input={tmp_path}/in.csv", f"output={tmp_path}/out.csv")
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert "model.skops" in line and "sha256" in line and not (tmp_path / "out.csv").exists()


def test_missing_manifest_or_unlisted_model_is_refused(run_copy):
    manifest = read_manifest(str(run_copy))
    del manifest["files"]["model.skops"]
    (run_copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not listed"):
        automl.load(str(run_copy)).model
    os.remove(run_copy / MANIFEST_FILE)
    with pytest.raises(ArtifactError, match="no manifest.json"):
        automl.load(str(run_copy)).model
    write_manifest(str(run_copy))  # an operator who trusts the folder can re-sign it
    assert automl.load(str(run_copy)).model is not None


def test_manifest_works_on_s3(s3_bucket, run_copy):
    fs = s3_bucket["fs"]
    url = f"s3://{s3_bucket['bucket']}/run"
    fs.put(str(run_copy), url, recursive=True)
    assert automl.load(url).model is not None
    fs.pipe(f"{url}/model.skops", b"\x80\x04N.")  # a different file
    with pytest.raises(ArtifactError, match="sha256"):
        automl.load(url).model


def test_secrets_are_masked_in_configs_and_logs():
    from automl.config import compose_config

    cfg = compose_config(["+data.storage_options.key=AKIAEXAMPLEKEY", "+data.storage_options.secret=s3cr3t-value",
                          "data.path='s3://alice:hunter2@bucket/data.csv?X-Amz-Signature=deadbeef'"])
    text = redacted_yaml(cfg)
    for secret in ("AKIAEXAMPLEKEY", "s3cr3t-value", "hunter2", "deadbeef"):
        assert secret not in text
    assert "target: target" in text  # ordinary keys are untouched
    record = logging.LogRecord("automl.x", logging.INFO, __file__, 1, "using %s", ("s3cr3t-value",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "using ***"
    register_secrets(["tok-123456"])
    assert redact_text("Authorization: tok-123456") == "Authorization: ***"
    assert redact({"api_key": "x1", "nested": {"password": "p", "n": 3}, "max_categories": 30}) == {
        "api_key": "***", "nested": {"password": "***", "n": 3}, "max_categories": 30}


def test_serve_refuses_a_tampered_model(run_copy):
    from automl.serving.server import load_endpoint, serve_options

    (run_copy / "model.skops").write_bytes((run_copy / "model.skops").read_bytes() + b"\x00")
    with pytest.raises(ArtifactError, match="sha256"):
        load_endpoint(serve_options([f"run_dir={run_copy}"]))
