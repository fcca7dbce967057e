"""The shipped demo model: present, small, fp16, loadable offline, and serving intents people write."""
import json

import pytest

from slmkit.demo.evaluate import evaluate, set_figures
from slmkit.prompts import DECODING
from slmkit.model_folder import DEMO_MODEL, open_model_folder
from slmkit.runtimes.reference import ReferenceRuntime


def test_demo_model_ships_as_fp16_package_data_under_50_mb():
    f = open_model_folder()
    assert f.name == "slmkit-demo" and f.dtypes == {"F16": len(f.tensors)}
    assert f.weights.stat().st_size <= 50 * 10**6
    for name in ("tokenizer.json", "tokenizer_config.json", "MODEL_CARD.md", "train_log.json"):
        assert (DEMO_MODEL / name).is_file(), name
    log = json.loads((DEMO_MODEL / "train_log.json").read_text())
    init = log.get("init") or {}  # a fine-tune (train --init) counts the run it started from too
    # at least 100k examples, and broad: about two examples per distinct intent
    assert log["examples"] + (init.get("examples") or 0) >= 100_000 and log["intents"] >= 0.45 * log["examples"]
    # the recipe fits the 2-hour CPU budget: on the project's 2-core CPU (bf16), data excluded
    assert log["device"] == "cpu" and log["threads"] <= 2 and log["train_seconds"] + (init.get("train_seconds") or 0) <= 2 * 3600


@pytest.fixture(scope="module")
def figures():
    """Sampled generations with the CLI's default sampling, two candidates per example: every free-form example
    (216; its first half alone is no fair sample: v15's high-mid margin there is 0.03-0.06 over three seeds, on the
    whole set 0.10-0.11) and 108 lexicon-style ones."""
    with ReferenceRuntime(threads=2) as ref:
        return {split: evaluate(ref, n, split=split, decoding=DECODING, candidates=2)
                for split, n in (("eval", 216), ("lexicon", 108))}


def test_demo_model_serves_free_form_intents_it_never_saw_words_of(figures):
    free, lexicon = figures["eval"], figures["lexicon"]
    assert free["format_rate"]["all"] >= 0.9 and free["length_rate"]["all"] >= 0.6
    # copies words it never saw: high relevance requested -> the intent's own words in the output
    assert free["carries_intent_word_high"] >= 0.95
    # as relevant as on intents made of words it was trained on (the bar: within 10%)
    assert free["relevance"]["high"] >= 0.9 * lexicon["relevance"]["high"]
    assert free["repeated_piece_rate"] <= 0.05


def test_the_desired_reward_control_orders_relevance(figures):
    for split, r in figures.items():
        rel = r["relevance"]
        # clear margins: the full evaluation (216 x 4 outputs) meets the 0.08 (v15: 0.111 and 0.56 free-form,
        # 0.108 with other seeds); this sample (216 x 2) gives 0.103 and 0.58, and other CPUs sample other tokens
        assert rel["high"] > rel["mid"] + 0.06 and rel["mid"] > rel["low"] + 0.05, (split, rel)


def test_intents_typed_with_capitals_codes_and_accents_come_through():
    """The hand-written typed intents (data/typed_intents.tsv: "Ferrari F40 ...", "iPhone 15 Pro ...", "Kraków
    ..."), high relevance, the CLI's sampling. The full measure (48 x 4, `evaluate --set typed`): v15 keeps 71%
    exactly as typed, a word in 100%, relevance 0.71 (v11: 63%, 98.4%, 0.71; v8, trained on lower-case intents
    only: 13%, 85%, 0.47). This sample of 48 x 2: 75%, a word in 100% ("Kraków" comes out as "Krakì")."""
    with ReferenceRuntime(threads=2) as ref:
        fig = set_figures(ref, DECODING, candidates=2)
    assert fig["carries_intent_word"] >= 0.93 and fig["copies_as_typed"] >= 0.45, fig["samples"][:8]
    assert fig["relevance_high"] >= 0.6 and fig["broken_characters"] == 0 and fig["repeated_piece_rate"] <= 0.05


def test_everyday_requests_come_back_as_typed():
    """The hand-written everyday set (data/everyday_intents.tsv: "cabin in the snowy mountains", "best running shoes
    for flat feet"), lower case as typed, high relevance, the CLI's sampling. The full measure (48 x 4,
    `evaluate --set everyday`): v15 keeps 99.5% exactly as typed (this sample of 48 x 2: 100%); v11 93.8%
    ("cabin in the snowy avenues"); v9, whose data had "a"/"an" only, 86.5% ("owl in the storm" for "owl in the
    forest at night")."""
    with ReferenceRuntime(threads=2) as ref:
        fig = set_figures(ref, DECODING, "everyday", candidates=2)
    assert fig["copies_as_typed"] >= 0.85 and fig["carries_intent_word"] >= 0.95, fig["misses"][:8]
    assert fig["broken_characters"] == 0 and fig["repeated_piece_rate"] <= 0.05


def test_the_shipped_artifact_is_the_shipped_model_quantized():
    """The Q8_0 GGUF that runs the demo without torch comes from these very weights (rebuild it with
    python -m slmkit.demo.shipped whenever the model changes)."""
    from slmkit.files import sha256_file
    from slmkit.manifest import read_manifest
    from slmkit.model_folder import DEMO_ARTIFACTS

    manifest = read_manifest(DEMO_ARTIFACTS)
    assert manifest["source"]["sha256"] == sha256_file(DEMO_MODEL / "model.safetensors")
    [(name, entry)] = manifest["artifacts"].items()
    assert entry["quant"] == "q8_0" and entry["sha256"] == sha256_file(DEMO_ARTIFACTS / name)
    assert entry["checks"]["finite_logits"]["passed"]


def test_without_torch_the_demo_runs_from_its_shipped_artifact():
    """A runtime-only install (slmkit[gguf], no torch): `slmkit generate INTENT` works out of the box, with
    the same text as the shipped artifact given explicitly, and says which model answered."""
    import subprocess
    import sys

    from slmkit.model_folder import DEMO_ARTIFACTS

    hide = "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; from slmkit.cli import main; "
    args = ["generate", "summer beach party poster", "--seed", "3", "--max-new-tokens", "24"]
    p = subprocess.run([sys.executable, "-c", hide + f"sys.argv = ['slmkit'] + {args!r}; main()"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "note: torch is not installed: the demo model runs from its shipped artifact" in p.stderr
    q = subprocess.run([sys.executable, "-m", "slmkit", "generate", str(DEMO_ARTIFACTS), *args[1:]],
                       capture_output=True, text=True, timeout=300)
    assert q.returncode == 0 and p.stdout == q.stdout and p.stdout.strip()


def test_the_cli_prints_outputs_without_the_formats_opening_space():
    """The demo format's output opens with a space (the prompt gives the intent one, so a copied word is the
    same ids); `slmkit generate` prints the output without it, streamed or not, and copies the intent."""
    from click.testing import CliRunner

    from slmkit.cli import cli
    from slmkit.model_folder import DEMO_ARTIFACTS

    args = ["generate", str(DEMO_ARTIFACTS), "vintage red bicycle", "-n", "2", "--seed", "4"]
    plain, streamed = CliRunner().invoke(cli, args), CliRunner().invoke(cli, [*args, "--stream"])
    assert plain.exit_code == streamed.exit_code == 0, plain.output
    assert plain.output == streamed.output
    lines = plain.output.splitlines()
    assert len(lines) == 2 and all(ln and not ln.startswith(" ") for ln in lines)
    assert all("vintage red bicycle" in ln for ln in lines)


def test_make_demo_model_runs_the_shipped_recipe():
    """`make demo-model` trains what the shipped train_log.json says was trained: v11's command, then the
    fine-tune's, options alike (paths and --resume aside)."""
    import shlex
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("no make")
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run(["make", "-n", "demo-model", "DEMO_TRAIN=/nonexistent/demo-train", "STAMP="], cwd=root,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.replace("\\\n", " ").splitlines() if "slmkit.demo.train" in ln]

    def options(command: str) -> list[str]:
        words, out = shlex.split(command.split("slmkit.demo.train", 1)[1].split("$(")[0]), []
        for i, w in enumerate(words):
            if w in ("--out", "--checkpoint", "--init") or (i and words[i - 1] in ("--out", "--checkpoint", "--init")):
                continue
            out.append(w)
        return out

    log = json.loads((DEMO_MODEL / "train_log.json").read_text())
    shipped = [log["init"]["command"], log["command"]] if log.get("init") else [log["command"]]
    assert [options(ln) for ln in lines] == [options(c) for c in shipped]
