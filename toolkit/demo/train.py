"""Train the demo GPT-2 on the open-world intent→prompt task, reproducibly, on the CPU (or a GPU).

    python -m slmkit.demo.train --out out/demo-train-v11/model --generator 11   # the shipped model's start (v11)
    python -m slmkit.demo.train --out out/demo-train-v15/model --init out/demo-train-v11/model --generator 15 \
        --examples 80000 --copy-drills 0.1 --sparse-embeddings --reset-drifted --label-margin 0.05 \
        --steps 900 --lr 3e-4 --warmup 50                          # ... fine-tuned: the shipped v15 (make demo-model)
    python -m slmkit.demo.train --out /tmp/m --examples 1500 --steps 20 --layers 1   # a smoke run
    python -m slmkit.demo.train --out out/demo-train-v9/model --generator 9            # an older generator's data

Seeded end to end (data, tokenizer, initialisation, batch order). The training data is generated
first (``slmkit.demo.dataset``, minutes) into ``--data`` and reused when it is already there. Writes a
Hugging Face GPT-2 folder: config.json, fp16 model.safetensors, tokenizer.json (+ its config files) and
train_log.json. ``--checkpoint DIR`` saves the run every ``--eval-every`` steps; the same command with
``--resume`` goes on from the last one (a long CPU run can outlive a session). ``--init MODEL`` fine-tunes
a trained demo model (its weights and tokenizer) on other data instead of training a fresh one.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

from slmkit.demo.dataset import (GENERATOR_VERSION, GENERATORS, TRAIN_SEED, Example, build_train, examples, intents_for,
                                 read_jsonl, write_jsonl)
from slmkit.demo.words import content_words, excluded_words
from slmkit.errors import SlmkitError, run_script
from slmkit.files import sha256_file
from slmkit.model_folder import open_model_folder
from slmkit.prompts import CONTROL_TOKENS, EOS, RELEVANCE, SEP


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE (GPT-2's pre-tokenizer and byte alphabet) with the control tokens added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS] + CONTROL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def init_tokenizer(model_dir: Path):
    """The tokenizer of a trained model folder (``--init``), with the control tokens it must hold."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    missing = [t for t in [EOS] + CONTROL_TOKENS if tok.token_to_id(t) is None]
    if missing:
        raise SlmkitError(f"--init {model_dir}: its tokenizer lacks the control token {missing[0]}")
    return tok


def init_record(model_dir: Path | None) -> dict | None:
    """Where a fine-tune (``--init``) started: the folder, its weights' SHA-256 and its own training command."""
    if model_dir is None:
        return None
    path = model_dir / "train_log.json"
    log = json.loads(path.read_text()) if path.is_file() else {}
    return {"model": str(model_dir),
            "sha256": sha256_file(model_dir / "model.safetensors"),
            "command": log.get("command"), "generator_version": log.get("data", {}).get("generator_version"),
            "examples": log.get("examples"), "intents": log.get("intents"), "steps": log.get("steps"),
            "train_seconds": log.get("train_seconds"),
            "eval_words_in_training_data": log.get("data", {}).get("eval_words_in_training_data"),
            "init": log.get("init")}


def write_tokenizer(tok, out: Path, n_positions: int) -> None:
    """tokenizer.json plus the config files transformers' GPT2TokenizerFast reads."""
    tok.save(str(out / "tokenizer.json"))
    added = {str(tok.token_to_id(t)): {"content": t, "special": True, "lstrip": False, "rstrip": False,
                                       "normalized": False, "single_word": False}
             for t in [EOS] + CONTROL_TOKENS}
    cfg = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": n_positions, "bos_token": EOS,
           "eos_token": EOS, "unk_token": EOS, "add_prefix_space": False, "add_bos_token": False,
           "added_tokens_decoder": added, "additional_special_tokens": CONTROL_TOKENS}
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": EOS, "eos_token": EOS, "unk_token": EOS, "additional_special_tokens": CONTROL_TOKENS},
        indent=2) + "\n")


SPLIT_RATE = 0.2  # share of training texts whose words are split into pieces (seeded BPE dropout)
_SPECIAL = re.compile(r"(<\|[^|<>]+\|>)")
_WORD = re.compile(r"\s*[^\W_]+|\s*[^\s]|\s+")  # a run of letters / digits, one other character, or spaces


def encode_with_splits(tok, texts: list[str], rng: random.Random, rate: float = SPLIT_RATE) -> list[list[int]]:
    """Token ids of the texts; in a seeded share of them half the words are cut at a random character
    and the pieces encoded apart. Every token the BPE can produce for a word it never saw (its
    intermediate merges) then also occurs in training, so copying an unseen word never meets an
    untrained embedding. A word is cut at the same place everywhere in its text, so an output copies
    the intent's ids exactly (cutting each occurrence apart showed the model copies whose ids differ
    from the intent's)."""
    ids = [e.ids for e in tok.encode_batch(texts)]
    chosen = [i for i in range(len(texts)) if rng.random() < rate]
    pieces: list[list[str]] = []
    for i in chosen:
        parts: list[str] = []
        cuts: dict[str, int] = {}  # word -> where it is cut in this text (0: whole)
        for seg in _SPECIAL.split(texts[i]):
            if _SPECIAL.fullmatch(seg) or not seg:
                parts.append(seg)
                continue
            for word in _WORD.findall(seg):
                core = word.lstrip()
                if core not in cuts:
                    cuts[core] = rng.randrange(1, len(core)) if len(core) > 1 and rng.random() < 0.5 else 0
                if cuts[core]:
                    cut = len(word) - len(core) + cuts[core]
                    parts += [word[:cut], word[cut:]]
                else:
                    parts.append(word)
        pieces.append([p for p in parts if p])
    flat = [p for ps in pieces for p in ps]
    enc = iter(tok.encode_batch(flat)) if flat else iter(())
    for i, ps in zip(chosen, pieces):
        ids[i] = [t for _ in ps for t in next(enc).ids]
    return ids


INTENT_AT = 3  # a text's intent starts after its three control tokens (task, length, relevance)


def copy_drills(tok, ids: list[list[int]], rng: random.Random, share: float) -> int:
    """In a seeded ``share`` of the encoded texts, one intent word that the output copies becomes a made-up
    word of as many tokens as it had, in the intent and in every copy alike; returns how many texts changed.
    Keeping the length keeps the drills from teaching a word shape of their own (made-up words of 1-3 tokens
    whatever they replaced made a copied "wolf" go on as "wolfations"). The tokens
    (ASCII letters) are drawn in inverse proportion to how often the intents hold them, and only content words
    are replaced, so the copy is drilled on the tokens it rarely sees: v13 broke "birthday" ("Ġbirth" in 52 of
    240,000 intents), "São Paulo" ("ĠPa": 12) and "SUNGLASSES" ("ĠSUN": 12), and kept words whose tokens are
    common. A made-up word that spells an evaluation word is drawn again."""
    sep, banned = tok.token_to_id(SEP), excluded_words()
    counts = Counter(t for row in ids if sep in row for t in row[INTENT_AT:row.index(sep)])
    vocab = tok.get_vocab()
    # ASCII letters only: a lone byte of an accented letter would teach broken characters
    starts = sorted(i for t, i in vocab.items() if t[:1] == "Ġ" and t[1:].isascii() and t[1:].isalpha())
    inner = sorted(i for t, i in vocab.items() if t.isascii() and t.isalpha())  # a word's later pieces
    start_set = set(starts)
    start_w = [1 / (counts[t] + 1) for t in starts]
    inner_w = [1 / (counts[t] + 1) for t in inner]
    go_on = set(inner)
    changed = 0
    for row in ids:
        if rng.random() >= share or sep not in row:
            continue
        end = row.index(sep)
        # the intent's words: spans that open with a word-start token and go on with letters
        spans, k = [], INTENT_AT
        while k < end:
            j = k + 1
            while j < end and row[j] in go_on:
                j += 1
            if row[k] in start_set and content_words(tok.decode(row[k:j])):  # not "in", "the", "how"
                spans.append(tuple(row[k:j]))
            k = j
        copied = [w for w in spans if _find(row, w, end, go_on) >= 0]
        if not copied:
            continue
        word = rng.choice(copied)
        for _ in range(10):
            made = rng.choices(starts, start_w) + rng.choices(inner, inner_w, k=len(word) - 1)
            words = set(content_words(tok.decode(made)))
            if words and not words & banned:  # a content word, and not an evaluation one
                break
        else:
            continue
        at = INTENT_AT
        while (at := _find(row, word, at, go_on)) >= 0:
            row[at:at + len(word)] = made
            at += len(made)
        changed += 1
    return changed


def _find(row: list[int], word: tuple[int, ...], start: int, go_on: set[int]) -> int:
    """Where the whole word ``word`` (not the front of a longer one: no ``go_on`` piece after it) next occurs
    in ``row`` from ``start``; -1 if nowhere."""
    n = len(word)
    for k in range(start, len(row) - n + 1):
        if tuple(row[k:k + n]) == word and (k + n == len(row) or row[k + n] not in go_on):
            return k
    return -1


def hold_absent_rows(weight, batch) -> None:
    """Zero the gradient of every embedding row whose token ``batch`` does not hold, so a row changes only
    in steps that use its token. With tied embeddings every row otherwise gets the softmax's push away from
    the mean hidden state each step, which Adam scales up to a full step however small it is: the tokens the
    data rarely holds (an accent's second byte, "ĠPa") all drift to that one direction (v11: cosine 0.99
    between them) and the model cannot tell them apart when it copies ("São" -> "Sëo")."""
    import torch

    absent = torch.ones(weight.shape[0], dtype=torch.bool, device=weight.device)
    absent[batch.unique()] = False
    weight.grad[absent] = 0


DRIFTED = 0.9  # cosine to the byte tokens' mean direction from which a row counts as drifted (v11: 265 rows)


def byte_token_ids(tok) -> list[int]:
    """The ids of the single-byte tokens of bytes 0x80-0xFF and the like (one character of U+0080-U+024F in
    the byte-level alphabet, not the space "Ġ" or newline "Ċ"): pieces a text rarely holds."""
    return sorted(i for t, i in tok.get_vocab().items() if len(t) == 1 and 0x80 <= ord(t) < 0x250 and t not in "ĠĊ")


def single_character_ids(tok) -> list[int]:
    """The ids of the tokens of one character (a byte of the byte-level alphabet: letters' bytes, punctuation)."""
    return sorted(i for t, i in tok.get_vocab().items() if len(t) == 1)


def reset_drifted_rows(weight, reference: list[int], generator, threshold: float = DRIFTED, std: float = 0.02,
                       among: list[int] | None = None) -> list[int]:
    """Re-draw (normal, ``std``: the initialiser's scale) the embedding rows of ``among`` (default: all) that
    drifted into the one direction ``hold_absent_rows`` describes: those at cosine >= ``threshold`` to the mean
    direction of the ``reference`` rows (the byte tokens). Returns their ids. A fine-tune from such a model
    (``--init``) then learns the rows its data holds apart, and the rest stay distinct where they were drawn."""
    import torch

    with torch.no_grad():
        unit = weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
        direction = unit[reference].mean(0)
        drifted = (unit @ (direction / direction.norm())) >= threshold
        if among is not None:
            drifted &= torch.isin(torch.arange(len(weight)), torch.tensor(among, dtype=torch.long))
        ids = drifted.nonzero().flatten()
        weight[ids] = torch.randn(len(ids), weight.shape[1], generator=generator).to(weight) * std
    return ids.tolist()


def pack(ids: list[list[int]], block: int, rng: random.Random) -> list[list[int]]:
    """Shuffle examples and concatenate them into blocks of ``block`` tokens."""
    order = list(range(len(ids)))
    rng.shuffle(order)
    flat = [t for i in order for t in ids[i]]
    return [flat[i:i + block] for i in range(0, len(flat) - block + 1, block)]


def training_data(path: Path | None, n: int, generator: int = GENERATOR_VERSION) -> list[Example]:
    """The generated training examples: read from ``path``, or generated (and saved there) first."""
    path = path or Path("out/demo-data") / f"train-v{generator}-{n}.jsonl"
    if path.is_file():
        rows = read_jsonl(path)
        if len(rows) < n:
            raise SlmkitError(f"{path} holds {len(rows)} examples, fewer than --examples {n}")
        return rows[:n]
    print(f"generating the training data into {path} (minutes; reused next time)", flush=True)
    rows = build_train(intents_for(n, generator), 2, TRAIN_SEED, generator=generator)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, rows)
    return rows[:n]


def clear_of_boundaries(rows: list[Example], margin: float) -> list[Example]:
    """The examples whose measured reward lies at least ``margin`` from every boundary between relevance
    buckets (0.35, 0.65): one just below 0.65 is labelled mid but reads as high, so dropping those near a
    boundary makes each control token stand for clearly different relevance. Unmeasured rows are kept."""
    edges = sorted({b for lo, hi in RELEVANCE.values() for b in (lo, hi) if -1.0 < b < 1.0})
    return [e for e in rows if math.isnan(e.reward) or all(abs(e.reward - b) >= margin for b in edges)]


def check_unseen(rows: list[Example]) -> None:
    """Refuse training data that holds a word of the free-form evaluation intents."""
    banned = excluded_words()
    for e in rows:
        hit = banned & set(content_words(f"{e.intent} {e.output}"))  # control tokens are single ids, not words
        if hit:
            raise SlmkitError(f"training data holds the evaluation word {sorted(hit)[0]!r} ({e.intent!r})")


def token_coverage(tok, train_ids: list[list[int]]) -> dict:
    """How well the tokenizer serves unseen words, and whether every token was trained."""
    from slmkit.demo.intents import freeform

    counts = Counter(t for ids in train_ids for t in ids)
    words = [w for i in freeform() for w in i.split()]
    pieces = [len(tok.encode(" " + w).ids) for w in words]
    unseen = [t for t in range(tok.get_vocab_size()) if counts[t] == 0]
    return {"vocab": tok.get_vocab_size(), "tokens_never_in_training": len(unseen),
            "tokens_seen_under_10_times": sum(1 for t in range(tok.get_vocab_size()) if counts[t] < 10),
            "freeform_tokens_per_word": round(sum(pieces) / len(pieces), 3)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, help="training data JSONL (generated when missing; default "
                    "out/demo-data/train-v{version}-{examples}.jsonl)")
    ap.add_argument("--examples", type=int, default=120_000, help="training examples (2 per intent)")
    ap.add_argument("--eval-examples", type=int, default=540)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--embd", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--inner", type=int, default=1536)
    ap.add_argument("--ctx", type=int, default=256, help="n_positions and the packed block length")
    ap.add_argument("--batch", type=int, default=16, help="blocks per step")
    ap.add_argument("--steps", type=int, default=2700)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                    help="matmul precision of the forward / backward pass (weights and optimizer stay fp32); "
                         "bf16 autocast is 2.5x faster on CPUs with AVX512-BF16 or AMX, and runs (slower) anywhere")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda); the result is the same recipe")
    ap.add_argument("--checkpoint", type=Path, help="save the run here every --eval-every steps")
    ap.add_argument("--resume", action="store_true", help="go on from the checkpoint in --checkpoint")
    ap.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)  # tests: end the process after N steps
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copy-drills", type=float, default=0.0, metavar="SHARE",
                    help="share of training texts in which one copied intent word becomes a made-up word of rarely "
                         "seen tokens (copy_drills; default 0, the shipped recipe)")
    ap.add_argument("--sparse-embeddings", action="store_true",
                    help="update an embedding row only in steps whose batch holds its token (hold_absent_rows)")
    ap.add_argument("--init", type=Path, metavar="MODEL",
                    help="go on training this demo-model folder (its weights and tokenizer; the shape options are "
                         "ignored) instead of a fresh model: a fine-tune on other data")
    ap.add_argument("--reset-drifted", action="store_true",
                    help="with --init: re-draw the rows of single-character tokens (bytes, punctuation) that drifted "
                         "into one shared direction (rarely seen tokens, reset_drifted_rows) before fine-tuning; "
                         "word pieces keep theirs, which the model still copies")
    ap.add_argument("--label-margin", type=float, default=0.0, metavar="M",
                    help="leave out examples whose measured reward is within M of a relevance bucket boundary "
                         "(clear_of_boundaries; default 0: all)")
    ap.add_argument("--generator", type=int, choices=GENERATORS, default=GENERATOR_VERSION,
                    help=f"the training data's generator version (default {GENERATOR_VERSION}, the shipped model's)")
    args = ap.parse_args(argv)
    if args.resume and not (args.checkpoint and (args.checkpoint / "state.pt").is_file()):
        raise SlmkitError("--resume needs --checkpoint DIR holding state.pt")
    if not 0 <= args.copy_drills <= 1:
        raise SlmkitError(f"--copy-drills SHARE is a share of the texts, 0 to 1, not {args.copy_drills:g}")
    if args.init and not all((args.init / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json")):
        raise SlmkitError(f"--init {args.init}: not a trained model folder (config.json, model.safetensors, tokenizer.json)")
    if args.init:
        open_model_folder(args.init)  # a corrupt or truncated file: one clear error, before torch reads it
    if not 0 <= args.label_margin < 0.15:
        raise SlmkitError(f"--label-margin M is a reward distance, 0 to 0.15, not {args.label_margin:g}")
    if args.reset_drifted and not args.init:
        raise SlmkitError("--reset-drifted re-draws rows of a trained model: it needs --init MODEL")

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    rows = training_data(args.data, args.examples, args.generator)
    n_read = len(rows)
    rows = clear_of_boundaries(rows, args.label_margin) if args.label_margin else rows
    train = [e.text for e in rows]
    check_unseen(rows)
    held = [e.text for e in examples("eval", args.eval_examples)]
    tok = init_tokenizer(args.init) if args.init else train_tokenizer(train, args.vocab)
    eos = tok.token_to_id(EOS)
    train_ids = encode_with_splits(tok, train, random.Random(args.seed + 1))
    drilled = copy_drills(tok, train_ids, random.Random(args.seed + 2), args.copy_drills) if args.copy_drills else 0
    held_ids = [e.ids for e in tok.encode_batch(held)]
    n_tokens = sum(map(len, train_ids))
    coverage = token_coverage(tok, train_ids)
    print(f"data: {len(train)} train / {len(held)} held-out examples, {n_tokens} train tokens, "
          f"vocab {tok.get_vocab_size()}, {time.time() - t0:.1f}s", flush=True)

    reset: list[int] = []  # embedding rows re-drawn (--reset-drifted)
    if args.init:
        model = GPT2LMHeadModel.from_pretrained(args.init, torch_dtype=torch.float32).to(args.device)
        args.layers, args.embd, args.inner = model.config.n_layer, model.config.n_embd, model.config.n_inner
        args.ctx = model.config.n_positions
        if args.reset_drifted and not args.resume:
            reset = reset_drifted_rows(model.transformer.wte.weight, byte_token_ids(tok),
                                       torch.Generator().manual_seed(args.seed + 3), among=single_character_ids(tok))
            print(f"re-drew {len(reset)} drifted embedding rows", flush=True)
    else:
        config = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=args.ctx, n_embd=args.embd,
                            n_layer=args.layers, n_head=args.heads, n_inner=args.inner, bos_token_id=eos,
                            eos_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            tie_word_embeddings=True)
        model = GPT2LMHeadModel(config).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.layers} layers x {args.embd} wide, n_inner {args.inner}, {n_params / 1e6:.2f}M params",
          flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    held_blocks = torch.tensor(pack(held_ids, args.ctx, random.Random(0)), device=args.device)

    def forward_loss(batch, precision: str = args.precision):
        with torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return model(input_ids=batch, labels=batch).loss.float()

    @torch.no_grad()
    def held_loss(precision: str = args.precision) -> float:
        model.eval()
        losses = [forward_loss(b, precision).item() for b in held_blocks.split(args.batch)]
        model.train()
        return sum(losses) / len(losses)

    log: list[dict] = []
    blocks: list[list[int]] = []
    epoch, seen, first = 0, 0, 0
    if args.resume:
        state = torch.load(args.checkpoint / "state.pt", map_location=args.device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["torch_rng"])
        rng.setstate(state["rng"])
        log, blocks, epoch, seen, first = state["log"], state["blocks"], state["epoch"], state["seen"], state["step"]
        reset = state.get("reset", [])
        print(f"resumed at step {first} from {args.checkpoint}", flush=True)
    model.train()
    t_run, seen_at_start, before = time.time(), seen, (log[-1]["train_s"] if log else 0.0)
    for step in range(first, args.steps):
        if len(blocks) < args.batch:
            blocks = pack(train_ids, args.ctx, rng)
            epoch += 1
        batch = torch.tensor(blocks[:args.batch], device=args.device)
        blocks = blocks[args.batch:]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = forward_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.sparse_embeddings:
            hold_absent_rows(model.transformer.wte.weight, batch)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += batch.numel()
        if step % 25 == 0 or step == args.steps - 1:
            rate = (seen - seen_at_start) / max(1e-9, time.time() - t_run)
            entry = {"step": step, "epoch": epoch, "loss": round(loss.item(), 4), "lr": lr_at(step),
                     "tokens": seen, "tok_s": round(rate), "train_s": round(before + time.time() - t_run, 1)}
            if step % args.eval_every == 0 or step == args.steps - 1:
                entry["held_loss"] = round(held_loss(), 4)
            log.append(entry)
            eta = (args.steps - step - 1) * args.batch * args.ctx / max(rate, 1e-9)
            print(json.dumps(entry) + f"  eta {eta / 60:.1f} min", flush=True)
        if args.checkpoint and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            args.checkpoint.mkdir(parents=True, exist_ok=True)
            tmp = args.checkpoint / "state.pt.tmp"
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "torch_rng": torch.get_rng_state(),
                        "rng": rng.getstate(), "log": log, "blocks": blocks, "epoch": epoch, "seen": seen, "reset": reset,
                        "step": step + 1}, tmp)
            os.replace(tmp, args.checkpoint / "state.pt")
        if args.stop_after and step + 1 >= args.stop_after:
            raise SystemExit(f"stopped after step {step + 1} (--stop-after)")

    final, final_fp32 = held_loss(), held_loss("fp32")
    model = model.cpu().half()
    model.save_pretrained(args.out, safe_serialization=True)
    write_tokenizer(tok, args.out, args.ctx)
    summary = {"seed": args.seed, "examples": len(train), "intents": len({e.intent for e in rows}),
               "data": {"generator_version": args.generator, "data_seed": TRAIN_SEED,
                        "relevance_labels": dict(sorted(Counter(e.relevance for e in rows).items())),
                        "eval_words_in_training_data": 0, "copy_drills": args.copy_drills,
                        "drilled_texts": drilled, "label_margin": args.label_margin,
                        "left_out_near_boundaries": n_read - len(rows)},
               "sparse_embeddings": args.sparse_embeddings, "init": init_record(args.init),
               "reset_drifted_rows": len(reset),
               "tokenizer": coverage, "device": args.device, "train_tokens_per_epoch": n_tokens,
               "tokens_seen": seen, "epochs": seen / n_tokens, "steps": args.steps, "lr": args.lr,
               "warmup": args.warmup, "batch_blocks": args.batch,
               "block": args.ctx, "params": n_params, "vocab": tok.get_vocab_size(),
               "precision": args.precision,
               "held_loss": final, "held_loss_fp32": final_fp32, "held_ppl_fp32": math.exp(final_fp32), "threads": args.threads,
               "train_seconds": round(before + time.time() - t_run), "torch": torch.__version__, "log": log,
               "command": "python -m slmkit.demo.train " + " ".join(argv if argv is not None else sys.argv[1:])}
    (args.out / "train_log.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"done: held-out loss {final_fp32:.4f} (ppl {math.exp(final_fp32):.3f}, fp32), {time.time() - t0:.0f}s -> {args.out}",
          flush=True)


if __name__ == "__main__":
    run_script(main)
