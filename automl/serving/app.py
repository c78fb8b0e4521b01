"""The endpoint as a FastAPI app: /ping, /metadata and /invocations for one trial's model.

The same app runs under uvicorn (``serve.backend=uvicorn``) or as a Ray Serve deployment
(``serve.backend=ray``). Concurrent requests are micro-batched: while the model predicts one
batch, new requests queue, and the next prediction takes all of them at once (up to
``serve.max_batch_rows`` rows), so 16 clients cost little more than one. Small batches are
predicted on the event loop (cheapest for one-row requests); large ones in a worker thread.
Bodies over ``INLINE_BODY_BYTES`` are parsed, answered and captured in a thread pool too, so the
event loop (and /ping) stays free while a 22,000-row request is served.

No client mistake gets a 5xx: every problem with a request is a :class:`RequestError` (4xx with
a one-line message); a client that disconnects mid-body is logged on one line; a body that does
not arrive within ``serve.body_timeout_s`` gets 408. A 500 means a bug in automl or the model.
"""
from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from automl.errors import AutoMLError
from automl.rundir.leaderboard import rank_score
from automl.redact import redact_text
from automl.serving.capture import DataCapture, frame_records, raw_records
from automl.serving.codec import (CONTENT_TYPES, CSV, RequestError, explain_request, json_value, parse, render,
                                  request_format, response_format)
from automl.serving.predictor import Predictor

log = logging.getLogger(__name__)


@dataclass
class Endpoint:
    """Everything one app (or one Ray Serve replica) needs to answer requests."""

    predictor: Predictor
    metadata: Dict[str, Any]
    api_key: Optional[str] = None
    max_body_bytes: int = 6 * 1024 * 1024
    max_batch_rows: int = 256
    capture: Optional[DataCapture] = None
    body_timeout_s: float = 30.0
    explainer: Optional[Any] = None  # automl.explain.Explainer: answers requests that ask explain=true


INLINE_ROWS = 64  # batches up to this many rows are predicted on the event loop itself
PREDICT_CHUNK_ROWS = 1024  # a large request is predicted in slices of this many rows
INLINE_BODY_BYTES = 64 * 1024  # bodies up to this size are parsed on the event loop; larger in a thread
PARSE_THREADS = 4
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class Batcher:
    """Queue requests while the model is busy; predict the queued ones together."""

    def __init__(self, predictor: Predictor, max_rows: int):
        self.predictor = predictor
        self.max_rows = max(1, int(max_rows))
        self.queue: Optional[asyncio.Queue] = None
        self.worker: Optional[asyncio.Task] = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="automl-predict")

    async def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.queue is None:
            self.queue = asyncio.Queue()
        if self.worker is None or self.worker.done():
            self.worker = asyncio.get_running_loop().create_task(self._work())
        fut = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((X, fut))
        return await fut

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            await asyncio.sleep(0)  # let requests that are ready join this batch
            rows = len(items[0][0])
            while rows < self.max_rows and not self.queue.empty():
                item = self.queue.get_nowait()
                items.append(item)
                rows += len(item[0])
            frames = [x for x, _ in items]
            try:
                if rows <= INLINE_ROWS:  # small: predict right here, a thread hop costs more than it saves
                    results = self._predict_all(frames)
                else:  # large: in a thread, so /ping and parsing of other requests go on meanwhile
                    results = await loop.run_in_executor(self.executor, self._predict_all, frames)
            except Exception as exc:  # pragma: no cover - _predict_all returns errors per request
                results = [exc] * len(items)
            for (_, fut), res in zip(items, results):
                if fut.done():
                    continue
                if isinstance(res, Exception):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)

    def _predict_all(self, frames: List[pd.DataFrame]) -> List[Any]:
        if len(frames) > 1:
            try:
                m = self.predictor.scores(pd.concat(frames, ignore_index=True))
                bounds = np.cumsum([0] + [len(f) for f in frames])
                return [m[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
            except Exception:
                pass  # one request's rows broke the batch: predict each alone, so only it fails
        out: List[Any] = []
        for f in frames:
            try:
                out.append(self._matrix(f))
            except Exception as exc:
                out.append(exc)
        return out

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        """Predictions for one request's rows, ``PREDICT_CHUNK_ROWS`` at a time: a model's C code
        may hold the GIL for its whole call, and the event loop (and /ping) waits meanwhile."""
        if len(X) <= PREDICT_CHUNK_ROWS:
            return self.predictor.scores(X)
        return np.concatenate([self.predictor.scores(X.iloc[i:i + PREDICT_CHUNK_ROWS])
                               for i in range(0, len(X), PREDICT_CHUNK_ROWS)])

    def close(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        self.executor.shutdown(wait=False)


class BearerAuth:
    """ASGI middleware: every path except /ping needs ``Authorization: Bearer <key>``."""

    def __init__(self, app: Any, key: str, open_paths: Tuple[str, ...] = ("/ping",)):
        self.app = app
        self.expected = f"Bearer {key}".encode("utf-8")
        self.open_paths = open_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("path") not in self.open_paths:
            given = b""
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    given = value
                    break
            if not hmac.compare_digest(given, self.expected):
                body = (b'{"error":"missing or wrong API key: send the header '
                        b'Authorization: Bearer <api_key>"}')
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class ClientGone(Exception):
    """The client closed the connection before its whole request arrived."""


async def read_body(request: Any, limit: int, timeout_s: float = 30.0) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes and (408) a body that has
    not arrived within ``timeout_s`` seconds; :class:`ClientGone` when the client hangs up."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, f"bad Content-Length header {declared!r}") from None
        if size > limit:
            raise RequestError(413, f"the body has {size} bytes; the limit is {limit} (max_body_bytes); "
                                    f"split the rows over several requests or use `automl predict`")
    try:
        return await asyncio.wait_for(_read_chunks(request, limit), timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(408, f"the body did not arrive within {timeout_s:g} s (serve.body_timeout_s); send "
                                f"the whole body at once, or split the rows over several requests") from None
    except ClientDisconnect:
        raise ClientGone() from None


async def _read_chunks(request: Any, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the body is over the limit of {limit} bytes (max_body_bytes); "
                                    f"split the rows over several requests or use `automl predict`")
        chunks.append(chunk)
    return b"".join(chunks)


def error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def request_id_of(header: Optional[str]) -> str:
    """The client's X-Request-Id when it is a plain token (echoed back), else a fresh one."""
    return header if header and _REQUEST_ID.match(header) else uuid.uuid4().hex


class Invocations:
    """POST /invocations: read, parse, predict, answer, capture. Bodies over ``INLINE_BODY_BYTES``
    are parsed, answered and captured in a thread pool, off the event loop."""

    def __init__(self, endpoint: Endpoint, batcher: Batcher):
        self.endpoint = endpoint
        self.predictor = endpoint.predictor
        self.batcher = batcher
        self.pool = ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="automl-parse")

    async def __call__(self, request: Request) -> Response:
        request_id = request_id_of(request.headers.get("x-request-id"))
        inference_id = request.headers.get("x-inference-id")  # ground truth joins on it (the capture's request_id)
        if inference_id is not None:
            if not _REQUEST_ID.match(inference_id):
                return error(400, "X-Inference-Id must be 1 to 128 letters, digits or . _ : - characters; send "
                                  "such an id, or none and use the one the answer's X-Inference-Id header gives")
            request_id = inference_id
        try:
            kind = request_format(request.headers.get("content-type"))
            out_kind = response_format(request.headers.get("accept"))
            body = await read_body(request, self.endpoint.max_body_bytes, self.endpoint.body_timeout_s)
        except RequestError as exc:
            return error(exc.status, exc.message)
        except ClientGone:
            peer = f"{request.client.host}:{request.client.port}" if request.client else "a client"
            log.info("%s disconnected before sending its whole request; nothing to answer", peer)
            return Response(status_code=400)
        offload = len(body) > INLINE_BODY_BYTES
        try:
            top_k = explain_request(request.scope.get("query_string") or b"", body, kind)  # None: not asked
            X = await self.run(offload, parse, body, kind, self.predictor.schema)
            m = await self.predict(X)
            if top_k is None:
                objs, content, media = await self.run(offload, self.answer, m, out_kind)
            else:  # explanations cost more than the prediction: always off the event loop
                objs, content, media = await self.run(True, self.answer_explained, X, m, out_kind, top_k)
        except RequestError as exc:
            # Rejected rows are captured too (with the error): a missing column or a string
            # where a number belongs is exactly what the monitor must see.
            await self.capture(offload, kind, body, [], request_id, None, exc.message)
            return error(exc.status, exc.message)
        except Exception:
            log.exception("internal error while answering a request")
            return error(500, "internal error while predicting; see the server log")
        await self.capture(offload, kind, body, objs, request_id, X, None)
        return Response(content=content, media_type=media,
                        headers={"x-request-id": request_id, "x-inference-id": request_id})

    async def run(self, offload: bool, fn: Any, *args: Any) -> Any:
        if not offload:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    async def predict(self, X: pd.DataFrame) -> np.ndarray:
        try:
            return await self.batcher.predict(X)
        except AutoMLError as exc:
            raise RequestError(400, str(exc)) from None
        except (ValueError, TypeError) as exc:  # rows the pipeline cannot handle
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RequestError(422, f"the model cannot predict these rows: {first}") from None

    def answer(self, m: np.ndarray, out_kind: str) -> Tuple[List[Dict[str, Any]], bytes, str]:
        objs = self.predictor.responses(m)
        content, media = render(objs, out_kind, self.predictor.response_keys)
        return objs, content, media

    def answer_explained(self, X: pd.DataFrame, m: np.ndarray, out_kind: str,
                         top_k: int) -> Tuple[List[Dict[str, Any]], bytes, str]:
        """The answer with an ``explanation`` per prediction: the ``top_k`` largest contributions."""
        explainer = self.endpoint.explainer
        if explainer is None:
            raise RequestError(400, "this endpoint does not explain predictions; send the request without explain")
        if out_kind == CSV:
            raise RequestError(406, "explanations are answered in JSON; send Accept: application/json")
        try:
            explanations = explainer.top_k(X, top_k)
        except AutoMLError as exc:
            raise RequestError(400, f"cannot explain these rows: {exc}") from None
        objs = self.predictor.responses(m)
        for obj, expl in zip(objs, explanations):
            if "class" in expl:
                expl["class"] = json_value(expl["class"])
            obj["explanation"] = expl
        content, media = render(objs, out_kind, self.predictor.response_keys)
        return objs, content, media

    async def capture(self, offload: bool, kind: str, body: bytes, objs: List[Dict[str, Any]], request_id: str,
                      X: Optional[pd.DataFrame], problem: Optional[str]) -> None:
        capture = self.endpoint.capture
        if capture is None or not capture.sampled():
            return

        def record() -> None:
            rows = raw_records(body, kind, self.predictor.schema)
            if rows is None and X is not None:
                rows = frame_records(X)
            if rows:
                capture.record(kind, rows, objs, request_id=request_id, error=problem)

        try:
            await self.run(offload, record)
        except Exception as exc:  # capture must never break a request
            log.warning("data capture: request %s not captured: %s: %s", request_id, type(exc).__name__, exc)

    def close(self) -> None:
        self.pool.shutdown(wait=False)


def create_app(endpoint: Endpoint):
    """The FastAPI app serving ``endpoint``."""
    batcher = Batcher(endpoint.predictor, endpoint.max_batch_rows)
    invocations = Invocations(endpoint, batcher)

    def shutdown() -> None:
        batcher.close()
        invocations.close()
        if endpoint.capture is not None:
            endpoint.capture.close()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app):
        yield
        shutdown()

    app = FastAPI(title="automl endpoint", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.endpoint = endpoint
    app.state.shutdown = shutdown

    @app.get("/ping")
    async def ping() -> Response:
        return JSONResponse({"status": "ok", "trial_id": endpoint.metadata.get("trial_id")})

    @app.get("/metadata")
    async def metadata() -> Response:
        return JSONResponse(endpoint.metadata)

    @app.post("/invocations")
    async def invoke(request: Request) -> Response:
        return await invocations(request)

    @app.exception_handler(404)
    async def not_found(_request, _exc) -> Response:
        return error(404, "no such route; the endpoint has GET /ping, GET /metadata and POST /invocations")

    @app.exception_handler(405)
    async def not_allowed(_request, _exc) -> Response:
        return error(405, "method not allowed; POST /invocations, GET /ping, GET /metadata")

    if endpoint.api_key:
        app.add_middleware(BearerAuth, key=str(endpoint.api_key))
    return app


def endpoint_metadata(run: Any, predictor: Predictor, trial_id: str) -> Dict[str, Any]:
    """What GET /metadata answers: input schema, problem type, classes, trial, candidate, score."""
    b = predictor.bundle
    score = None
    lb = run.leaderboard
    match = lb[lb["trial_id"].astype(str) == str(trial_id)] if "trial_id" in lb else lb.iloc[:0]
    if len(match) and pd.notna(match.iloc[0].get("objective")):
        score = rank_score(match.iloc[0])  # as summary.json ranks it (re-ranked mean where there is one)
    elif str(trial_id) == str(run.best_trial_id):
        score = run.best_score
    return {
        "trial_id": str(trial_id), "candidate": b.candidate, "best": str(trial_id) == str(run.best_trial_id),
        "problem_type": b.problem_type, "target": b.target, "metric": run.summary.get("metric"), "score": score,
        "classes": predictor.labels, "positive_class": b.positive_class, "threshold": b.threshold,
        "input_schema": {"columns": predictor.schema.describe(), "content_types": list(CONTENT_TYPES),
                         "csv": "feature values in the column order above, no header, no target column; or "
                                "values of all training_columns (the target excepted), in that order",
                         "training_columns": list(predictor.schema.input_columns)},
        "response_keys": predictor.response_keys, "run_dir": redact_text(str(run.run_dir)),  # no user:password
    }
