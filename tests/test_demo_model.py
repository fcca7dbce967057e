"""The shipped demo model: present, small, fp16, loadable offline, and really doing its task."""
import json

from slmkit.demo.evaluate import evaluate
from slmkit.model_folder import DEMO_MODEL, open_model_folder
from slmkit.runtimes.reference import ReferenceRuntime


def test_demo_model_ships_as_fp16_package_data_under_30_mb():
    f = open_model_folder()
    assert f.name == "slmkit-demo" and f.dtypes == {"F16": len(f.tensors)}
    assert f.weights.stat().st_size <= 30 * 10**6
    for name in ("tokenizer.json", "tokenizer_config.json", "MODEL_CARD.md", "train_log.json"):
        assert (DEMO_MODEL / name).is_file(), name
    log = json.loads((DEMO_MODEL / "train_log.json").read_text())
    assert log["examples"] >= 50_000 and log["held_ppl_fp32"] < 10


def test_demo_model_does_the_task_on_unseen_intents():
    with ReferenceRuntime(threads=2) as ref:
        greedy = evaluate(ref, 54)
        sampled = evaluate(ref, 54, temperature=0.8, top_p=0.95)
    assert greedy["format_rate"]["all"] >= 0.9 and sampled["format_rate"]["all"] >= 0.9
    assert greedy["length_rate"]["all"] >= 0.6 and sampled["length_rate"]["all"] >= 0.6
    # the desired-reward control steers what the model writes
    assert sampled["relevance"]["high"] > sampled["relevance"]["mid"] > sampled["relevance"]["low"] + 0.2
    assert greedy["heldout_ppl"] < 10
