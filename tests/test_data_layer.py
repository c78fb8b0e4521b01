"""One data layer: fit, batch predict and monitor read a file into the same frame (one encoding
detector, one delimiter sniffer, one compression rule) and list a folder or prefix alike."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
import pandas as pd
import pytest

from automl.artifacts import temp_name
from automl.data.io import read_table
from automl.errors import DataError
from automl.monitor.sources import list_data_files, read_batch
from automl.predict import batch_predict, iter_chunks, list_inputs
from conftest import make_binary_frame

ROWS = "".join(f"{i},plain {i},{i * 0.5}\n" for i in range(8))


def _ascii_then_latin1(p: Path) -> None:
    """Over 64 KiB of ASCII rows, then one latin-1 row: only a look at the whole file finds it."""
    body = "".join(f"{i},row {i:06d} plain ascii text\n" for i in range(3000))
    p.write_bytes(("id,note\n" + body).encode() + "3000,café crème\n".encode("latin-1"))


def _gzip_latin1_after_a_mib(p: Path) -> None:
    """Over 1 MiB of ASCII, then latin-1, compressed: the chunked reader streams its encoding pass."""
    body = "".join(f"{i},row {i:06d} plain ascii text\n" for i in range(40000))
    p.write_bytes(gzip.compress(("id,note\n" + body).encode() + "40000,déjà vu\n".encode("latin-1")))


def _semicolon_cp1252_gz(p: Path) -> None:
    text = "id;note;price\n" + "".join(f"{i};prix {i} €;{i},25\n" for i in range(8))
    p.write_bytes(gzip.compress(text.encode("cp1252")))


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"id": range(8), "note": [f"plain {i}" for i in range(8)], "v": [i * 0.5 for i in range(8)]})


def _nested_jsonl(p: Path) -> None:
    rows = [{"id": i, "tags": [f"t{i}", "u"], "meta": {"k": i}} for i in range(6)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))


# (file name, writer, a column and a value the frame must hold, or None)
CASES = {
    # predict used to sniff the encoding on a sample minus its last 4 bytes: UTF-8, then failed
    "cp1252 byte in the last 4 bytes": ("a.csv", lambda p: p.write_bytes(b"id,note\n1,plain\n2,caf\xe9\n"),
                                        ("note", "café")),
    # predict sniffed the first 64 KiB only (UTF-8 there), fit decodes the whole file (latin-1 here)
    "latin-1 after the first 64 KiB": ("a.csv", _ascii_then_latin1, ("note", "café crème")),
    "latin-1 after the first MiB, gzip": ("a.csv.gz", _gzip_latin1_after_a_mib, ("note", "déjà vu")),
    # cp1252 leaves 0x81, 0x8D, 0x8F, 0x90, 0x9D undefined: fit falls back to latin-1, predict did not
    "latin-1 with a byte cp1252 lacks": ("a.csv", lambda p: p.write_bytes(b"id,code\n1,A\x81B\n2,\xe9t\xe9\n"),
                                         ("code", "été")),
    # predict knew no UTF-16 BOM (it read the file as cp1252)
    "utf-16 with BOM": ("a.csv", lambda p: p.write_bytes(("id,note,v\n" + ROWS).encode("utf-16")),
                        ("note", "plain 3")),
    "utf-8 with BOM": ("a.csv", lambda p: p.write_bytes(("\ufeffid,note,v\n" + ROWS).encode()), ("note", "plain 3")),
    "semicolon, decimal comma, cp1252, gzip": ("a.csv.gz", _semicolon_cp1252_gz, ("note", "prix 2 €")),
    "tab-separated .tsv.gz": ("a.tsv.gz", lambda p: p.write_bytes(gzip.compress(("id\tnote\tv\n" + ROWS)
                                                                               .replace(",", "\t").encode())),
                              ("note", "plain 1")),
    "pipe-separated .txt": ("a.txt", lambda p: p.write_text("id|note|v\n" + ROWS.replace(",", "|")),
                            ("note", "plain 1")),
    # fit strips spaces around header names; predict kept them (and then missed the columns)
    "spaces around header names": ("a.csv", lambda p: p.write_text(" id , note ,v \n" + ROWS), ("note", "plain 1")),
    # fit stores nested values as JSON text; predict passed lists and dicts on
    "json lines with nested values": ("a.jsonl", _nested_jsonl, ("tags", '["t2", "u"]')),
    "parquet": ("a.parquet", lambda p: _frame().to_parquet(p), ("note", "plain 2")),
    # predict opened a Parquet file without its compression suffix's codec
    "gzip-compressed parquet": ("a.parquet.gz", lambda p: p.write_bytes(gzip.compress(_frame().to_parquet())),
                                ("note", "plain 2")),
    "missing-value markers": ("a.csv", lambda p: p.write_text("id,note,v\n1,NA,2\n2,null,\n3,x,n/a\n4,#N/A,1\n"),
                              None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fit_predict_and_monitor_read_a_file_into_the_same_frame(tmp_path, case):
    name, write, expect = CASES[case]
    path = tmp_path / name
    write(path)
    url = str(path)
    at_fit = read_table(url)
    at_predict = pd.concat(list(iter_chunks(url, 1000)), ignore_index=True)
    at_monitor = read_batch([url])
    pd.testing.assert_frame_equal(at_predict, at_fit)
    pd.testing.assert_frame_equal(at_monitor, at_fit)
    if expect is not None:
        col, value = expect
        assert value in set(at_fit[col]), sorted(map(str, set(at_fit[col])))[:5]


def test_small_chunks_add_up_to_the_whole_file(tmp_path):
    (tmp_path / "a.csv").write_bytes(("id,note,v\n" + ROWS).encode("cp1252") + "8,fin é,4.0\n".encode("cp1252"))
    chunks = list(iter_chunks(str(tmp_path / "a.csv"), 3))
    assert [len(c) for c in chunks] == [3, 3, 3]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), read_table(str(tmp_path / "a.csv")))


@pytest.mark.parametrize("content, words", [
    (b"x,x,y\n1,2,3\n", "duplicate column name(s) in the header: x"),
    (bytes(range(256)) * 20, "does not look like a text table"),
    (b"", "is empty; give a file with a header row and data rows"),
], ids=["duplicate header names", "binary bytes", "empty file"])
def test_predict_refuses_what_fit_refuses_with_the_same_words(tmp_path, content, words):
    (tmp_path / "a.csv").write_bytes(content)
    url = str(tmp_path / "a.csv")
    with pytest.raises(DataError) as at_fit:
        read_table(url, what="input")
    with pytest.raises(DataError) as at_predict:
        list(iter_chunks(url, 10))
    assert words in str(at_fit.value)
    assert str(at_predict.value) == str(at_fit.value)


def _tree(root: Path) -> None:
    for rel in ("a.csv", "b.csv.gz", "sub/c.parquet", "day-1.csv", "day-2/d.csv",
                ".hidden.csv", "_SUCCESS", "_part.csv", "sub/.x.csv", temp_name("e.csv")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x\n1\n")


@pytest.mark.parametrize("where, expected", [
    ("", ["a.csv", "b.csv.gz", "day-1.csv", "day-2/d.csv", "sub/c.parquet"]),
    ("day-", ["day-1.csv", "day-2/d.csv"]),  # a prefix: matching files, and the files of matching folders
])
def test_predict_and_monitor_list_a_folder_or_prefix_alike(tmp_path, where, expected):
    _tree(tmp_path)
    url = str(tmp_path / where) if where else str(tmp_path)
    want = [str(tmp_path / e) for e in expected]
    assert list_inputs(url) == want
    assert list_data_files(url) == want


def test_listing_on_a_url_keeps_the_url_form_and_skips_hidden_and_temp_names():
    import fsspec

    fs = fsspec.filesystem("memory")
    for rel in ("a.csv", "sub/b.jsonl", ".c.csv", temp_name("d.csv"), "_SUCCESS"):
        fs.pipe(f"/listing/{rel}", b"x\n1\n")
    want = ["memory:///listing/a.csv", "memory:///listing/sub/b.jsonl"]
    assert list_inputs("memory:///listing/") == want
    assert list_data_files("memory:///listing/") == want


def test_an_empty_folder_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(DataError, match="input: no files at"):
        list_inputs(str(tmp_path / "nothing-"))
    with pytest.raises(DataError, match="data: nothing to read at"):
        list_data_files(str(tmp_path / "nothing-"))
    assert list_data_files(str(tmp_path / "nothing-"), allow_empty=True) == []


@pytest.mark.slow
def test_batch_predict_reads_a_cp1252_file_with_padded_header_names(tiny_run, tmp_path):
    """The file fit reads is the file predict reads: before, predict guessed UTF-8 from a sample
    that stopped short of the only non-ASCII byte, and kept the spaces around the header names."""
    rows = make_binary_frame(20, seed=3).drop(columns=["y"])
    rows["note"] = "plain"
    rows.loc[len(rows) - 1, "note"] = "café"
    text = rows.to_csv(index=False)
    header, body = text.split("\n", 1)
    padded = ",".join(f" {h} " for h in header.split(","))
    (tmp_path / "in.csv").write_bytes((padded + "\n" + body).encode("cp1252"))
    n = batch_predict(tiny_run.run_dir, str(tmp_path / "in.csv"), str(tmp_path / "out.csv"),
                      keep_columns=["customer_id", "note"])
    out = pd.read_csv(tmp_path / "out.csv")
    assert n == len(rows) == len(out)
    assert out["note"].tolist()[-1] == "café"
    assert out["predicted_label"].tolist() == list(tiny_run.predict(rows))
