"""The worker that owns the runtime: a bounded queue, continuous batching over ``parallel`` slots,
cancellation (a client that goes away), per-request deadlines, and metrics.

One thread drives a :class:`~slmkit.runtimes.batching.ContinuousBatch`: every step evaluates the sequences
in flight together with a chunk of waiting prompts and samples a token for each; requests join at the next
token boundary when a slot is free and leave when they finish, time out, fail or lose their client. A request with ``n`` choices
(or several prompts) takes one slot per choice as slots free up.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from slmkit.errors import SlmkitError, first_line
from slmkit.runtimes.base import Chunk, Runtime
from slmkit.runtimes.batching import ContinuousBatch, StepError
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
    """What the worker tells a request: a chunk of choice ``index``, or an error."""
    index: int = 0
    chunk: Chunk | None = None
    error: ServerError | None = None


@dataclass
class Job:
    """One request: its choices, each a prompt with ``ContinuousBatch.add``'s keyword arguments."""
    choices: list[tuple[Any, dict[str, Any]]]
    loop: asyncio.AbstractEventLoop
    timeout: float
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.deadline = self.arrived + self.timeout
        self.pending = deque(range(len(self.choices)))  # choices not yet in a slot
        self.running: dict[int, int] = {}               # batch handle -> choice index
        self.first_token: float | None = None
        self.last: dict[int, tuple[float, int]] = {}    # choice -> (time, tokens) of its last chunk
        self.checked = self.arrived  # when the client's connection was last checked

    @property
    def finished(self) -> bool:
        return not self.pending and not self.running

    def emit(self, event: Event) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop is gone (shutdown): nobody is listening
            self.cancelled.set()


SHUTTING_DOWN = ("the server is shutting down", "server_error", "shutting_down")


def failure(e: BaseException) -> ServerError:
    """A failed generation as the client sees it: 400 for slmkit's own errors (bad input found late), else
    500 naming the exception."""
    if isinstance(e, SlmkitError):
        return ServerError(400, f"generation failed: {first_line(e)}", "server_error")
    return ServerError(500, f"generation failed: {type(e).__name__}: {first_line(e)}", "server_error")


def unavailable(reason: str) -> ServerError:
    return ServerError(503, f"the server cannot generate: {reason}", "server_error", "unavailable")


def timeout_error(job: Job) -> ServerError:
    return ServerError(504, f"the request did not finish within {job.timeout:g} s", "timeout_error", "timeout")


class Engine:
    """Runs jobs on one runtime in a worker thread. ``submit`` refuses with 503 when the queue is full
    (more than ``max_queue`` requests would wait with every slot taken) and when the engine cannot serve.

    A backend failure fails only the requests whose sequences the failed call touched (500, naming the
    cause); the worker goes on. Should the worker itself end, or the runtime be closed, ``broken`` says why
    and every request gets 503 at once."""

    def __init__(self, runtime: Runtime, metrics: Metrics, parallel: int = 4, max_queue: int = 16):
        self.rt, self.metrics, self.parallel, self.max_queue = runtime, metrics, parallel, max_queue
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []
        self._free = parallel  # slots free after the worker's last step
        self._cond = threading.Condition()
        self._stopping = False
        self._died: str | None = None
        self._thread = threading.Thread(target=self._run, name="slmkit-engine", daemon=True)
        # made here, not in the worker: llama.cpp's context creation silences the process's stdout / stderr
        # for a moment, which must not swallow what other threads print
        self._batch = ContinuousBatch(runtime, parallel)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new jobs, end the queued and running ones with a clean 503, and join the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def broken(self) -> str | None:
        """Why the engine cannot serve (None while it can)."""
        if self._died:
            return self._died
        if self.rt._closed:
            return "the model runtime is closed"
        if self._thread.ident is not None and not self._thread.is_alive() and not self._stopping:
            return "the engine's worker has stopped"
        return None

    def _queued(self) -> int:
        return max(0, len(self._waiting) - self._free)

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._stopping:
                raise ServerError(503, *SHUTTING_DOWN)
            broken = self.broken
            if broken:
                raise unavailable(broken)
            if self._queued() >= self.max_queue and len(self._waiting) >= self._free:
                raise ServerError(503, f"the server is busy ({self.parallel - self._free} of {self.parallel} slots "
                                       f"in use, {self._queued()} requests queued); retry later", "server_error",
                                  "queue_full", headers={"Retry-After": "1"})
            self._waiting.append(job)
            self.metrics.queue_depth = self._queued()
            self._cond.notify()

    def depth(self) -> tuple[int, int, int]:
        """Requests decoding now, requests waiting for a slot, and slots free."""
        with self._cond:
            return len(self._running), len(self._waiting), self._free

    # --- the worker --------------------------------------------------------------------------------
    def _run(self) -> None:
        batch = self._batch
        try:
            while True:
                with self._cond:
                    while not self._stopping and not self._waiting and not self._running:
                        self._cond.wait()
                    if self._stopping:
                        break
                try:
                    self._admit(batch)
                    self._step(batch)
                except Exception as e:  # a fault in the engine itself: fail what is in flight, keep serving
                    self._fail_all(batch, failure(e))
                with self._cond:
                    self._running = [j for j in self._running if not j.finished]
                    self._free = batch.free
                    self.metrics.queue_depth, self.metrics.active = self._queued(), len(self._running)
        except BaseException as e:
            self._died = f"the engine's worker stopped ({type(e).__name__}: {first_line(e)})"
            raise
        finally:
            with self._cond:
                left = self._running + list(self._waiting)
                self._running, self._waiting = [], deque()
            error = ServerError(503, *SHUTTING_DOWN) if self._stopping else unavailable(self.broken)
            for job in left:
                job.emit(Event(error=error))
            try:
                batch.close()
            except Exception:
                pass

    def _fail(self, batch: ContinuousBatch, job: Job, error: ServerError | None) -> None:
        for handle in job.running:
            try:
                batch.remove(handle)
            except Exception:  # a failing backend: the job still ends
                pass
        job.running.clear()
        job.pending.clear()
        if error is not None:
            job.emit(Event(error=error))

    def _fail_all(self, batch: ContinuousBatch, error: ServerError) -> None:
        with self._cond:
            jobs = list(self._running)
        for job in jobs:
            self._fail(batch, job, error)

    def _admit(self, batch: ContinuousBatch) -> None:
        """Drop cancelled and late jobs; fill free slots: running jobs' choices first, then the queue's."""
        now = time.monotonic()
        with self._cond:
            jobs = self._running + list(self._waiting)
        for job in jobs:
            if job.cancelled.is_set():
                self._fail(batch, job, None)
            elif now > job.deadline:
                self._fail(batch, job, timeout_error(job))
        with self._cond:
            self._waiting = deque(j for j in self._waiting if not j.finished)
        for job in self._running:
            self._fill(batch, job)
        while batch.free:
            with self._cond:
                if not self._waiting:
                    break
                job = self._waiting.popleft()
                self._running.append(job)
            self._fill(batch, job)

    def _fill(self, batch: ContinuousBatch, job: Job) -> None:
        while job.pending and batch.free:
            index = job.pending.popleft()
            prompt, kwargs = job.choices[index]
            try:
                job.running[batch.add(prompt, **kwargs)] = index
            except SlmkitError as e:
                self._fail(batch, job, ServerError(400, str(e)))
                return
            except Exception as e:
                self._fail(batch, job, failure(e))
                return

    def _step(self, batch: ContinuousBatch) -> None:
        if not len(batch):
            return
        owner = {h: job for job in self._running for h in job.running}
        try:
            results = batch.step()
        except StepError as e:  # a backend failure: a clean error for the requests it touched; the rest go on
            error = failure(e.cause)
            for job in {id(owner[h]): owner[h] for h in e.handles if h in owner}.values():
                self._fail(batch, job, error)  # its handles the step dropped are a no-op to remove again
            return
        for handle, chunk in results:
            job = owner[handle]
            index = job.running[handle]
            self._observe(job, index, chunk)
            job.emit(Event(index=index, chunk=chunk))
            if chunk.finish is not None:
                del job.running[handle]

    def _observe(self, job: Job, index: int, chunk: Chunk) -> None:
        """Token counts and latencies: time to the request's first token, then time per token."""
        now = time.monotonic()
        last_t, last_n = job.last.get(index, (job.arrived, 0))
        if index not in job.last:
            self.metrics.tokens(prompt=chunk.prompt_tokens)
        if chunk.tokens > last_n:
            if job.first_token is None:
                job.first_token = now
                self.metrics.first_token(now - job.arrived)
            elif last_n > 0:
                self.metrics.per_token((now - last_t) / (chunk.tokens - last_n))
            self.metrics.tokens(generated=chunk.tokens - last_n)
        job.last[index] = (now, chunk.tokens)
