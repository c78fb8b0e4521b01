"""Request bodies in, response bodies out: the endpoint's wire formats.

Requests: ``text/csv`` (rows of feature values in training column order, no header, no target)
or ``application/json`` (``{"instances": [{column: value, ...}, ...]}``). Responses: JSON
``{"predictions": [{...}, ...]}`` or, for ``Accept: text/csv``, one CSV row per prediction.
Every problem with a request raises :class:`RequestError` with an HTTP status and a message.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

from automl.errors import DataError
from automl.serving.schema import InputSchema

CSV, JSON = "text/csv", "application/json"
CONTENT_TYPES = (CSV, JSON)


def json_value(v: Any) -> Any:
    """One value made JSON-ready: numpy scalars to Python, NaN/inf and missing markers to null.
    Used for responses (labels) and for captured rows."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or (not isinstance(v, (str, bool, int, float)) and _isna(v)):
        return None
    return v


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


class RequestError(Exception):
    """A bad request: an HTTP status (4xx) and a message saying what is wrong."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: Optional[str]) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def request_format(content_type: Optional[str]) -> str:
    kind = media_type(content_type)
    if kind in ("application/jsonlines", "application/x-ndjson"):
        kind = ""
    if kind not in CONTENT_TYPES:
        got = f"'{content_type}'" if content_type else "no Content-Type"
        raise RequestError(415, f"unsupported content type: got {got}; send text/csv (rows in training column "
                                f"order, no header) or application/json ({{\"instances\": [{{column: value}}]}})")
    return kind


def response_format(accept: Optional[str]) -> str:
    """JSON unless the Accept header asks for CSV first; 406 when it allows neither."""
    if not accept or not accept.strip():
        return JSON
    for part in accept.split(","):
        kind = media_type(part)
        if kind in (JSON, "application/*", "*/*", "*"):
            return JSON
        if kind in (CSV, "text/*"):
            return CSV
    raise RequestError(406, f"cannot answer in {accept!r}; accept application/json or text/csv")


def decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the body is not UTF-8 text (byte {exc.start}); send UTF-8") from None


def parse_csv(body: bytes, schema: InputSchema) -> pd.DataFrame:
    text = decode_text(body)
    if not text.strip():
        raise RequestError(400, "empty body: send at least one CSV row of feature values")
    try:
        rows = [r for r in csv.reader(io.StringIO(text), strict=True) if r and any(f.strip() for f in r)]
    except csv.Error as exc:
        raise RequestError(400, f"malformed CSV: {exc}; send comma-separated rows, quoting fields that hold commas") from None
    if not rows:
        raise RequestError(400, "empty body: send at least one CSV row of feature values")
    try:
        return schema.frame_from_rows(rows)
    except DataError as exc:
        raise RequestError(400, str(exc)) from None


def parse_json(body: bytes, schema: InputSchema) -> pd.DataFrame:
    text = decode_text(body)
    if not text.strip():
        raise RequestError(400, 'empty body: send {"instances": [{column: value, ...}, ...]}')
    doc = load_json(text)
    if not isinstance(doc, dict) or "instances" not in doc:
        raise RequestError(400, 'the JSON body must be an object with "instances": '
                                '{"instances": [{column: value, ...}, ...]}')
    instances = doc["instances"]
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, '"instances" must be a non-empty list of objects {column: value, ...}')
    bad = next((i for i, x in enumerate(instances) if not isinstance(x, dict)), None)
    if bad is not None:
        raise RequestError(400, f'instance {bad + 1} is {type(instances[bad]).__name__}, not an object; '
                                f'send {{"instances": [{{column: value, ...}}]}}')
    try:
        return schema.frame_from_records(instances)
    except DataError as exc:
        raise RequestError(400, str(exc)) from None


INCREMENTAL_JSON_CHARS = 256 * 1024  # larger bodies are decoded one instance at a time
_INSTANCES_START = re.compile(r'\s*\{\s*"instances"\s*:\s*\[\s*')
_WS = re.compile(r"\s*")
_DECODER = json.JSONDecoder()


def _instances_incrementally(text: str) -> Optional[Dict[str, Any]]:
    """``{"instances": [...]}`` decoded one instance at a time, or None for any other shape.

    ``json.loads`` is one C call that holds the GIL: on a 20 MB body it would stop the event loop
    (and /ping) for most of a second even from a worker thread. Decoding instance by instance
    lets the loop run between instances; the result is the same as ``json.loads``.
    """
    start = _INSTANCES_START.match(text)
    if start is None:
        return None
    idx, instances = start.end(), []
    if text.startswith("]", idx):
        idx += 1
    else:
        while True:
            obj, idx = _DECODER.raw_decode(text, idx)
            instances.append(obj)
            idx = _WS.match(text, idx).end()
            if text.startswith(",", idx):
                idx = _WS.match(text, idx + 1).end()
            elif text.startswith("]", idx):
                idx += 1
                break
            else:
                return None  # malformed: json.loads says where
    if not re.fullmatch(r"\s*\}\s*", text[idx:]):
        return None  # more keys after the instances, or junk: json.loads decides
    return {"instances": instances}


def load_json(text: str) -> Any:
    """The JSON body, with every way a body can fail to parse answered by a 400: malformed JSON,
    nesting deeper than the parser's limit (about 1,000 levels), integers over 4,300 digits."""
    try:
        doc = _instances_incrementally(text) if len(text) > INCREMENTAL_JSON_CHARS else None
        return doc if doc is not None else json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise RequestError(400, 'the JSON body is nested too deeply; send {"instances": [{column: value, ...}]} '
                                "with a number, text, true/false or null as each value") from None
    except ValueError as exc:  # int() refuses integers of over 4,300 digits
        raise RequestError(400, f"a number in the JSON body is too long ({str(exc).split(':')[0]}); numbers must "
                                f"fit float64 (about 1.8e308)") from None


DEFAULT_TOP_K = 5  # features per row in an explanation unless the request says top_k
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


def explain_request(query: bytes, body: bytes, kind: str) -> Optional[int]:
    """The number of features to explain per row when the request asks for explanations
    (``?explain=true[&top_k=N]``, or ``"explain": true`` / ``"explain": {"top_k": N}`` beside the
    JSON instances); None when it does not. A request without a query string whose body does
    not hold the text ``"explain"`` costs one substring search."""
    if not query and (kind != JSON or b'"explain"' not in body):
        return None
    from urllib.parse import parse_qs

    params = {k: v[-1] for k, v in parse_qs(query.decode("latin-1"), keep_blank_values=True).items()}
    flag, top_k = params.get("explain"), params.get("top_k")
    if kind == JSON and b'"explain"' in body:
        doc = load_json(decode_text(body))
        value = doc.get("explain") if isinstance(doc, dict) else None
        if isinstance(value, dict):
            flag, top_k = "true", value.get("top_k", top_k)
        elif value is not None:
            flag = str(value).lower()
    if flag is None or str(flag).lower() in _FALSE:
        return None
    if str(flag).lower() not in _TRUE:
        raise RequestError(400, f"explain={flag!r}: use explain=true (or false)")
    if top_k is None:
        return DEFAULT_TOP_K
    try:
        k = int(top_k)
    except (TypeError, ValueError):
        k = -1
    if k < 1 or isinstance(top_k, bool):
        raise RequestError(400, f"top_k={top_k!r}: give a whole number of features >= 1, e.g. top_k=5")
    return k


def parse(body: bytes, kind: str, schema: InputSchema) -> pd.DataFrame:
    return parse_csv(body, schema) if kind == CSV else parse_json(body, schema)


def render(objs: List[Dict[str, Any]], kind: str, keys: List[str]) -> Tuple[bytes, str]:
    """Response body and media type."""
    if kind == JSON:
        return json.dumps({"predictions": objs}, separators=(",", ":")).encode("utf-8"), JSON
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for obj in objs:
        writer.writerow([_csv_field(obj.get(k)) for k in keys if k in obj])
    return buf.getvalue().encode("utf-8"), CSV


def _csv_field(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ",".join(str(x) for x in v) + "]"
    return "" if v is None else str(v)
