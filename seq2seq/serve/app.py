"""The Starlette application of `seq2seq serve`: routes, errors and the batching worker.

    GET  /               the page: a text box, a button, the translation and its attention
    POST /v1/translate   {"text": ..., "beam": 5, "n_best": 1, "alignments": false,
                          "attention": false} -> {"translations": [...], "beam": .., ...}
    GET  /v1/model       what the model is (Translator.describe) and the server's limits
    GET  /health         {"status": "ok", ...} with the batching counters

Every error is JSON, ``{"error": message, "field": name or null, "status": code}``. The model
runs in worker threads (`Batcher`), which the application starts and stops in its lifespan: on
shutdown the requests in flight are finished first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from seq2seq.inference.translate import Translation, Translator
from seq2seq.serve.batcher import Batcher, BatcherClosed
from seq2seq.serve.page import page_policy, render_serve_page
from seq2seq.serve.schema import (
    Limits,
    RequestError,
    TranslateRequest,
    body_too_large,
    parse_json,
    parse_translate,
)
from seq2seq.viz.html import sentence_payload

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batching:
    """Dynamic batching: a batch holds at most `max_tokens` (source subwords x beam) and
    waits, under concurrency, at most `max_wait_ms` after its first request or the previous
    batch's end for others; `workers` threads run batches at once, each with the intra-op
    thread count of the thread that creates the application (`batcher.Batcher`)."""

    max_tokens: int = 8192
    max_wait_ms: float = 20.0
    workers: int = 1


def create_app(
    translator: Translator, *, limits: Limits | None = None, batching: Batching | None = None
) -> Starlette:
    """The application serving `translator` (see the module docstring)."""
    limits = limits or Limits(max_beam=max(10, translator.beam))
    batching = batching or Batching()
    service = _Service(translator, limits, batching)
    routes = [
        Route("/", service.page, methods=["GET"]),
        Route("/health", service.health, methods=["GET"]),
        Route("/v1/model", service.model, methods=["GET"]),
        Route("/v1/translate", service.translate, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=service.lifespan,
        exception_handlers={
            RequestError: _request_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.service = service
    return app


class _Service:
    """The handlers, around one translator and its batching worker."""

    def __init__(self, translator: Translator, limits: Limits, batching: Batching) -> None:
        self.translator, self.limits, self.batching = translator, limits, batching
        self.batcher: Batcher | None = None
        self.in_flight = 0  # translate requests received and not yet answered
        self.description = {
            **translator.describe(),
            "limits": asdict(limits),
            "batching": asdict(batching),
        }
        self.page_html = render_serve_page(self.description)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Start the worker; on shutdown (after the requests in flight) finish and stop it."""
        self.batcher = Batcher(
            self._run_batch,
            max_tokens=self.batching.max_tokens,
            max_wait=self.batching.max_wait_ms / 1000,
            workers=self.batching.workers,
            on_start=_same_threads(),
        )
        try:
            yield
        finally:
            batcher, self.batcher = self.batcher, None
            await asyncio.to_thread(batcher.close)

    async def page(self, request: Request) -> Response:
        headers = {
            "Cache-Control": "no-store",
            "Content-Security-Policy": page_policy(),
            "X-Content-Type-Options": "nosniff",
        }
        return HTMLResponse(self.page_html, headers=headers)

    async def health(self, request: Request) -> Response:
        batcher = self.batcher
        if batcher is None:
            return JSONResponse({"status": "stopping"}, status_code=503)
        return JSONResponse(
            {
                "status": "ok",
                "in_flight": self.in_flight,
                "queued": batcher.queued,
                **asdict(batcher.stats),
            }
        )

    async def model(self, request: Request) -> Response:
        return JSONResponse(self.description)

    async def translate(self, request: Request) -> Response:
        self.in_flight += 1
        try:
            return await self._translate(request)
        finally:
            self.in_flight -= 1

    async def _translate(self, request: Request) -> Response:
        body = await self._read_body(request)
        value = parse_json(body, self.limits)
        req = parse_translate(value, self.limits, self.translator.beam)
        batcher = self.batcher
        if batcher is None:
            raise RequestError(503, None, "the server is shutting down")
        try:
            future = batcher.submit(req.texts, req.key, self._cost(req))
        except BatcherClosed as e:
            raise RequestError(503, None, str(e)) from None
        try:
            translations = await asyncio.wrap_future(future)
        except ValueError as e:  # TranslateError: the model cannot do what was asked
            raise RequestError(422, None, str(e)) from None
        return JSONResponse({"translations": translations, "beam": req.beam, "n_best": req.n_best})

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused (413) as soon as it exceeds the limit, declared or not."""
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise body_too_large(self.limits)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise body_too_large(self.limits)
            chunks.append(chunk)
        return b"".join(chunks)

    def _cost(self, req: TranslateRequest) -> int:
        """Source subwords (+1 for the end of sentence) times the beam, summed."""
        ids = self.translator.tokenizer.encode_src_batch(req.texts, threads=1)
        longest = self.translator.max_src_len
        return sum(min(len(i), longest) + 1 for i in ids) * req.beam

    def _run_batch(self, texts: list[str], key: tuple) -> list[dict[str, Any]]:
        """In a worker thread: translate a batch of texts sharing the options `key`."""
        req = TranslateRequest(texts, *key)
        found = self.translator.translate(
            texts,
            beam=req.beam,
            n_best=req.n_best,
            alignments=req.alignments,
            attention=req.attention,
        )
        return [translation_json(t, text, req) for t, text in zip(found, texts, strict=True)]


def _same_threads() -> Callable[[], None]:
    """What gives a worker thread this thread's intra-op thread count. torch's setting is
    per thread: at 2 threads, a beam of one sentence decoded about twice as slowly in a thread
    that had not set it as in one that had (docs/commands.md, ``serve``)."""
    threads = torch.get_num_threads()
    return lambda: torch.set_num_threads(threads)


def translation_json(t: Translation, source: str, req: TranslateRequest) -> dict[str, Any]:
    """The JSON of one translation: text, score, log_prob, pieces, and as asked nbest,
    alignment ([source word, target word] pairs) and attention (the viewer's payload of one
    sentence, with subword pieces and words; null for an empty text)."""
    out: dict[str, Any] = {
        "text": t.text,
        "score": t.score,
        "log_prob": t.log_prob,
        "pieces": t.pieces,
    }
    if req.n_best > 1:
        out["nbest"] = [{"text": text, "score": score} for text, score in t.nbest]
    if req.alignments:
        out["alignment"] = [list(link) for link in t.alignment or []]
    if req.attention:
        example = t.attention
        if example is not None:
            example.title = source
        out["attention"] = None if example is None else sentence_payload(example, words=True)
    return out


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return JSONResponse(exc.body(), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: f"no such page: {request.url.path}", 405: f"method {request.method} not "
               f"allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))  # fmt: skip
    return JSONResponse(
        {"error": message, "field": None, "status": exc.status_code},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.error("%s %s failed: %r", request.method, request.url.path, exc)
    return JSONResponse(
        {"error": f"internal error: {type(exc).__name__}", "field": None, "status": 500},
        status_code=500,
    )
