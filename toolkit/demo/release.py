"""Ship a newly trained demo model in place of ``toolkit/demo/model``, and rebuild its shipped artifact.

    python -m slmkit.demo.train --out out/demo-train-vN/model --checkpoint out/demo-train-vN/ckpt
    python -m slmkit.demo.evaluate out/demo-train-vN/model --n 216 --json out/eval-vN.json --card
    python -m slmkit.demo.release out/demo-train-vN/model

The folder must open as a GPT-2 model and hold its ``train_log.json`` and a ``MODEL_CARD.md`` written after
its weights (``evaluate --card``). The shipped folder is replaced as a whole, keeping its ``slmkit-check.toml``
thresholds, and the Q8_0 artifact of installs without torch is rebuilt from it (``slmkit.demo.shipped``).
Then re-measure what depends on the model: the README's example outputs, ``make demo`` and the mobile bench
(``benchmarks/results/demo-cpu``, ``demo-mobile``) and ``benchmarks/RESULTS.md``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from slmkit.errors import SlmkitError, run_script
from slmkit.files import TMP_PREFIX
from slmkit.model_folder import DEMO_MODEL, open_model_folder

# what `slmkit.demo.train` writes and `evaluate --card` adds; nothing else (checkpoints, logs) is shipped
SHIPPED = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
           "special_tokens_map.json", "train_log.json", "MODEL_CARD.md")
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "train_log.json", "MODEL_CARD.md")
KEPT = ("slmkit-check.toml",)  # the demo's regression thresholds belong to the package, not to a training run


def check_release(src: Path, dest: Path = DEMO_MODEL) -> None:
    """Raise SlmkitError unless ``src`` is a trained, evaluated demo model that is not ``dest`` itself."""
    if not src.is_dir():
        raise SlmkitError(f"{src}: not a folder")
    if dest.exists() and src.resolve() == dest.resolve():
        raise SlmkitError(f"{src} is the shipped model already")
    missing = [n for n in REQUIRED if not (src / n).is_file()]
    if missing:
        raise SlmkitError(f"{src}: missing {', '.join(missing)} (train with slmkit.demo.train, then run "
                          f"slmkit.demo.evaluate FOLDER --card)")
    open_model_folder(src)
    if (src / "MODEL_CARD.md").stat().st_mtime < (src / "model.safetensors").stat().st_mtime:
        raise SlmkitError(f"{src}: MODEL_CARD.md is older than the weights; run slmkit.demo.evaluate {src} --card")


def release(src: Path, dest: Path = DEMO_MODEL) -> list[str]:
    """Replace ``dest`` with the shipped files of ``src`` (``dest``'s kept files carried over); returns the
    names now in ``dest``. A copy goes to a temporary folder beside ``dest`` first, so a failed copy leaves
    ``dest`` as it was."""
    check_release(src, dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=dest.parent))
    old = dest.with_name(f"{TMP_PREFIX}{dest.name}-previous")
    try:
        for name in SHIPPED:
            if (src / name).is_file():
                shutil.copy2(src / name, staging / name)
        for name in KEPT:
            if (dest / name).is_file():
                shutil.copy2(dest / name, staging / name)
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            os.replace(dest, old)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not dest.exists():
            os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return sorted(p.name for p in dest.iterdir())


def main(argv: list[str] | None = None) -> None:
    from slmkit.demo import shipped

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="the trained and evaluated model folder")
    args = ap.parse_args(argv)
    names = release(args.model)
    print(f"shipped {args.model} as {DEMO_MODEL}: {', '.join(names)}")
    path = shipped.build()
    print(f"rebuilt {path} ({path.stat().st_size / 2**20:.1f} MiB) and its manifest")
    print("next: the README's example outputs, `make demo`, the mobile bench, benchmarks/RESULTS.md")


if __name__ == "__main__":
    run_script(main)
