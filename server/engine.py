"""The worker that owns the runtime: a bounded queue, ``parallel`` slots decoded in turn at token
boundaries, cancellation (a client that goes away), per-request deadlines, and metrics.

One thread calls the runtime, so requests never contend for its lock. Each slot's request advances
``quantum`` tokens per turn; a paused request's KV state is parked by the runtime and restored when its
turn comes, so a long request never holds back a new one's first token for long.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from slmkit.errors import SlmkitError, first_line
from slmkit.runtimes.base import Chunk

from slmkit.server.metrics import Metrics


class ServerError(Exception):
    """A failure with its HTTP status and OpenAI error type."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers or {}


@dataclass
class Event:
    """What the worker tells a request: a chunk of choice ``index``, all texts of a batch, or an error."""
    index: int = 0
    chunk: Chunk | None = None
    texts: list[str] | None = None
    error: ServerError | None = None


@dataclass
class Job:
    """One request: its choices as chunk streams (started in the worker) or one batched call."""
    streams: list[Callable[[], Iterator[Chunk]]]
    loop: asyncio.AbstractEventLoop
    timeout: float
    batch: Callable[[], list[str]] | None = None  # candidates decoded as one batch (no per-token events)
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.deadline = self.arrived + self.timeout
        self._its: dict[int, Iterator[Chunk]] = {}
        self._open = set(range(len(self.streams)))
        self._first = True
        self._last: dict[int, tuple[float, int]] = {}

    def emit(self, event: Event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
            self.cancelled.set()

    def close(self) -> None:
        for it in self._its.values():
            it.close()  # type: ignore[attr-defined]
        self._its.clear()
        self._open.clear()


class Engine:
    """Runs jobs on one runtime in a worker thread. ``submit`` refuses with 503 when the queue is full."""

    def __init__(self, metrics: Metrics, parallel: int = 4, max_queue: int = 16, quantum: int = 8):
        self.metrics, self.parallel, self.max_queue, self.quantum = metrics, parallel, max_queue, quantum
        self._waiting: deque[Job] = deque()
        self._active: list[Job] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="slmkit-engine", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new jobs, end the queued and running ones with a clean 503, and join the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._stopping:
                raise ServerError(503, "the server is shutting down", "server_error", "shutting_down")
            if len(self._active) >= self.parallel and len(self._waiting) >= self.max_queue:
                raise ServerError(503, f"the server is busy ({len(self._active)} requests running, "
                                       f"{len(self._waiting)} queued); retry later", "server_error", "queue_full",
                                  headers={"Retry-After": "1"})
            self._waiting.append(job)
            self.metrics.queue_depth = len(self._waiting)
            self._cond.notify()

    def depth(self) -> tuple[int, int]:
        with self._cond:
            return len(self._active), len(self._waiting)

    # --- the worker --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._waiting and not self._active:
                    self._cond.wait()
                if self._stopping:
                    break
                while self._waiting and len(self._active) < self.parallel:
                    self._active.append(self._waiting.popleft())
                self.metrics.queue_depth, self.metrics.active = len(self._waiting), len(self._active)
                active = list(self._active)
            done = [job for job in active if self._turn(job)]
            with self._cond:
                self._active = [j for j in self._active if j not in done]
                self.metrics.active = len(self._active)
        with self._cond:
            left = list(self._active) + list(self._waiting)
            self._active, self._waiting = [], deque()
        for job in left:
            job.close()
            job.emit(Event(error=ServerError(503, "the server is shutting down", "server_error", "shutting_down")))

    def _turn(self, job: Job) -> bool:
        """Advance a job by up to ``quantum`` tokens per open choice; True when it is finished."""
        if job.cancelled.is_set():
            job.close()
            return True
        if time.monotonic() > job.deadline:
            job.close()
            job.emit(Event(error=ServerError(504, f"the request did not finish within {job.timeout:g} s",
                                             "timeout_error", "timeout")))
            return True
        try:
            if job.batch is not None:
                texts = job.batch()
                job.emit(Event(texts=texts))
                return True
            for index in sorted(job._open):
                it = job._its.get(index)
                if it is None:
                    it = job._its[index] = job.streams[index]()
                for _ in range(self.quantum):
                    chunk = next(it)
                    self._observe(job, index, chunk.tokens, chunk.prompt_tokens)
                    job.emit(Event(index=index, chunk=chunk))
                    if chunk.finish is not None:
                        job._open.discard(index)
                        job._its.pop(index, None)
                        break
                if job.cancelled.is_set():
                    break
        except SlmkitError as e:
            job.close()
            job.emit(Event(error=ServerError(400, str(e))))
            return True
        except Exception as e:  # a backend failure: a clean 500 for this request, the server goes on
            job.close()
            job.emit(Event(error=ServerError(500, f"generation failed: {first_line(e)}", "server_error")))
            return True
        return not job._open

    def _observe(self, job: Job, index: int, tokens: int, prompt_tokens: int = 0) -> None:
        """Token counts and latencies: time to the request's first token, then time per token."""
        now = time.monotonic()
        first_chunk = index not in job._last
        last_t, last_n = job._last.get(index, (job.arrived, 0))
        if first_chunk:
            self.metrics.tokens(prompt=prompt_tokens)
        if tokens > last_n:
            if job._first:
                job._first = False
                self.metrics.first_token(now - job.arrived)
            elif last_n > 0:
                self.metrics.per_token((now - last_t) / (tokens - last_n))
            self.metrics.tokens(generated=tokens - last_n)
        if first_chunk or tokens > last_n:
            job._last[index] = (now, tokens)
