"""``slmkit serve`` as clients meet it: a real server process on a free loopback port, the official
``openai`` client, raw HTTP for the error statuses, disconnects, a full queue, shutdown, and fuzzed bodies."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from slmkit.benchmarks.serve_load import ServerProcess
from slmkit.cli import cli
from slmkit.metrics import log_softmax

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

KEY = "test-key-123"


class Server(ServerProcess):
    """A ``slmkit serve`` child process (1 thread, threads that sleep when idle) with a raw HTTP client."""

    def __init__(self, artifact: Path, *args: str):
        super().__init__(artifact, "--threads", "1", *args, env={"OMP_WAIT_POLICY": "PASSIVE"})

    def request(self, *args, key: str | None = KEY, **kwargs) -> tuple[int, dict, dict | str]:
        return super().request(*args, key=key, **kwargs)


@pytest.fixture(scope="module")
def server(tiny_gguf):
    s = Server(tiny_gguf, "--api-key", KEY)
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)


def cli_generate(artifact: Path, prompt: str, *args: str) -> str:
    r = CliRunner().invoke(cli, ["generate", str(artifact), prompt, "--raw", *args])
    assert r.exit_code == 0, r.output
    return r.output


SAMPLING = {"temperature": 0.8, "top_p": 0.9, "seed": 5}
CLI_SAMPLING = ["--temperature", "0.8", "--top-p", "0.9", "--seed", "5", "--min-p", "0", "--presence-penalty", "0",
                "--no-repeat-ngram", "0"]


def test_completions_match_slmkit_generate_for_the_same_seed(server, client, tiny_gguf):
    r = client.completions.create(model=tiny_gguf.stem, prompt="cozy cabin wallpaper", max_tokens=24, **SAMPLING)
    expected = cli_generate(tiny_gguf, "cozy cabin wallpaper", *CLI_SAMPLING, "--max-new-tokens", "24")
    assert r.choices[0].text == expected[:-1]  # the CLI ends its line
    assert r.model == tiny_gguf.stem and r.object == "text_completion"
    assert r.usage.completion_tokens >= 1 and r.usage.prompt_tokens >= 3
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    if r.choices[0].finish_reason == "length":
        assert r.usage.completion_tokens == 24


def test_n_candidates_are_the_clis_candidates(client, tiny_gguf):
    """The server's n candidates are the CLI's for the same seed, up to float noise: the server decodes them as
    one batch, the CLI one sequence at a time (sums in another order), so a draw that lands on a near tie
    may go the other way (the demo v9 Q8_0 in the lower-bound environment: "... dreamy haze, urban" against
    "... dreamy haze, charcoal", two of many near-equal tokens of a flat step). So: at most one of three
    parts, and only late, after at least half its text (another seed parts right after the copied intent)."""
    # the demo's own prompt format: a bare "red bicycle" is out of its distribution, where near ties abound
    prompt = "<|task:t2i|><|len:short|><|rel:high|> red bicycle<|out|>"
    r = client.completions.create(model=tiny_gguf.stem, prompt=prompt, max_tokens=12, n=3, **SAMPLING)
    outs = cli_generate(tiny_gguf, prompt, *CLI_SAMPLING, "--max-new-tokens", "12", "-n", "3", "--stream")
    assert [c.index for c in r.choices] == [0, 1, 2]
    pairs = list(zip([c.text for c in r.choices], outs.split("\n")[:3], strict=True))
    parted = [(ours, theirs) for ours, theirs in pairs if ours != theirs]
    assert len(parted) <= 1, pairs
    for ours, theirs in parted:
        assert len(os.path.commonprefix([ours, theirs])) >= min(len(ours), len(theirs)) / 2, pairs


def test_streaming_gives_the_same_text_and_ends_with_a_finish_reason(client, tiny_gguf):
    whole = client.completions.create(model=tiny_gguf.stem, prompt="a quiet harbor", max_tokens=30, **SAMPLING)
    chunks = list(client.completions.create(model=tiny_gguf.stem, prompt="a quiet harbor", max_tokens=30,
                                            stream=True, **SAMPLING))
    assert len(chunks) >= 2
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_stream_usage_when_asked(server):
    body = {"prompt": "snowy village", "max_tokens": 8, "stream": True, "seed": 1,
            "stream_options": {"include_usage": True}}
    status, headers, text = server.request("POST", "/v1/completions", body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] >= 1
    # the same counts as the plain response's, n=2 included: the prompt once per prompt, not per choice
    # (the streamed usage used to count it once per choice)
    body.update(n=2)
    streamed = json.loads([ln[6:] for ln in server.request("POST", "/v1/completions", body)[2].split("\n")
                           if ln.startswith("data: ")][-2])["usage"]
    plain = server.request("POST", "/v1/completions", {**body, "stream": False, "stream_options": None})[2]["usage"]
    assert streamed == plain and plain["prompt_tokens"] == last["usage"]["prompt_tokens"]


def test_stop_strings_end_the_text_where_they_begin(client, tiny_gguf):
    full = client.completions.create(model=tiny_gguf.stem, prompt="cozy cabin", max_tokens=40, **SAMPLING)
    text = full.choices[0].text
    stop = text[len(text) // 2:len(text) // 2 + 3]
    assert stop.strip(), text
    cut = client.completions.create(model=tiny_gguf.stem, prompt="cozy cabin", max_tokens=40, stop=[stop], **SAMPLING)
    assert cut.choices[0].text == text[:text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_logprobs_are_the_models_log_probabilities_of_the_generated_tokens(client, tiny_gguf):
    import slmkit

    r = client.completions.create(model=tiny_gguf.stem, prompt="cozy cabin", max_tokens=12, logprobs=3, **SAMPLING)
    c = r.choices[0]
    lp = c.logprobs
    assert "".join(lp.tokens) == c.text and len(lp.tokens) == r.usage.completion_tokens
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    assert all(len(top) == 3 for top in lp.top_logprobs)
    assert all(x <= 0 for x in lp.token_logprobs)
    assert all(max(top.values()) >= x - 1e-6 for top, x in zip(lp.top_logprobs, lp.token_logprobs))
    # greedy: the same figures as the runtime's own scoring, step by step (the model's raw distribution); the
    # token ids come from that independent decode, not from re-tokenizing the text (which can merge differently)
    g = client.completions.create(model=tiny_gguf.stem, prompt="cozy cabin", max_tokens=8, logprobs=2, temperature=0)
    glp = g.choices[0].logprobs
    with slmkit.load(tiny_gguf, threads=1) as rt:
        ids = rt.tokenize("cozy cabin")
        for token, value, top in zip(glp.tokens, glp.token_logprobs, glp.top_logprobs):
            lp = log_softmax(rt.score(ids)[-1:])[0]
            # the argmax, or a token within 1e-3 of it (a near-tie that batched decode may break the other way)
            near = [int(i) for i in np.flatnonzero(lp >= lp.max() - 1e-3) if rt.detokenize([int(i)]) == token]
            assert near and list(top)[0] == token, (token, rt.detokenize([int(np.argmax(lp))]))
            tok = near[0]
            assert abs(lp[tok] - value) < 1e-3
            ids.append(tok)
    assert len(glp.tokens) == g.usage.completion_tokens


def test_streamed_logprobs_cover_the_streamed_text_and_stop_at_a_stop_string(client, tiny_gguf, server):
    whole = client.completions.create(model=tiny_gguf.stem, prompt="a quiet harbor", max_tokens=20, logprobs=0, **SAMPLING)
    chunks = list(client.completions.create(model=tiny_gguf.stem, prompt="a quiet harbor", max_tokens=20,
                                            logprobs=0, stream=True, **SAMPLING))
    tokens = [t for ch in chunks if ch.choices[0].logprobs for t in ch.choices[0].logprobs.tokens]
    assert tokens == whole.choices[0].logprobs.tokens
    assert all(top == {} for top in whole.choices[0].logprobs.top_logprobs)  # logprobs=0: the chosen tokens only
    text = whole.choices[0].text
    stop = text[len(text) // 2:len(text) // 2 + 2]
    cut = client.completions.create(model=tiny_gguf.stem, prompt="a quiet harbor", max_tokens=20, logprobs=0,
                                    stop=[stop], **SAMPLING)
    kept, cut_text = cut.choices[0].logprobs.tokens, cut.choices[0].text
    # the tokens that hold the kept text, not those past the stop string
    assert "".join(kept).startswith(cut_text) and all(o < len(cut_text) for o in cut.choices[0].logprobs.text_offset)
    assert whole.choices[0].logprobs.tokens[:len(kept)] == kept
    off = server.request("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 4})[2]
    assert off["choices"][0]["logprobs"] is None


def test_prompts_endpoint_writes_the_control_tokens(server, tiny_gguf):
    status, _, body = server.request("POST", "/v1/prompts", {"intent": "jazz for studying", "task": "recommend",
                                                             "n": 2, "max_tokens": 10})
    assert status == 200, body
    assert body["task"] == "recommend" and len(body["candidates"]) == 2
    # the same candidates the CLI gives for the same intent and settings
    r = CliRunner().invoke(cli, ["generate", str(tiny_gguf), "jazz for studying", "--task", "recommend", "-n", "2",
                                 "--max-new-tokens", "10"])
    assert r.exit_code == 0 and body["candidates"] == r.output.split("\n")[:2]


def test_models_health_openapi_and_metrics(server, client):
    models = client.models.list().data
    assert len(models) == 1 and models[0].owned_by == "slmkit"
    status, _, health = server.request("GET", "/health", key=None)
    assert status == 200 and health["status"] == "ok" and health["backend"] == "llama.cpp"
    status, _, schema = server.request("GET", "/openapi.json", key=None)
    assert status == 200 and {"/v1/completions", "/v1/prompts", "/v1/models"} <= set(schema["paths"])
    status, _, text = server.request("GET", "/metrics")
    assert status == 200
    for name in ("slmkit_requests_total", "slmkit_generated_tokens_total", "slmkit_queue_depth",
                 "slmkit_time_to_first_token_seconds_bucket", "slmkit_time_per_output_token_seconds_count"):
        assert name in text
    generated = next(line for line in text.splitlines() if line.startswith("slmkit_generated_tokens_total "))
    assert int(generated.split()[1]) > 0


@pytest.mark.parametrize("body,raw,key,status,code", [
    ({"prompt": "hi"}, None, "wrong-key", 401, "invalid_api_key"),
    ({"prompt": "hi"}, None, None, 401, "invalid_api_key"),
    (None, b"{not json", KEY, 400, None),
    ({"prompt": "hi", "bogus": 1}, None, KEY, 400, None),
    ({"prompt": "hi", "max_tokens": 100000}, None, KEY, 400, None),
    ({"prompt": "hi", "temperature": -1}, None, KEY, 400, None),
    ({"prompt": "hi", "model": "gpt-4"}, None, KEY, 404, "model_not_found"),
    ({"prompt": ""}, None, KEY, 400, None),
    ({"prompt": "hi", "logprobs": 6}, None, KEY, 400, None),  # OpenAI's limit is 5
    ({"prompt": "hi", "logprobs": -1}, None, KEY, 400, None),
    ({"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, None, KEY, 400, None),
    ({"prompt": "word " * 400}, None, KEY, 400, None),  # longer than the context
    (None, b"x" * (2 << 20), KEY, 413, "body_too_large"),
])
def test_bad_requests_get_openai_style_errors(server, body, raw, key, status, code):
    got, _, reply = server.request("POST", "/v1/completions", body, key=key, raw=raw)
    assert got == status, reply
    assert set(reply) == {"error"} and reply["error"]["message"]
    assert "Traceback" not in reply["error"]["message"]
    if code:
        assert reply["error"]["code"] == code


def test_unknown_paths_and_methods(server):
    assert server.request("GET", "/v1/engines")[0] == 404
    assert server.request("GET", "/v1/completions")[0] == 405


def test_a_client_that_disconnects_mid_stream_stops_its_generation(server):
    def generated() -> int:
        text = server.request("GET", "/metrics")[2]
        return int(next(ln for ln in text.splitlines() if ln.startswith("slmkit_generated_tokens_total ")).split()[1])

    before = generated()
    sock = socket.create_connection(("127.0.0.1", server.port))
    body = json.dumps({"prompt": "a", "max_tokens": 255, "stream": True, "temperature": 0.9, "seed": 3,
                       "stop": []}).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    assert b"200 OK" in sock.recv(200)
    sock.close()
    deadline = time.time() + 10
    while time.time() < deadline and server.request("GET", "/health", key=None)[2]["active"]:
        time.sleep(0.05)
    assert server.request("GET", "/health", key=None)[2]["active"] == 0
    assert server.request("POST", "/v1/completions", {"prompt": "still fine", "max_tokens": 4})[0] == 200
    assert generated() - before <= 255 + 4


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=8)
FIELDS = {"prompt": st.one_of(st.text(max_size=40), st.lists(st.integers(-5, 3000), max_size=8), JSON),
          "max_tokens": st.one_of(st.integers(-5, 300), JSON), "temperature": st.one_of(st.floats(-1, 3), JSON),
          "top_p": st.floats(-0.5, 1.5), "n": st.integers(-1, 20), "stop": st.one_of(st.text(max_size=3), JSON),
          "seed": st.one_of(st.integers(-2**70, 2**70), JSON), "stream": st.booleans(),
          "presence_penalty": st.floats(-3, 3), "min_p": st.floats(-1, 2), "top_k": st.integers(-3, 10**6),
          "no_repeat_ngram": st.integers(-2, 40), "model": st.text(max_size=10), "intent": JSON | st.text(max_size=30),
          "task": st.sampled_from(["t2i", "search", "x"]), "length": st.text(max_size=6)}


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/v1/completions", "/v1/prompts"]),
       body=st.fixed_dictionaries({}, optional=FIELDS) | JSON)
def test_fuzzed_bodies_never_get_a_server_error(server, path, body):
    if isinstance(body, dict) and isinstance(body.get("max_tokens"), int):
        body["max_tokens"] = min(body["max_tokens"], 24)  # keep each example short
    status, _, reply = server.request("POST", path, body)
    assert status < 500, reply
    if status >= 400:
        assert isinstance(reply, dict) and set(reply) == {"error"}


def test_server_is_healthy_after_the_fuzzing(server):
    assert server.request("GET", "/health", key=None)[0] == 200
    text = server.request("GET", "/metrics")[2]
    assert 'status="500"' not in text


# The tiny random model almost never ends a text by itself: its requests run to max_tokens.
LONG = {"prompt": "a", "max_tokens": 255, "n": 16, "temperature": 1.0, "seed": 1}


def test_a_full_queue_answers_503_with_retry_after(tiny_gguf):
    s = Server(tiny_gguf, "--parallel", "1", "--max-queue", "1")
    try:
        results: list[tuple[int, dict]] = []

        def call() -> None:
            status, headers, _ = s.request("POST", "/v1/completions", LONG, key=None)
            results.append((status, headers))

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        statuses = sorted(st_ for st_, _ in results)
        assert statuses.count(200) >= 2 and 503 in statuses, statuses
        assert all(h.get("retry-after") or h.get("Retry-After") for st_, h in results if st_ == 503)
        assert s.request("GET", "/health", key=None)[0] == 200
    finally:
        assert s.stop() == 0


def test_a_request_past_the_timeout_gets_504(tiny_gguf):
    s = Server(tiny_gguf, "--parallel", "1", "--timeout", "0.2")
    try:
        status, _, reply = s.request("POST", "/v1/completions", LONG, key=None)
        assert status == 504 and reply["error"]["code"] == "timeout", reply
        assert s.request("GET", "/health", key=None)[0] == 200
    finally:
        assert s.stop() == 0


def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(tiny_gguf):
    s = Server(tiny_gguf)
    result: list[tuple[int, dict]] = []
    t = threading.Thread(target=lambda: result.append(s.request("POST", "/v1/completions", LONG, key=None)[::2]))
    t.start()
    time.sleep(0.3)
    assert s.stop() == 0
    t.join(30)
    assert result and result[0][0] == 200
    choices = result[0][1]["choices"]
    assert len(choices) == 16 and all(c["finish_reason"] in ("length", "stop") for c in choices)  # finished, not cut


def test_refuses_a_public_address_without_an_api_key():
    r = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert r.exit_code == 1 and "refusing to listen on 0.0.0.0 without an API key" in r.output


def test_ignore_eos_runs_every_choice_to_max_tokens(client, tiny_gguf):
    r = client.completions.create(model=tiny_gguf.stem, prompt="a", max_tokens=40, n=4, temperature=1.0, seed=2,
                                  extra_body={"ignore_eos": True})
    assert [c.finish_reason for c in r.choices] == ["length"] * 4 and r.usage.completion_tokens == 160


def test_the_load_benchmark_runs_and_reports_each_level(tiny_gguf, tmp_path):
    from slmkit.benchmarks.serve_load import main

    main([str(tiny_gguf), "--clients", "1,2", "--requests", "2", "--max-tokens", "8", "--threads", "1",
          "--engine", "--json", str(tmp_path / "load.json")])
    report = json.loads((tmp_path / "load.json").read_text())
    assert [lv["clients"] for lv in report["levels"]] == [1, 2]
    for lv in report["levels"]:
        assert lv["failed"] == 0 and lv["requests"] == 2 * lv["clients"] and lv["tokens"] == 8 * lv["requests"]
        assert lv["tok_s"] > 0 and lv["latency_p95_s"] >= lv["latency_p50_s"] > 0
    # the engine alone: every sequence ran to --max-tokens, and the backend's share is a share
    assert [(e["sequences"], e["tokens"]) for e in report["engine"]] == [(1, 8), (2, 16)]
    assert all(e["decode_tok_s"] > 0 and 0 < e["backend_share"] < 1 for e in report["engine"])


def test_the_peer_runs_with_the_servers_settings_and_is_parsed(tmp_path):
    """--peer runs llama-batched-bench with the same file, threads and lengths; its JSONL rows are read."""
    import argparse

    from slmkit.benchmarks.serve_load import run_peer

    fake = tmp_path / "llama-batched-bench"
    fake.write_text("#!/bin/sh\necho \"$@\" > " + str(tmp_path / "argv") + "\n"
                    "echo 'main: n_kv_max = 800'\n"
                    "echo '{\"pp\": 32, \"tg\": 64, \"pl\": 1, \"speed_pp\": 900.5, \"speed_tg\": 280.25}'\n"
                    "echo '{\"pp\": 32, \"tg\": 64, \"pl\": 8, \"speed_pp\": 950.0, \"speed_tg\": 440.0}'\n")
    fake.chmod(0o755)
    args = argparse.Namespace(threads=2, prompt_tokens=32, max_tokens=64, time_limit=60)
    rows = run_peer(fake, Path("m.gguf"), args, [1, 8])
    assert rows == [{"sequences": 1, "tg_tok_s": 280.25, "pp_tok_s": 900.5},
                    {"sequences": 8, "tg_tok_s": 440.0, "pp_tok_s": 950.0}]
    argv = (tmp_path / "argv").read_text().split()
    for flag, value in (("-m", "m.gguf"), ("-t", "2"), ("-npp", "32"), ("-ntg", "64"), ("-npl", "1,8")):
        assert argv[argv.index(flag) + 1] == value
