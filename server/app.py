"""The HTTP API: OpenAI's ``/v1/completions`` and ``/v1/models``, slmkit's ``/v1/prompts``, ``/health``
and ``/metrics``; API-key check, body-size limit and OpenAI-style errors (never a traceback)."""
from __future__ import annotations

import asyncio
import hmac
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from slmkit.errors import SlmkitError, first_line
from slmkit.prompts import SEP, build_prompt, output_text
from slmkit.runtimes.base import Chunk, Runtime, TokenLogprob
from slmkit.runtimes.sampling import Sampling
from slmkit.server.engine import Engine, Event, Job, ServerError, timeout_error
from slmkit.server.metrics import Metrics
from slmkit.server.schema import (MAX_LOGPROBS, MAX_STOP, Completion, CompletionChoice, Logprobs, CompletionRequest, ModelCard, ModelList,
                                  Prompts, PromptsRequest, Usage)
from slmkit.version import __version__

ROUTES = ("/health", "/metrics", "/v1/models", "/v1/completions", "/v1/prompts", "/openapi.json", "/docs")


@dataclass(frozen=True)
class Settings:
    """How the server runs: the model's public name, the API key, capacity and limits."""
    model_id: str
    api_key: str | None = None
    parallel: int = 4
    max_queue: int = 16
    timeout: float = 300.0
    max_body: int = 1 << 20


def error_response(e: ServerError) -> JSONResponse:
    body = {"error": {"message": e.message, "type": e.type, "param": e.param, "code": e.code}}
    return JSONResponse(body, status_code=e.status, headers=e.headers)


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is a 413, by Content-Length or while it arrives (chunked).
    The body is read here, at most ``limit`` bytes of it, and handed on whole."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = ServerError(413, f"request body over {self.limit} bytes", code="body_too_large")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await error_response(too_big)(scope, receive, send)
        parts, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away while sending
                return
            parts.append(message.get("body", b""))
            seen += len(parts[-1])
            if seen > self.limit:
                return await error_response(too_big)(scope, receive, send)
            if not message.get("more_body", False):
                break
        whole: dict | None = {"type": "http.request", "body": b"".join(parts), "more_body": False}

        async def replay() -> dict:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()

        await self.app(scope, replay, send)


class RequestCounter:
    """ASGI middleware: counts responses by route and status for ``/metrics`` (no extra task per request,
    unlike Starlette's ``BaseHTTPMiddleware``, which sits in the path of every server-sent event)."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")

        async def counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                self.metrics.request(path if path in ROUTES else "other", message["status"])
            await send(message)

        await self.app(scope, receive, counted)


def create_app(runtime: Runtime, settings: Settings) -> FastAPI:
    """The ASGI app over one loaded runtime (the caller owns and closes it)."""
    metrics = Metrics()
    engine = Engine(runtime, metrics, parallel=settings.parallel, max_queue=settings.max_queue)
    created = int(time.time())
    has_controls = runtime.tokenizer.token_to_id(SEP) is not None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title="slmkit", version=__version__, lifespan=lifespan,
                  description="A local, OpenAI-compatible server over one slmkit artifact.")
    app.state.engine, app.state.metrics = engine, metrics

    def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise ServerError(401, "missing or incorrect API key (send 'Authorization: Bearer KEY')",
                              code="invalid_api_key")

    @app.exception_handler(ServerError)
    async def _server_error(_: Request, e: ServerError) -> JSONResponse:
        return error_response(e)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = (e.errors() or [{}])[0]
        if first.get("type") == "json_invalid":
            return error_response(ServerError(400, "the request body is not valid JSON"))
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(ServerError(400, f"{where or 'body'}: {first.get('msg', 'invalid request')}",
                                          param=where or None))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return error_response(ServerError(e.status_code, str(e.detail), code="not_found" if e.status_code == 404 else None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception) -> JSONResponse:
        print(f"slmkit serve: internal error: {type(e).__name__}: {first_line(e)}", file=sys.stderr)
        return error_response(ServerError(500, "internal server error", "server_error"))

    @app.get("/health")
    async def health() -> Any:
        active, queued, free = engine.depth()
        body = {"status": "ok", "model": settings.model_id, "backend": runtime.backend, "active": active,
                "queued": queued, "slots_free": free}
        broken = engine.broken
        if broken:
            return JSONResponse({**body, "status": "unavailable", "reason": broken}, status_code=503)
        return body

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(require_key)])
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", response_model=ModelList, dependencies=[Depends(require_key)])
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=settings.model_id, created=created)])

    def check_model(name: str | None) -> None:
        if name is not None and name != settings.model_id:
            raise ServerError(404, f"model {name!r} is not served here; this server serves {settings.model_id!r}",
                              param="model", code="model_not_found")

    def sampling_of(req: CompletionRequest | PromptsRequest, max_tokens: int) -> dict[str, Any]:
        """The runtime's keyword arguments for a request (one 400 for a value out of range)."""
        if not 1 <= max_tokens <= runtime.n_ctx - 1:
            raise ServerError(400, f"max_tokens must be between 1 and {runtime.n_ctx - 1} (the context is "
                                   f"{runtime.n_ctx} tokens), got {max_tokens}", param="max_tokens")
        fields = {k: getattr(req, k) for k in Sampling.__dataclass_fields__}
        try:
            Sampling(**fields)
        except SlmkitError as e:
            raise ServerError(400, str(e)) from None
        return {**fields, "max_new_tokens": max_tokens}

    def check_seed(seed: int | None) -> None:
        if seed is not None and seed < 0:
            raise ServerError(400, f"seed must be a whole number >= 0, got {seed}", param="seed")

    def prompt_ids(prompt: str | list[int], max_tokens: int) -> list[int]:
        """A prompt's token ids, checked against the vocabulary and, with ``max_tokens``, the context."""
        try:
            ids = runtime._ids(prompt)
        except SlmkitError as e:
            raise ServerError(400, str(e), param="prompt") from None
        if len(ids) + max_tokens > runtime.n_ctx:
            raise ServerError(400, f"the prompt's {len(ids)} tokens plus max_tokens {max_tokens} exceed the context "
                                   f"of {runtime.n_ctx} tokens; shorten the prompt or lower max_tokens",
                              param="prompt", code="context_length_exceeded")
        return ids

    async def checked_prompts(prompts: list[str | list[int]], max_tokens: int) -> list[list[int]]:
        """Every prompt tokenized and checked before the request is queued (a long text off the event loop)."""
        if sum(len(p) for p in prompts) > 4096:
            return await asyncio.to_thread(lambda: [prompt_ids(p, max_tokens) for p in prompts])
        return [prompt_ids(p, max_tokens) for p in prompts]

    @app.post("/v1/completions", response_model=Completion, dependencies=[Depends(require_key)])
    async def completions(req: CompletionRequest, request: Request) -> Any:
        check_model(req.model)
        for name in ("suffix", "echo"):
            if getattr(req, name):
                raise ServerError(400, f"{name} is not supported by slmkit serve", param=name)
        if req.logprobs is not None and not 0 <= req.logprobs <= MAX_LOGPROBS:
            raise ServerError(400, f"logprobs must be between 0 and {MAX_LOGPROBS}, got {req.logprobs}", param="logprobs")
        if req.best_of not in (None, req.n):
            raise ServerError(400, "best_of is not supported (ask for n candidates instead)", param="best_of")
        if req.logit_bias:
            raise ServerError(400, "logit_bias is not supported by slmkit serve", param="logit_bias")
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if len(stop) > MAX_STOP:
            raise ServerError(400, f"stop takes at most {MAX_STOP} strings", param="stop")
        check_seed(req.seed)
        opts = {**sampling_of(req, 16 if req.max_tokens is None else req.max_tokens), "stop": stop,
                "ignore_eos": req.ignore_eos, "logprobs": req.logprobs}
        prompts = await checked_prompts(prompt_list(req.prompt), opts["max_new_tokens"])
        choices = [(p, {**opts, "seed": None if req.seed is None else req.seed + j}) for p in prompts for j in range(req.n)]
        job = Job(choices, asyncio.get_running_loop(), settings.timeout)
        engine.submit(job)
        cid, now = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            first = await next_event(job, request)
            usage = req.n if req.stream_options and req.stream_options.include_usage else 0
            return StreamingResponse(sse(job, request, first, cid, now, usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        texts, last, lps = await collect(job, request)
        return Completion(id=cid, created=now, model=settings.model_id,
                          choices=[CompletionChoice(text=t, index=i, finish_reason=c.finish,
                                                    logprobs=None if req.logprobs is None else LogprobTrack(lp).take(len(t)))
                                   for i, (t, c, lp) in enumerate(zip(texts, last, lps))],
                          usage=usage_of(last, req.n))

    async def sse(job: Job, request: Request, first: Event, cid: str, now: int, usage: int) -> AsyncIterator[str]:
        """OpenAI's server-sent events: one ``data:`` line per chunk, ``data: [DONE]`` at the end; with
        ``usage`` (the request's n), a last event with the token counts."""
        ev: Event | None = first
        open_ = set(range(len(job.choices)))
        last: list[Chunk | None] = [None] * len(job.choices)
        tracks = [LogprobTrack() for _ in job.choices]
        sent = [0] * len(job.choices)  # characters of text sent per choice
        try:
            while open_:
                if ev is None:
                    try:
                        ev = await next_event(job, request)
                    except ServerError as e:
                        yield f"data: {json.dumps({'error': {'message': e.message, 'type': e.type, 'code': e.code}})}\n\n"
                        return
                c = last[ev.index] = ev.chunk
                if c.finish is not None:
                    open_.discard(ev.index)
                tracks[ev.index].entries.extend(c.logprobs)
                if c.text or c.finish is not None:
                    sent[ev.index] += len(c.text)
                    lp = tracks[ev.index].take(sent[ev.index]) if c.logprobs or tracks[ev.index].entries else None
                    body = {"id": cid, "object": "text_completion", "created": now, "model": settings.model_id,
                            "choices": [{"text": c.text, "index": ev.index, "logprobs": lp and lp.model_dump(),
                                         "finish_reason": c.finish}]}
                    yield f"data: {json.dumps(body)}\n\n"
                ev = None
            if usage:
                body = {"id": cid, "object": "text_completion", "created": now, "model": settings.model_id,
                        "choices": [], "usage": usage_of(last, usage).model_dump()}
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            job.cancelled.set()  # a client that went away stops its generation at the next token

    @app.post("/v1/prompts", response_model=Prompts, dependencies=[Depends(require_key)])
    async def prompts_(req: PromptsRequest, request: Request) -> Prompts:
        if not has_controls:
            raise ServerError(400, f"this model has no control tokens ({SEP} is not in its vocabulary); "
                                   "use /v1/completions", code="no_control_tokens")
        try:
            prompt = build_prompt(req.intent, req.task, req.length, req.relevance)
        except SlmkitError as e:
            raise ServerError(400, str(e), param="intent") from None
        check_seed(req.seed)
        opts = sampling_of(req, req.max_tokens)
        ids = (await checked_prompts([prompt], req.max_tokens))[0]
        job = Job([(ids, {**opts, "seed": req.seed + j}) for j in range(req.n)], asyncio.get_running_loop(),
                  settings.timeout)
        engine.submit(job)
        texts, _, _ = await collect(job, request)
        return Prompts(model=settings.model_id, intent=req.intent, task=req.task, length=req.length,
                       relevance=req.relevance, candidates=[output_text(t) for t in texts])

    counted = RequestCounter(app, metrics)
    return BodyLimit(counted, settings.max_body) if settings.max_body else counted  # type: ignore[return-value]


def prompt_list(prompt: Any) -> list[str | list[int]]:
    """OpenAI's prompt forms: a string, strings, token ids, or lists of token ids."""
    if isinstance(prompt, str):
        out: list[Any] = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        out = [list(prompt)]
    else:
        out = list(prompt)
    if not out or any(len(p) == 0 for p in out):
        raise ServerError(400, "prompt is empty", param="prompt")
    if len(out) > 16:
        raise ServerError(400, "at most 16 prompts per request", param="prompt")
    return out


async def collect(job: Job, request: Request) -> tuple[list[str], list[Chunk], list[list[TokenLogprob]]]:
    """Every choice's whole text, its last chunk (token counts, finish reason) and its tokens' logprobs
    (when asked for), once all have ended."""
    texts = [""] * len(job.choices)
    last: list[Chunk | None] = [None] * len(job.choices)
    lps: list[list[TokenLogprob]] = [[] for _ in job.choices]
    while any(c is None or c.finish is None for c in last):
        ev = await next_event(job, request)
        texts[ev.index] += ev.chunk.text
        last[ev.index] = ev.chunk
        lps[ev.index].extend(ev.chunk.logprobs)
    return texts, last, lps  # type: ignore[return-value]


@dataclass
class LogprobTrack:
    """A choice's token logprobs not yet reported, and the text offset where the next one starts."""
    entries: list[TokenLogprob] = field(default_factory=list)
    offset: int = 0

    def take(self, upto: int) -> Logprobs:
        """The tokens that start before character ``upto`` of the text (those after a stop string's cut
        never do), in OpenAI's shape; they are removed from the track."""
        out = Logprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
        while self.entries and self.offset < upto:
            e = self.entries.pop(0)
            out.tokens.append(e.token)
            out.token_logprobs.append(e.logprob)
            out.top_logprobs.append(dict(e.top))
            out.text_offset.append(self.offset)
            self.offset += len(e.token)
        return out


def usage_of(last: list[Chunk], n: int) -> Usage:
    """OpenAI's usage: each prompt counted once (its n choices share it), every generated token."""
    prompt = sum(c.prompt_tokens for c in last[::n])
    done = sum(c.tokens for c in last)
    return Usage(prompt_tokens=prompt, completion_tokens=done, total_tokens=prompt + done)


DISCONNECT_POLL = 0.05  # seconds: how soon a client that went away is noticed


async def next_event(job: Job, request: Request | None) -> Event:
    """The job's next event. The request's deadline is kept here, where it waits (504), whatever the worker
    does; a client that went away (checked every ``DISCONNECT_POLL`` s, events flowing or not) cancels the
    job; an error event is raised."""
    while True:
        now = time.monotonic()
        if request is not None and now - job.checked >= DISCONNECT_POLL:
            job.checked = now
            if await request.is_disconnected():
                job.cancelled.set()
                raise ServerError(499, "client closed the request")
        try:
            ev = job.events.get_nowait()
        except asyncio.QueueEmpty:
            left = job.deadline - now
            if left <= 0:
                job.cancelled.set()
                raise timeout_error(job) from None
            try:
                ev = await asyncio.wait_for(job.events.get(), min(DISCONNECT_POLL, left))
            except asyncio.TimeoutError:
                continue
        if ev.error is not None:
            job.cancelled.set()
            raise ev.error
        return ev
