"""Every config check, candidates_dir's files included, runs before any data is read (issue 15)."""
from __future__ import annotations

from conftest import automl_cli


def test_a_bad_candidates_dir_fails_before_the_data_is_read(tmp_path):
    cands = tmp_path / "candidates"
    cands.mkdir()
    (cands / "dpp0-xgboost.yaml").write_text("algorithm: xgboost\nspeed: fast\n")  # unknown key
    missing = tmp_path / "no_such_table.csv"  # reading it would be the first error otherwise
    out = tmp_path / "run"
    r = automl_cli("fit", f"data.path={missing}", "data.target=y", f"candidates_dir={cands}",
                   f"output_dir={out}", timeout=120)
    assert r.returncode == 2, r.stderr[-1500:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert "candidates_dir" in lines[-1] and "unknown key" in lines[-1], lines[-3:]
    assert not out.exists()  # nothing written for a config that cannot run
