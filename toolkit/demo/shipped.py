"""The demo model's pre-quantized artifact, shipped in the package (``toolkit/demo/artifacts/``).

A runtime-only install (``slmkit[gguf]``, no torch) cannot run the fp16 demo model; ``slmkit.load()``
and ``slmkit generate INTENT`` then run this Q8_0 GGUF instead, checked against its manifest like any
artifact. Rebuild it whenever the demo model changes (a test compares the manifest's source hash with
the shipped weights):

    python -m slmkit.demo.shipped
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from slmkit.errors import run_script
from slmkit.model_folder import DEMO_ARTIFACTS, open_model_folder

QUANT = "q8_0"  # the cpu profile's first choice; relevance within 1% of fp16 on the demo (RESULTS.md)


def build(dest: Path = DEMO_ARTIFACTS) -> Path:
    """Quantize the demo model into ``dest`` (replacing what is there); returns the artifact's path."""
    from slmkit.converters.gguf_pipeline import convert_gguf
    from slmkit.demo.dataset import workload

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "artifacts"
        convert_gguf(open_model_folder(None), [QUANT], out, texts=workload().texts)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(out, dest)
    return next(dest.glob("*.gguf"))


def main() -> None:
    path = build()
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) and its manifest")


if __name__ == "__main__":
    run_script(main)
