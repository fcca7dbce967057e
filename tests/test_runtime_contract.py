"""The Runtime contract on every backend: same semantics, bad input, concurrency, greedy agreement."""
import threading

import numpy as np
import pytest

from slmkit import load
from slmkit.demo.dataset import examples
from slmkit.errors import SlmkitError
from slmkit.runtimes.reference import ReferenceRuntime


@pytest.fixture(scope="module", params=["F16.gguf", "fp32.onnx", "Q4_0.gguf", "int4.onnx"])
def runtime(request, demo_artifacts):
    with load(next(demo_artifacts.glob(f"*-{request.param}")), threads=1) as rt:
        yield rt


def test_greedy_agrees_with_the_fp16_reference(demo_artifacts):
    prompts = [e.prompt for e in examples("eval", 27)]
    with ReferenceRuntime(threads=2) as ref:
        want = [ref.generate(p, max_new_tokens=24) for p in prompts]
    for kind in ("F16.gguf", "fp32.onnx"):
        with load(next(demo_artifacts.glob(f"*-{kind}")), threads=2) as rt:
            got = [rt.generate(p, max_new_tokens=24) for p in prompts]
        agreement = sum(a == b for a, b in zip(got, want)) / len(prompts)
        assert agreement >= 0.9, (kind, agreement)


def test_bad_input_is_a_clear_error(runtime):
    with pytest.raises(SlmkitError, match="not valid UTF-8"):
        runtime.generate("cabin \udcff")
    with pytest.raises(SlmkitError, match="expected text"):
        runtime.generate(b"\xff\xfe")
    with pytest.raises(SlmkitError, match="empty input"):
        runtime.generate("")
    with pytest.raises(SlmkitError, match="max_new_tokens must be between"):
        runtime.generate("a", max_new_tokens=10**6)
    long = " cabin" * 400
    with pytest.raises(SlmkitError, match="exceeds the context .* truncate=True"):
        runtime.generate(long, max_new_tokens=8)
    assert isinstance(runtime.generate(long, max_new_tokens=8, truncate=True), str)


def test_eight_threads_on_one_runtime_never_mix(runtime):
    p = examples("eval", 1)[0].prompt
    want = runtime.generate(p, max_new_tokens=12, temperature=1.0, seed=9)
    got, errors = [], []

    def work():
        try:
            got.append(runtime.generate(p, max_new_tokens=12, temperature=1.0, seed=9))
        except Exception as e:  # noqa: BLE001 - any failure must show up in the assert
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == [want] * 8


def test_score_shapes_and_logprobs(runtime):
    ids = runtime.tokenize(examples("eval", 1)[0].text)
    logits = runtime.score(ids)
    assert logits.shape[0] == len(ids) and logits.dtype == np.float32
    lp = runtime.token_logprobs(ids)
    assert lp.shape == (len(ids) - 1,) and (lp <= 0).all()


def test_stream_chunks_count_tokens_and_say_why_they_ended(runtime):
    p = examples("eval", 1)[0].prompt
    n_prompt = len(runtime.tokenize(p))
    chunks = list(runtime.stream_chunks(p, max_new_tokens=5, temperature=1.0, seed=3))
    assert "".join(c.text for c in chunks) == runtime.generate(p, max_new_tokens=5, temperature=1.0, seed=3)
    assert [c.finish for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert all(c.prompt_tokens == n_prompt for c in chunks)
    tokens = [c.tokens for c in chunks]
    assert tokens == sorted(tokens) and 1 <= tokens[-1] <= 5
    assert chunks[-1].finish == ("length" if tokens[-1] == 5 else "stop")
    whole = runtime.generate(p, max_new_tokens=40)  # greedy: its text, then cut by a stop string from its middle
    stop = whole[len(whole) // 2:len(whole) // 2 + 2]
    cut = list(runtime.stream_chunks(p, max_new_tokens=40, stop=[stop]))
    assert "".join(c.text for c in cut) == whole[:whole.index(stop)] and cut[-1].finish == "stop"
