"""Reading every supported format from local paths, memory:// and a real HTTP server."""
import gzip
import http.server
import threading
from functools import partial

import fsspec
import pandas as pd
import pytest

from automl.data.io import read_table, write_table
from automl.errors import DataError

FRAME = pd.DataFrame({"a": [1.5, 2.5, 3.5, 4.5], "b": ["x", "y", "x", "z"], "y": [0, 1, 0, 1]})


def _check(df):
    assert list(df.columns) == ["a", "b", "y"] and len(df) == 4
    assert df["a"].tolist() == [1.5, 2.5, 3.5, 4.5] and df["b"].tolist() == ["x", "y", "x", "z"]


@pytest.mark.parametrize("name, writer", [
    ("d.csv", lambda df, p: df.to_csv(p, index=False)),
    ("d.csv.gz", lambda df, p: df.to_csv(p, index=False, compression="gzip")),
    ("d.tsv", lambda df, p: df.to_csv(p, index=False, sep="\t")),
    ("d.txt", lambda df, p: df.to_csv(p, index=False, sep="|")),
    ("semi.txt", lambda df, p: p.write_text(df.to_csv(index=False, sep=";").replace("1.5", "1,5")
                                            .replace("2.5", "2,5").replace("3.5", "3,5").replace("4.5", "4,5"))),
    ("d.xlsx", lambda df, p: df.to_excel(p, index=False)),
    ("d.parquet", lambda df, p: df.to_parquet(p, index=False)),
    ("d.jsonl", lambda df, p: df.to_json(p, orient="records", lines=True)),
    ("d.tsv.gz", lambda df, p: p.write_bytes(gzip.compress(df.to_csv(index=False, sep="\t").encode()))),
])
def test_formats(tmp_path, name, writer):
    writer(FRAME, tmp_path / name)
    _check(read_table(str(tmp_path / name)))


def test_memory_url_round_trip():
    write_table(FRAME, "memory://bucket/data.parquet")
    _check(read_table("memory://bucket/data.parquet"))
    with fsspec.open("memory://bucket/plain.csv", "wb") as fh:
        fh.write(FRAME.to_csv(index=False).encode())
    _check(read_table("memory://bucket/plain.csv"))


def test_http_url(tmp_path):
    FRAME.to_csv(tmp_path / "served.csv", index=False)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _check(read_table(f"http://127.0.0.1:{server.server_address[1]}/served.csv"))
    finally:
        server.shutdown()


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(DataError, match="data.test_path: file not found"):
        read_table(str(tmp_path / "nope.csv"), what="data.test_path")
