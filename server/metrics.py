"""Counters, gauges and histograms rendered in the Prometheus text format (no client library needed)."""
from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Cumulative-bucket histogram of seconds."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self, name: str) -> list[str]:
        out, total = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts):
            total += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {total}')
        return out + [f"{name}_sum {self.sum:.6f}", f"{name}_count {total}"]


class Metrics:
    """What the server measures; safe to update from the worker and the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.prompt_tokens = 0
        self.generated_tokens = 0
        self.queue_depth = 0
        self.active = 0
        self.ttft = Histogram()
        self.token_latency = Histogram()

    def request(self, path: str, status: int) -> None:
        with self._lock:
            self.requests[(path, status)] += 1

    def tokens(self, prompt: int = 0, generated: int = 0) -> None:
        with self._lock:
            self.prompt_tokens += prompt
            self.generated_tokens += generated

    def first_token(self, seconds: float) -> None:
        with self._lock:
            self.ttft.observe(seconds)

    def per_token(self, seconds: float) -> None:
        with self._lock:
            self.token_latency.observe(seconds)

    def render(self) -> str:
        with self._lock:
            out = ["# HELP slmkit_requests_total HTTP requests by path and status.",
                   "# TYPE slmkit_requests_total counter"]
            out += [f'slmkit_requests_total{{path="{p}",status="{s}"}} {n}' for (p, s), n in sorted(self.requests.items())]
            for name, kind, value, help_ in (
                    ("slmkit_prompt_tokens_total", "counter", self.prompt_tokens, "Prompt tokens evaluated."),
                    ("slmkit_generated_tokens_total", "counter", self.generated_tokens, "Tokens generated."),
                    ("slmkit_queue_depth", "gauge", self.queue_depth, "Requests waiting for a slot."),
                    ("slmkit_active_requests", "gauge", self.active, "Requests holding a slot.")):
                out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", f"{name} {value}"]
            for name, hist, help_ in (
                    ("slmkit_time_to_first_token_seconds", self.ttft, "From arrival to the first generated token."),
                    ("slmkit_time_per_output_token_seconds", self.token_latency, "Between consecutive tokens of a request.")):
                out += [f"# HELP {name} {help_}", f"# TYPE {name} histogram", *hist.lines(name)]
            return "\n".join(out) + "\n"
