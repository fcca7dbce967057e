"""Shipping a newly trained demo model: only a trained, evaluated folder replaces the shipped one, as a whole,
with the package's check thresholds kept."""
import os
import time

import pytest

from slmkit.demo.release import SHIPPED, release
from slmkit.errors import SlmkitError
from slmkit.synthetic import write_random_gpt2


@pytest.fixture
def trained(tmp_path):
    """A model folder as `slmkit.demo.train` and `evaluate --card` leave it, plus a checkpoint not to ship."""
    src = write_random_gpt2(tmp_path / "trained", n_embd=64, n_layer=1, n_head=2)
    (src / "train_log.json").write_text('{"steps": 3}\n')
    (src / "MODEL_CARD.md").write_text("# new card\n")
    (src / "state.pt").write_bytes(b"checkpoint")
    return src


@pytest.fixture
def shipped(tmp_path):
    dest = tmp_path / "package" / "model"
    dest.mkdir(parents=True)
    (dest / "slmkit-check.toml").write_text("[thresholds]\n")
    (dest / "MODEL_CARD.md").write_text("# old card\n")
    (dest / "stale.bin").write_bytes(b"from an older model")
    return dest


def test_release_replaces_the_folder_and_keeps_the_thresholds(trained, shipped):
    names = release(trained, shipped)
    assert "slmkit-check.toml" in names and "state.pt" not in names and "stale.bin" not in names
    assert set(names) - {"slmkit-check.toml"} <= set(SHIPPED)
    assert (shipped / "MODEL_CARD.md").read_text() == "# new card\n"
    assert (shipped / "model.safetensors").read_bytes() == (trained / "model.safetensors").read_bytes()
    assert sorted(p.name for p in shipped.parent.iterdir()) == ["model"]  # no staging or previous folder left


@pytest.mark.parametrize("fault", ["no card", "stale card", "no log", "not a model", "itself"])
def test_release_refuses_what_was_not_trained_and_evaluated(trained, shipped, fault):
    if fault == "no card":
        (trained / "MODEL_CARD.md").unlink()
    elif fault == "stale card":  # evaluated before the weights changed
        old = time.time() - 60
        os.utime(trained / "MODEL_CARD.md", (old, old))
    elif fault == "no log":
        (trained / "train_log.json").unlink()
    elif fault == "not a model":
        (trained / "model.safetensors").write_bytes(b"\0" * 64)
    before = sorted(p.name for p in shipped.iterdir())
    with pytest.raises(SlmkitError, match="MODEL_CARD|train_log|safetensors|shipped model already"):
        release(shipped if fault == "itself" else trained, shipped)
    assert sorted(p.name for p in shipped.iterdir()) == before
