"""The demo training script: one seeded command that writes a loadable HF GPT-2 folder, reproducibly."""
import json

from slmkit.demo.train import main as train
from slmkit.files import sha256_file
from slmkit.model_folder import open_model_folder
from slmkit.runtimes.reference import ReferenceRuntime

ARGS = ["--examples", "1500", "--eval-examples", "27", "--vocab", "600", "--layers", "1", "--embd", "64",
        "--heads", "2", "--inner", "96", "--ctx", "64", "--batch", "2", "--steps", "3", "--warmup", "1",
        "--eval-every", "2", "--threads", "1"]


def test_training_is_seeded_and_writes_a_loadable_model(tmp_path, capsys):
    train(["--out", str(tmp_path / "a"), *ARGS])
    train(["--out", str(tmp_path / "b"), *ARGS])
    assert "held-out loss" in capsys.readouterr().out  # progress is logged
    assert sha256_file(tmp_path / "a" / "model.safetensors") == sha256_file(tmp_path / "b" / "model.safetensors")
    folder = open_model_folder(tmp_path / "a")
    assert folder.shape.n_inner == 96 and folder.dtypes == {"F16": len(folder.tensors)}
    log = json.loads((tmp_path / "a" / "train_log.json").read_text())
    assert log["steps"] == 3 and log["seed"] == 0 and log["log"][0]["held_loss"] > 0
    with ReferenceRuntime(tmp_path / "a", threads=1) as ref:
        assert "<|task:t2i|>" in ref.tokenizer.added_tokens
        assert isinstance(ref.generate("<|task:t2i|><|len:short|><|rel:high|>cozy cabin wallpaper<|out|>",
                                       max_new_tokens=4), str)
