"""Train the demo GPT-2 on the synthetic intent→prompt task, on the CPU, reproducibly.

    python -m slmkit.demo.train --out toolkit/demo/model          # the shipped model (about an hour)
    python -m slmkit.demo.train --out /tmp/m --steps 20 --layers 1  # a smoke run

Seeded end to end (data, tokenizer, initialisation, batch order). Writes a Hugging Face GPT-2 folder:
config.json, fp16 model.safetensors, tokenizer.json (+ tokenizer_config.json), and train_log.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

from slmkit.demo.dataset import examples
from slmkit.errors import run_script
from slmkit.prompts import CONTROL_TOKENS, EOS


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


def pack(ids: list[list[int]], block: int, rng: random.Random) -> list[list[int]]:
    """Shuffle examples and concatenate them into blocks of ``block`` tokens."""
    order = list(range(len(ids)))
    rng.shuffle(order)
    flat = [t for i in order for t in ids[i]]
    return [flat[i:i + block] for i in range(0, len(flat) - block + 1, block)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--examples", type=int, default=80_000)
    ap.add_argument("--eval-examples", type=int, default=540)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--inner", type=int, default=1536)
    ap.add_argument("--ctx", type=int, default=256, help="n_positions and the packed block length")
    ap.add_argument("--batch", type=int, default=16, help="blocks per step")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    train = [e.text for e in examples("train", args.examples)]
    held = [e.text for e in examples("eval", args.eval_examples)]
    tok = train_tokenizer(train, args.vocab)
    eos = tok.token_to_id(EOS)
    train_ids = [e.ids for e in tok.encode_batch(train)]
    held_ids = [e.ids for e in tok.encode_batch(held)]
    n_tokens = sum(map(len, train_ids))
    print(f"data: {len(train)} train / {len(held)} held-out examples, {n_tokens} train tokens, "
          f"vocab {tok.get_vocab_size()}, {time.time() - t0:.1f}s", flush=True)

    config = GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=args.ctx, n_embd=args.embd,
                        n_layer=args.layers, n_head=args.heads, n_inner=args.inner, bos_token_id=eos,
                        eos_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        tie_word_embeddings=True)
    model = GPT2LMHeadModel(config)
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

    held_blocks = torch.tensor(pack(held_ids, args.ctx, random.Random(0)))

    @torch.no_grad()
    def held_loss() -> float:
        model.eval()
        losses = [model(input_ids=b, labels=b).loss.item() for b in held_blocks.split(args.batch)]
        model.train()
        return sum(losses) / len(losses)

    log: list[dict] = []
    blocks: list[list[int]] = []
    epoch, seen = 0, 0
    model.train()
    t_train = time.time()
    for step in range(args.steps):
        if len(blocks) < args.batch:
            blocks = pack(train_ids, args.ctx, rng)
            epoch += 1
        batch = torch.tensor(blocks[:args.batch])
        blocks = blocks[args.batch:]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += batch.numel()
        if step % 25 == 0 or step == args.steps - 1:
            rate = seen / (time.time() - t_train)
            entry = {"step": step, "epoch": epoch, "loss": round(loss.item(), 4), "lr": lr_at(step),
                     "tokens": seen, "tok_s": round(rate), "elapsed_s": round(time.time() - t0)}
            if step % args.eval_every == 0 or step == args.steps - 1:
                entry["held_loss"] = round(held_loss(), 4)
            log.append(entry)
            eta = (args.steps - step - 1) * args.batch * args.ctx / rate
            print(json.dumps(entry) + f"  eta {eta / 60:.1f} min", flush=True)

    final = held_loss()
    model = model.half()
    model.save_pretrained(args.out, safe_serialization=True)
    write_tokenizer(tok, args.out, args.ctx)
    summary = {"seed": args.seed, "examples": len(train), "train_tokens_per_epoch": n_tokens,
               "tokens_seen": seen, "epochs": seen / n_tokens, "steps": args.steps, "batch_blocks": args.batch,
               "block": args.ctx, "params": n_params, "vocab": tok.get_vocab_size(),
               "held_loss_fp32": final, "held_ppl_fp32": math.exp(final), "threads": args.threads,
               "train_seconds": round(time.time() - t_train), "torch": torch.__version__, "log": log}
    (args.out / "train_log.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"done: held-out loss {final:.4f} (ppl {math.exp(final):.3f}), {time.time() - t0:.0f}s -> {args.out}",
          flush=True)


if __name__ == "__main__":
    run_script(main)
