"""Hostile files: property-based mutations of real GGUF, ONNX, safetensors, config.json and tokenizer
files (tokenizer.json; vocab.json, merges.txt, added_tokens.json) give a clean one-line error or a correct load; untrusted ONNX content is refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.fuzz import TARGETS, mutate, ops_for, original_fingerprint, prepare, regions, run_case
from slmkit.errors import SlmkitError
from slmkit.onnx_file import inspect_onnx

# Bounded for CI: derandomized (the same cases every run); the larger campaign is devtools/fuzz.py.
EXAMPLES = {"gguf": 150, "onnx": 100, "safetensors": 150, "config": 200, "tokenizer": 100, "vocab": 100,
            "merges": 100, "added_tokens": 100}


@pytest.fixture(scope="module")
def fuzz_base(tmp_path_factory, tiny_demo) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _case_strategy(kind: str, original: bytes):
    spans = [st.integers(lo, hi - 1) for lo, hi in regions(kind, original)]  # headers, tensor tables
    return st.tuples(st.sampled_from(ops_for(kind)), st.one_of(*spans, st.integers(0, 2**31)),
                     st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_mutated_files_fail_cleanly_or_load(kind, fuzz_base, tiny_demo):
    folder, original = prepare(kind, fuzz_base, tiny_demo)
    original_fingerprint(kind, folder)  # what the unmutated file gives: "ok" means exactly this
    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES[kind], deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(case=_case_strategy(kind, original))
    def check(case):
        result = run_case(kind, folder, original, *case)  # raises on anything but a clean SlmkitError
        seen[result] = seen.get(result, 0) + 1

    check()
    assert seen.get("error", 0) > 0, seen  # the mutations do reach the validation
    assert set(seen) <= {"ok", "changed", "nonfinite", "error", "skipped"}, seen
    assert (folder / TARGETS[kind]).read_bytes() == original


def test_a_mutation_that_loads_is_checked_against_what_the_original_gives(fuzz_base, tiny_demo):
    """A flipped bit in the weights' data loads without error but gives other weights: "changed", not
    "ok". Caught: the campaign's old rule (no exception means loaded correctly) called this "ok"."""
    folder, original = prepare("safetensors", fuzz_base, tiny_demo)
    original_fingerprint("safetensors", folder)
    assert run_case("safetensors", folder, original, "flip", len(original) - 3, 6) == "changed"
    assert run_case("safetensors", folder, original, "flip", len(original) - 3, 6 + 8) == "changed"  # same flip
    assert run_case("safetensors", folder, original, "truncate", 4, 0) == "error"
    assert (folder / TARGETS["safetensors"]).read_bytes() == original


def test_mutate_is_deterministic_and_bounded():
    data = bytes(range(256)) * 4
    assert mutate(data, "truncate", 10, 0) == data[:10]
    assert len(mutate(data, "flip", 5000, 3)) == len(data)
    assert mutate(data, "u64", 0, 2)[:8] == b"\xff" * 8
    assert mutate(b'{"a": {"b": 1}}', "json_value", 1, 2) == b'{"a": {"b": -1}}'


@pytest.fixture(scope="module")
def onnx_folder(fuzz_base, tiny_demo) -> Path:
    folder, _ = prepare("onnx", fuzz_base, tiny_demo)
    return folder


def _edit_onnx(src: Path, dest: Path, edit) -> Path:
    import onnx

    model = onnx.load(str(src))
    edit(model)
    shutil.copytree(src.parent, dest)
    onnx.save(model, str(dest / src.name))
    return dest / src.name


def test_custom_op_domains_are_refused(onnx_folder, tmp_path):
    import onnx

    def add_custom(model):
        model.opset_import.append(onnx.helper.make_opsetid("evil.ops", 1))
        node = model.graph.node[0]
        node.domain = "evil.ops"

    path = _edit_onnx(onnx_folder / TARGETS["onnx"], tmp_path / "custom", add_custom)
    with pytest.raises(SlmkitError, match="unknown domain.*evil.ops.*custom ops are refused"):
        inspect_onnx(path)
    from slmkit.loader import load

    with pytest.raises(SlmkitError, match="evil.ops"):
        load(path, verify=False)


def test_external_data_outside_the_folder_is_refused(onnx_folder, tmp_path):
    import onnx

    def point_outside(model):
        t = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", "../../../etc/passwd"), ("offset", "0"), ("length", "64")):
            e = t.external_data.add()
            e.key, e.value = k, v

    path = _edit_onnx(onnx_folder / TARGETS["onnx"], tmp_path / "escape", point_outside)
    with pytest.raises(SlmkitError, match="points outside the model's folder"):
        inspect_onnx(path)


def test_the_real_exports_pass_inspection(onnx_folder):
    info = inspect_onnx(onnx_folder / TARGETS["onnx"])
    assert {"input_ids", "attention_mask", "position_ids"} <= set(info.inputs) and info.outputs[0] == "logits"
    assert info.domains <= {"", "ai.onnx", "com.microsoft"}


def test_a_graph_onnx_checker_rejects_never_reaches_onnxruntime(onnx_folder, tmp_path):
    """Well-formed protobuf, built-in domain, but no such operator: onnx.checker stops it (a file that a
    verified manifest vouches for was checked when slmkit wrote it)."""
    def unknown_op(model):
        model.graph.node[0].op_type = "NoSuchOperator"

    path = _edit_onnx(onnx_folder / TARGETS["onnx"], tmp_path / "unknown-op", unknown_op)
    inspect_onnx(path)  # the wire walk alone lets it through
    from slmkit.loader import load

    with pytest.raises(SlmkitError, match=r"not a valid ONNX model \(onnx.checker: .*NoSuchOperator"):
        load(path, verify=False)
