"""Secrets never leave the process in clear: secret-named storage options and URL passwords are
masked in config.yaml, logs, error lines, summary.json, the report and /metadata."""
from __future__ import annotations

import base64
import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from automl.config import compose_config
from automl.redact import is_secret_name, redact_text, redacted_yaml, secret_values
from conftest import VENV_BIN, automl_cli, free_port, make_binary_frame

SECRET_NAMES = ["key", "secret", "token", "password", "pw", "passwd", "pwd", "credential", "credentials",
                "connection_string", "connectionString", "ConnectionString", "conn_str", "sas", "sas_token",
                "sasToken", "SAS", "signature", "aws_secret_access_key", "aws_session_token", "AccountKey",
                "account_key", "api_key", "APIKey", "apikey", "client_secret", "private_key", "auth",
                "Authorization", "bearer_token", "passphrase"]
PLAIN_NAMES = ["path", "target", "max_categories", "endpoint_url", "region_name", "anon", "use_ssl",
               "monkey", "tokenizer", "keyboard", "passes", "sparse", "signal", "page"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_like_names_are_secret(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_plain_names_are_not_secret(name):
    assert not is_secret_name(name)


def test_no_config_key_of_automl_is_taken_for_a_secret():
    from omegaconf import OmegaConf

    names = set()

    def walk(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                names.add(str(k))
                walk(v)
    walk(OmegaConf.to_container(compose_config([]), resolve=True))
    assert not [n for n in names if is_secret_name(n)]


def test_config_yaml_masks_connection_string_pw_and_camel_case_names():
    cfg = compose_config(["+data.storage_options.connection_string='DefaultEndpointsProtocol=https;AccountKey=AK-77'",
                          "+data.storage_options.pw=pw-value-1", "+data.storage_options.sasToken=sv-2024-sig",
                          "+data.storage_options.client_kwargs.aws_session_token=sess-tok-9",
                          "data.path=https://bob:url-pass-3@example.com/d.csv"])
    text = redacted_yaml(cfg)
    for secret in ("AK-77", "pw-value-1", "sv-2024-sig", "sess-tok-9", "url-pass-3"):
        assert secret not in text, text
    assert "endpoint_url" not in text and "bob:***@example.com" in text


def test_url_passwords_are_registered_as_secrets():
    found = secret_values({"data": {"path": "ftp://ann:only-in-url-5@host/x.csv", "n": 3}})
    assert "only-in-url-5" in found
    assert redact_text("https://:tok-only-7@host/a") == "https://:***@host/a"


# ----------------------------------------------------------------------------- acceptance
USER = "alice"
URL_PASSWORD = "UrlPass-9f3kq27"
OPTIONS = {  # every secret-like storage option, each with its own value; none is used by the local disk
    "key": "Key-AKIA7QX2ZZ", "secret": "Secret-7c1b0e9a", "token": "Token-5e8d4471", "password": "Password-3a9f",
    "pw": "Pw-c61f20", "passwd": "Passwd-0b7e55", "credential": "Credential-19ad2c",
    "connection_string": "AccountName=acct;AccountKey=ConnKey-88e1f0", "sas": "Sas-sv2024sig11",
    "signature": "Signature-4d4d21", "aws_secret_access_key": "AwsSecret-2b6c",
    "sas_token": "SasToken-se2030", "AccountKey": "AcctKey-aa77b3", "sasToken": "SasTokenCamel-6f1e",
    "api_key": "ApiKey-91c0d8", "client_kwargs.aws_session_token": "SessionToken-e02c7f",
}
SECRETS = [v.split("AccountKey=")[-1] for v in OPTIONS.values()] + [URL_PASSWORD]


def _basic_auth_server(folder: Path):
    """A real HTTP server on a loopback port that serves ``folder`` only with alice's password."""
    want = "Basic " + base64.b64encode(f"{USER}:{URL_PASSWORD}".encode()).decode()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def _allowed(self) -> bool:
            if self.headers.get("Authorization") == want:
                return True
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="data"')
            self.end_headers()
            return False

        def do_GET(self):
            if self._allowed():
                super().do_GET()

        def do_HEAD(self):
            if self._allowed():
                super().do_HEAD()

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _hits(text: str) -> list:
    return [s for s in SECRETS if s in text]


@pytest.mark.slow
def test_secrets_appear_nowhere_in_the_run_folder_logs_errors_or_metadata(tmp_path):
    data = tmp_path / "served"
    data.mkdir()
    make_binary_frame(120).to_csv(data / "train.csv", index=False)
    srv = _basic_auth_server(data)
    base = f"http://{USER}:{URL_PASSWORD}@127.0.0.1:{srv.server_address[1]}"
    opts = [f"+data.storage_options.{k}='{v}'" for k, v in OPTIONS.items()]
    try:
        # simplecache:: lets the run folder (local disk) and the data (HTTP) share storage options
        bad = automl_cli("fit", f"data.path=simplecache::{base}/missing.csv", "data.target=y",
                         f"output_dir={tmp_path}/bad", *opts, timeout=120)
        assert bad.returncode == 2 and "missing.csv" in bad.stderr and not _hits(bad.stdout + bad.stderr), bad.stderr
        res = automl_cli("fit", f"data.path=simplecache::{base}/train.csv", "data.target=y",
                         f"output_dir={tmp_path}/run", "budget.time_limit_s=40", "budget.max_trials=2",
                         "search.executor=local", "search.ensemble=false", "validation.rerank_top=0", *opts,
                         timeout=300)
    finally:
        srv.shutdown()
    assert res.returncode == 0, res.stderr
    assert not _hits(res.stdout + res.stderr)
    run = tmp_path / "run"
    assert (run / "config.yaml").exists() and (run / "summary.json").exists() and (run / "report.html").exists()
    leaks = {str(p): _hits(p.read_bytes().decode("latin-1")) for p in run.rglob("*") if p.is_file()}
    assert not {p: h for p, h in leaks.items() if h}
    assert "connection_string: '***'" in (run / "config.yaml").read_text()

    port = free_port()
    exe = VENV_BIN / "automl"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "automl"]
    proc = subprocess.Popen(cmd + ["serve", f"run_dir={run}", f"port={port}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        from test_serving import wait_ping

        wait_ping(f"http://127.0.0.1:{port}", proc)
        metadata = requests.get(f"http://127.0.0.1:{port}/metadata", timeout=10)
        assert metadata.status_code == 200 and not _hits(metadata.text)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert not _hits(out + err)
