"""Request and response bodies (pydantic, so the OpenAPI schema at ``/openapi.json`` is exact).

Value ranges (temperature, top-p, penalties, n, max_tokens against the context) are checked where the
runtime checks them (``slmkit.runtimes.sampling``), so the server and ``slmkit generate`` agree on what
is valid; the models here fix types and the fields OpenAI's completions API defines.
"""
from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from slmkit.prompts import DECODING

MAX_N = 16
MAX_STOP = 4
MAX_LOGPROBS = 5  # OpenAI's limit for the completions API

Prompt = Union[str, list[str], list[int], list[list[int]]]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class CompletionRequest(BaseModel):
    """``POST /v1/completions`` as OpenAI defines it, plus slmkit's sampler fields (top_k, min_p,
    no_repeat_ngram) and llama.cpp server's ``ignore_eos`` (run to max_tokens: for benchmarks). Unknown
    fields are refused, as OpenAI refuses them."""
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: Prompt
    max_tokens: int | None = 16
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = Field(1, ge=1, le=MAX_N)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logprobs: int | None = None
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    top_k: int = 0
    min_p: float = 0.0
    no_repeat_ngram: int = 0
    ignore_eos: bool = False


class PromptsRequest(BaseModel):
    """``POST /v1/prompts``: the paper's use. The server writes the control tokens; the sampling defaults
    are ``slmkit generate``'s."""
    model_config = ConfigDict(extra="forbid")

    intent: str = Field(min_length=1, max_length=2000)
    task: Literal["t2i", "search", "recommend"] = "t2i"
    length: Literal["short", "medium", "long"] = "medium"
    relevance: Literal["high", "mid", "low"] = "high"
    n: int = Field(1, ge=1, le=MAX_N)
    seed: int = 0
    max_tokens: int = 64
    temperature: float = float(DECODING["temperature"])
    top_p: float = float(DECODING["top_p"])
    min_p: float = float(DECODING["min_p"])
    top_k: int = 0
    presence_penalty: float = float(DECODING["presence_penalty"])
    frequency_penalty: float = 0.0
    no_repeat_ngram: int = int(DECODING["no_repeat_ngram"])


class Logprobs(BaseModel):
    """OpenAI's legacy completion logprobs: per generated token, its text, log-probability, the top
    alternatives and where it starts in the choice's text."""
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: Logprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class Prompts(BaseModel):
    object: Literal["prompts"] = "prompts"
    model: str
    intent: str
    task: str
    length: str
    relevance: str
    candidates: list[str]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "slmkit"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

