"""The demo training script: one seeded command that writes a loadable HF GPT-2 folder, reproducibly."""
import json
import random

import pytest

from slmkit.demo.dataset import Example, Plan, make_output, write_jsonl
from slmkit.demo.train import main as train
from slmkit.errors import SlmkitError
from slmkit.files import sha256_file
from slmkit.model_folder import open_model_folder
from slmkit.prompts import LENGTHS, RELEVANCE, TASKS
from slmkit.runtimes.reference import ReferenceRuntime

ARGS = ["--examples", "400", "--eval-examples", "27", "--vocab", "600", "--layers", "1", "--embd", "64",
        "--heads", "2", "--inner", "96", "--ctx", "64", "--batch", "2", "--warmup", "1", "--eval-every", "2",
        "--threads", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small training file made without the scorer (the real one is generated with MiniLM)."""
    rng = random.Random(0)
    intents = ["still harbor", "a tailor sewing quilts", "Velora granola tin", "moss on granite steps"]
    near, far = ["moored boats", "brine", "thread spool", "croissant", "lichen"], ["ledger", "tax form", "asphalt"]
    rows = []
    for k in range(400):
        task, length, rel = rng.choice(list(TASKS)), rng.choice(list(LENGTHS)), rng.choice(list(RELEVANCE))
        intent = intents[k % len(intents)]
        rows.append(Example(intent, task, length, rel, make_output(rng, intent, task, length, Plan("full", 0.8),
                                                                   near, far)))
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    write_jsonl(path, rows)
    return path


def test_training_is_seeded_and_writes_a_loadable_model(tmp_path, capsys, data):
    train(["--out", str(tmp_path / "a"), "--data", str(data), "--steps", "3", *ARGS])
    train(["--out", str(tmp_path / "b"), "--data", str(data), "--steps", "3", *ARGS])
    assert "held-out loss" in capsys.readouterr().out  # progress is logged
    assert sha256_file(tmp_path / "a" / "model.safetensors") == sha256_file(tmp_path / "b" / "model.safetensors")
    folder = open_model_folder(tmp_path / "a")
    assert folder.shape.n_inner == 96 and folder.dtypes == {"F16": len(folder.tensors)}
    log = json.loads((tmp_path / "a" / "train_log.json").read_text())
    assert log["steps"] == 3 and log["seed"] == 0 and log["log"][0]["held_loss"] > 0
    assert log["data"]["eval_words_in_training_data"] == 0 and log["tokenizer"]["vocab"] <= 600
    with ReferenceRuntime(tmp_path / "a", threads=1) as ref:
        assert "<|task:t2i|>" in ref.tokenizer.added_tokens
        assert isinstance(ref.generate("<|task:t2i|><|len:short|><|rel:high|>quiet harbor<|out|>",
                                       max_new_tokens=4), str)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, data):
    """Checkpoint at step 2 of 4, resume: the same weights as 4 steps in one go (model, optimizer,
    random states and the batch order are all restored). Fails if any of them is not."""
    train(["--out", str(tmp_path / "whole"), "--data", str(data), "--steps", "4", *ARGS])
    ckpt = tmp_path / "ckpt"
    with pytest.raises(SystemExit):  # stop the run after its first checkpoint, as a session end would
        train(["--out", str(tmp_path / "x"), "--data", str(data), "--steps", "4", "--checkpoint", str(ckpt),
               "--stop-after", "2", *ARGS])
    train(["--out", str(tmp_path / "resumed"), "--data", str(data), "--steps", "4", "--checkpoint", str(ckpt),
           "--resume", *ARGS])
    assert sha256_file(tmp_path / "whole" / "model.safetensors") == \
        sha256_file(tmp_path / "resumed" / "model.safetensors")


def test_resume_without_a_checkpoint_is_one_clear_error(tmp_path, data):
    with pytest.raises(SlmkitError, match="--resume needs"):
        train(["--out", str(tmp_path / "m"), "--data", str(data), "--resume", *ARGS])


def test_cut_words_are_cut_alike_throughout_their_text(data):
    """In the cut share of the texts each word is cut at one place, so its copies in the output are the
    very ids of the intent; the texts still decode to themselves."""
    from slmkit.demo.dataset import read_jsonl
    from slmkit.demo.train import encode_with_splits, train_tokenizer

    texts = [e.text for e in read_jsonl(data)][:200]
    tok = train_tokenizer(texts, 600)
    cut = encode_with_splits(tok, texts, random.Random(3), rate=1.0)
    plain = [e.ids for e in tok.encode_batch(texts)]
    assert sum(c != p for c, p in zip(cut, plain)) > 100  # the cuts happened
    copied = 0
    for text, ids in zip(texts, cut):
        assert tok.decode(ids, skip_special_tokens=False) == text
        intent = text.split("|>")[3].split("<|")[0]  # " INTENT", between the controls and <|out|>
        sep = ids.index(tok.token_to_id("<|out|>"))
        if intent in text.split("<|out|>")[1]:  # the output holds the whole intent, after a space
            copied += 1
            assert any(ids[k:k + sep - 3] == ids[3:sep] for k in range(sep, len(ids))), \
                f"the output does not copy the intent's ids: {intent!r}"
    assert copied > 100


def test_copy_drills_swap_a_copied_word_for_rare_tokens_in_intent_and_output_alike(data):
    """--copy-drills: a copied intent word becomes a made-up word of rarely seen tokens, everywhere in its
    text, so the output still copies the intent's ids; a share of 0 changes nothing."""
    from collections import Counter

    from slmkit.demo.dataset import read_jsonl
    from slmkit.demo.train import copy_drills, train_tokenizer
    from slmkit.demo.words import content_words, excluded_words

    texts = [e.text for e in read_jsonl(data)]
    tok = train_tokenizer(texts, 600)
    plain = [e.ids for e in tok.encode_batch(texts)]
    ids = [list(r) for r in plain]
    assert copy_drills(tok, ids, random.Random(1), 0.0) == 0 and ids == plain
    changed = copy_drills(tok, ids, random.Random(1), 1.0)
    assert changed > 300 and sum(a != b for a, b in zip(plain, ids)) == changed
    sep = tok.token_to_id("<|out|>")
    banned = excluded_words()
    for before, after in zip(plain, ids):
        if before == after:
            continue
        assert len(after) == len(before)  # the made-up word has as many tokens as the word it replaced
        old, new = tok.decode(before[3:before.index(sep)]), tok.decode(after[3:after.index(sep)])
        gone = set(content_words(old)) - set(content_words(new))
        made = set(content_words(new)) - set(content_words(old))
        assert len(gone) == 1 and len(made) == 1 and not made & banned, (old, new)
        output = tok.decode(after[after.index(sep) + 1:])
        out_words = set(content_words(output))
        assert made <= out_words and not gone & out_words, (new, output)
        assert "\ufffd" not in tok.decode(after)
    # the drilled tokens are the ones the intents rarely held
    def intent_counts(rows):
        return Counter(t for r in rows for t in r[3:r.index(sep)])
    before, after = intent_counts(plain), intent_counts(ids)
    rare = [t for t in range(tok.get_vocab_size()) if before[t] == 0 and tok.id_to_token(t)[1:].isalpha()]
    assert sum(after[t] > 0 for t in rare) > len(rare) / 4


def test_init_fine_tunes_a_trained_model_with_its_own_tokenizer_and_records_where_it_began(tmp_path, data):
    """--init: the run starts from the folder's weights (0 steps give them back), keeps its tokenizer and shape
    whatever the shape options say, moves the weights when it trains, and logs the start's hash and command."""
    import numpy as np
    from safetensors.numpy import load_file

    train(["--out", str(tmp_path / "base"), "--data", str(data), "--steps", "2", *ARGS])
    other = [a if a not in ("64", "96") else {"64": "32", "96": "48"}[a] for a in ARGS]  # shape options ignored
    train(["--out", str(tmp_path / "same"), "--data", str(data), "--steps", "0", "--init", str(tmp_path / "base"),
           *other])
    train(["--out", str(tmp_path / "ft"), "--data", str(data), "--steps", "3", "--init", str(tmp_path / "base"),
           "--lr", "1e-2", *other])
    base, same, ft = (load_file(tmp_path / n / "model.safetensors") for n in ("base", "same", "ft"))
    assert all(np.array_equal(base[k], same[k]) for k in base)
    assert ft.keys() == base.keys() and not np.array_equal(base["transformer.wte.weight"], ft["transformer.wte.weight"])
    assert (tmp_path / "ft" / "tokenizer.json").read_text() == (tmp_path / "base" / "tokenizer.json").read_text()
    assert open_model_folder(tmp_path / "ft").shape.n_embd == 64
    log = json.loads((tmp_path / "ft" / "train_log.json").read_text())
    assert log["init"]["sha256"] == sha256_file(tmp_path / "base" / "model.safetensors")
    assert log["init"]["command"].startswith("python -m slmkit.demo.train --out ")
    assert log["init"]["steps"] == 2 and log["init"]["examples"] == 400 and log["init"]["train_seconds"] >= 0
    assert log["init"]["eval_words_in_training_data"] == 0 and log["init"]["intents"] > 0


def test_reset_drifted_rows_redraws_the_rows_in_the_byte_tokens_direction_and_only_them():
    import torch

    from slmkit.demo.train import reset_drifted_rows

    g = torch.Generator().manual_seed(0)
    w = torch.randn(40, 16, generator=g)
    shared = torch.randn(16, generator=g)
    drifted = [3, 5, 7, 20, 31]  # rows pushed far along one direction, as v11's rarely seen tokens were
    w[drifted] = shared * 5 + torch.randn(5, 16, generator=g) * 0.1
    before = w.clone()
    assert reset_drifted_rows(w.clone(), reference=[3, 5, 7], generator=g, among=[3, 5, 6, 31]) == [3, 5, 31]
    ids = reset_drifted_rows(w, reference=[3, 5, 7], generator=g)
    assert ids == drifted
    keep = [i for i in range(40) if i not in drifted]
    assert torch.equal(w[keep], before[keep])
    unit = w[drifted] / w[drifted].norm(dim=1, keepdim=True)
    assert w[drifted].norm(dim=1).max() < 0.2 and (unit @ unit.T - torch.eye(5)).abs().max() < 0.9


def test_a_fine_tune_with_reset_drifted_redraws_the_drifted_byte_rows_and_logs_them(tmp_path, data):
    """A freshly trained tiny model has no drifted rows (0 re-drawn); one whose byte tokens' rows all point
    one way, as v11's did, gets exactly those rows re-drawn, and a word piece drifted alike keeps its row."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from slmkit.demo.train import byte_token_ids, init_tokenizer

    train(["--out", str(tmp_path / "base"), "--data", str(data), "--steps", "2", *ARGS])
    step0 = ["--data", str(data), "--steps", "0", "--reset-drifted", *ARGS]
    train(["--out", str(tmp_path / "fresh"), "--init", str(tmp_path / "base"), *step0])
    assert json.loads((tmp_path / "fresh" / "train_log.json").read_text())["reset_drifted_rows"] == 0
    w = load_file(tmp_path / "base" / "model.safetensors")
    e = w["transformer.wte.weight"].astype(np.float32)
    tok = init_tokenizer(tmp_path / "base")
    rows = byte_token_ids(tok)
    piece = tok.token_to_id("Ġharbor") or max(tok.get_vocab().values())  # a word piece: it keeps its row
    e[rows + [piece]] = 2.0 + np.random.default_rng(0).normal(0, 0.05, (len(rows) + 1, e.shape[1]))
    w["transformer.wte.weight"] = e.astype(np.float16)
    save_file(w, tmp_path / "base" / "model.safetensors", metadata={"format": "pt"})
    train(["--out", str(tmp_path / "ft"), "--init", str(tmp_path / "base"), *step0])
    assert json.loads((tmp_path / "ft" / "train_log.json").read_text())["reset_drifted_rows"] == len(rows) > 50
    after = load_file(tmp_path / "ft" / "model.safetensors")["transformer.wte.weight"].astype(np.float32)
    others = [i for i in range(len(e)) if i not in set(rows)]
    assert np.abs(after[rows]).max() < 0.2 and np.allclose(after[others], e[others], atol=1e-3)
    with pytest.raises(SlmkitError, match="--reset-drifted .* needs --init"):
        train(["--out", str(tmp_path / "m"), "--data", str(data), "--reset-drifted", *ARGS])


def test_label_margin_leaves_out_the_examples_near_a_relevance_boundary_and_keeps_unmeasured_ones():
    from slmkit.demo.train import clear_of_boundaries

    rows = [Example("harbor", "t2i", "short", "mid", "harbor", r) for r in (0.10, 0.33, 0.37, 0.50, 0.62, 0.66, 0.80)]
    rows.append(Example("harbor", "t2i", "short", "mid", "harbor"))  # no measured reward
    kept = clear_of_boundaries(rows, 0.05)
    assert [e.reward for e in kept[:-1]] == [0.10, 0.50, 0.80] and kept[-1] is rows[-1]
    assert clear_of_boundaries(rows, 0.0) == rows


@pytest.mark.parametrize("margin", ["-0.1", "0.2"])
def test_a_label_margin_outside_its_range_is_one_clear_error(tmp_path, data, margin):
    with pytest.raises(SlmkitError, match="--label-margin M is a reward distance"):
        train(["--out", str(tmp_path / "m"), "--data", str(data), "--label-margin", margin, *ARGS])


def test_init_from_a_folder_that_is_not_a_trained_model_is_one_clear_error(tmp_path, data):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SlmkitError, match="--init .*not a trained model folder"):
        train(["--out", str(tmp_path / "m"), "--data", str(data), "--init", str(tmp_path / "empty"), *ARGS])


def test_init_from_a_model_with_truncated_weights_is_one_clear_error_not_a_loader_traceback(tmp_path, data):
    train(["--out", str(tmp_path / "base"), "--data", str(data), "--steps", "1", *ARGS])
    weights = tmp_path / "base" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(SlmkitError, match="model.safetensors"):
        train(["--out", str(tmp_path / "m"), "--data", str(data), "--init", str(tmp_path / "base"), *ARGS])


@pytest.mark.parametrize("share", ["-0.1", "1.5", "nan"])
def test_a_copy_drill_share_outside_0_to_1_is_one_clear_error(tmp_path, data, share):
    with pytest.raises(SlmkitError, match="--copy-drills SHARE is a share of the texts, 0 to 1"):
        train(["--out", str(tmp_path / "m"), "--data", str(data), "--copy-drills", share, *ARGS])


def test_a_run_with_copy_drills_logs_how_many_texts_it_drilled(tmp_path, data):
    train(["--out", str(tmp_path / "m"), "--data", str(data), "--steps", "2", "--copy-drills", "0.3", *ARGS])
    log = json.loads((tmp_path / "m" / "train_log.json").read_text())["data"]
    assert log["copy_drills"] == 0.3 and 60 < log["drilled_texts"] < 180


def test_sparse_embeddings_zero_the_gradient_of_rows_whose_token_the_batch_lacks():
    import torch

    from slmkit.demo.train import hold_absent_rows

    w = torch.nn.Parameter(torch.randn(6, 3))
    batch = torch.tensor([[1, 3], [3, 4]])
    (w[batch].sum() + (w @ torch.ones(3)).logsumexp(0)).backward()  # a softmax over all rows, as tied logits give
    assert (w.grad != 0).all()
    hold_absent_rows(w, batch)
    assert (w.grad[[0, 2, 5]] == 0).all() and (w.grad[[1, 3, 4]] != 0).all()


def test_sparse_embeddings_keep_the_rows_of_tokens_training_never_holds_where_they_began(tmp_path, data):
    """The data is ASCII, so the tokens of bytes 0x80-0xFF never occur: with --sparse-embeddings their rows
    keep their initial direction (weight decay only scales them); without, the softmax turns them all."""
    import numpy as np
    from safetensors.numpy import load_file

    def rows(name: str, *extra: str):
        train(["--out", str(tmp_path / name), "--data", str(data), *ARGS, *extra])
        w = load_file(tmp_path / name / "model.safetensors")
        vocab = json.loads((tmp_path / name / "tokenizer.json").read_text())["model"]["vocab"]
        unseen = [i for t, i in vocab.items() if len(t) == 1 and ord(t) >= 0xA1 and t not in "ĠĊ"]
        e = w["transformer.wte.weight"].astype(np.float32)[unseen]
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    start = rows("start", "--steps", "0")
    held = (rows("sparse", "--steps", "12", "--sparse-embeddings") * start).sum(1)
    moved = (rows("dense", "--steps", "12") * start).sum(1)
    assert len(start) > 50 and held.min() > 0.999 and moved.mean() < 0.98
    log = json.loads((tmp_path / "sparse" / "train_log.json").read_text())
    assert log["sparse_embeddings"] is True


def test_the_model_card_names_the_training_options_and_generator_a_run_used():
    from slmkit.demo.evaluate import _generator_extras, _recipe_extras

    plain = {"data": {"copy_drills": 0.0, "drilled_texts": 0}, "sparse_embeddings": False}
    assert _recipe_extras(plain) == "" and _recipe_extras({"data": {}}) == ""  # older logs lack the keys
    both = _recipe_extras({"data": {"copy_drills": 0.1, "drilled_texts": 23_990}, "sparse_embeddings": True})
    assert "share 0.1" in both and "23,990 texts" in both and "Sparse embedding updates" in both
    tuned = _recipe_extras({"data": {}, "init": {"sha256": "ab" * 32, "command": "python -m slmkit.demo.train --out m",
                                                  "generator_version": 11, "examples": 120_000, "steps": 2700}})
    sharp = _recipe_extras({"data": {"label_margin": 0.05, "left_out_near_boundaries": 43_210}, "reset_drifted_rows": 265})
    assert "265 embedding rows" in sharp and "within 0.05 of a relevance bucket" in sharp and "43,210 of them" in sharp
    assert "fine-tunes an earlier one" in tuned and "`python -m slmkit.demo.train --out m` (generator 11, 120,000" in tuned
    assert _generator_extras(11) == "" and "15% of accent typings" in _generator_extras(13)
    assert "prices" not in _generator_extras(13) and "prices, percentages" in _generator_extras(14)
    assert "Off-topic pieces" not in _generator_extras(14) and "96 in all" in _generator_extras(15)
    from slmkit.demo.evaluate import _start_time

    assert _start_time({"train_seconds": 1715}) == ""
    assert _start_time({"train_seconds": 1715, "init": {"train_seconds": 3503}}).endswith("(3503 s), 5218 s in all")
