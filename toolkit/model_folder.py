"""Open and validate a Hugging Face GPT-2 folder without torch: config, weights header, tokenizer.

Everything a converter or the fp16 reference needs to know before loading weights is checked here, so
bad input fails with one line naming the problem instead of a traceback from a native loader.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from slmkit.errors import SlmkitError
from slmkit.files import sha256_file
from slmkit.safetensors_header import TensorEntry, read_header
from slmkit.tokenizer import tokenizer_kind

DEMO_MODEL = Path(__file__).parent / "demo" / "model"
DEMO_ARTIFACTS = Path(__file__).parent / "demo" / "artifacts"  # its Q8_0 GGUF, for installs without torch
SAFETENSORS = "model.safetensors"
PYTORCH_BIN = "pytorch_model.bin"
# Buffers older GPT-2 checkpoints carry that are not parameters.
BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")


# Upper bounds far past any GPT-2 that fits a device, so that a hostile config cannot ask for absurd work.
FIELD_LIMITS = {"vocab_size": 1 << 22, "n_positions": 1 << 20, "n_embd": 1 << 16, "n_layer": 1024, "n_head": 1024,
                "n_inner": 1 << 18}


def _int_field(cfg: dict, name: str, where: Path, default: object = KeyError) -> int:
    value = cfg.get(name, default)
    if value is KeyError:
        raise SlmkitError(f"{where}: config.json lacks {name}")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= FIELD_LIMITS[name]:
        raise SlmkitError(f"{where}: config.json has {name} = {str(value)[:40]} (an integer from 1 to "
                          f"{FIELD_LIMITS[name]} expected)")
    return value


@dataclass(frozen=True)
class Gpt2Shape:
    """The hyper-parameters of a GPT-2 that fix its tensor shapes."""

    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    n_inner: int
    layer_norm_epsilon: float
    tie_word_embeddings: bool

    @classmethod
    def from_config(cls, cfg: dict, where: Path) -> "Gpt2Shape":
        if not isinstance(cfg, dict):
            raise SlmkitError(f"{where}: config.json is not a JSON object")
        n_embd = _int_field(cfg, "n_embd", where, cfg.get("hidden_size", 768))
        eps = cfg.get("layer_norm_epsilon", 1e-5)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise SlmkitError(f"{where}: config.json has layer_norm_epsilon = {str(eps)[:40]} (a small positive number)")
        tie = cfg.get("tie_word_embeddings", True)
        if not isinstance(tie, bool):
            raise SlmkitError(f"{where}: config.json has tie_word_embeddings = {str(tie)[:40]} (true or false)")
        shape = cls(vocab_size=_int_field(cfg, "vocab_size", where),
                    n_positions=_int_field(cfg, "n_positions", where, cfg.get("n_ctx", 1024)),
                    n_embd=n_embd, n_layer=_int_field(cfg, "n_layer", where, 12),
                    n_head=_int_field(cfg, "n_head", where, 12),
                    n_inner=_int_field(cfg, "n_inner", where) if cfg.get("n_inner") is not None else 4 * n_embd,
                    layer_norm_epsilon=float(eps), tie_word_embeddings=tie)
        if shape.n_embd % shape.n_head:
            raise SlmkitError(f"{where}: n_embd {shape.n_embd} is not a multiple of n_head {shape.n_head}")
        return shape

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """HF parameter names (without the 'transformer.' prefix) and shapes. Conv1D weights are [in, out]."""
        e, f = self.n_embd, self.n_inner
        shapes: dict[str, tuple[int, ...]] = {"wte.weight": (self.vocab_size, e), "wpe.weight": (self.n_positions, e),
                                              "ln_f.weight": (e,), "ln_f.bias": (e,)}
        for i in range(self.n_layer):
            p = f"h.{i}."
            shapes.update({p + "ln_1.weight": (e,), p + "ln_1.bias": (e,), p + "ln_2.weight": (e,),
                           p + "ln_2.bias": (e,), p + "attn.c_attn.weight": (e, 3 * e), p + "attn.c_attn.bias": (3 * e,),
                           p + "attn.c_proj.weight": (e, e), p + "attn.c_proj.bias": (e,),
                           p + "mlp.c_fc.weight": (e, f), p + "mlp.c_fc.bias": (f,),
                           p + "mlp.c_proj.weight": (f, e), p + "mlp.c_proj.bias": (e,)})
        if not self.tie_word_embeddings:
            shapes["lm_head.weight"] = (self.vocab_size, e)
        return shapes


def canonical_name(name: str) -> str:
    """A checkpoint tensor name without the GPT2LMHeadModel 'transformer.' prefix."""
    return name[len("transformer."):] if name.startswith("transformer.") else name


@dataclass
class ModelFolder:
    """A validated Hugging Face GPT-2 folder."""

    path: Path
    config: dict
    shape: Gpt2Shape
    weights: Path
    tokenizer_kind: str
    tensors: dict[str, TensorEntry] = field(default_factory=dict)  # empty for pytorch_model.bin
    _sha256: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def weights_format(self) -> str:
        return "safetensors" if self.weights.name.endswith(".safetensors") else "pytorch"

    @property
    def name(self) -> str:
        return "slmkit-demo" if self.path.resolve() == DEMO_MODEL.resolve() else self.path.resolve().name

    @property
    def n_params(self) -> int:
        """Parameters, counting a tied embedding/head once."""
        shapes = self.shape.tensor_shapes()
        total = 0
        for s in shapes.values():
            n = 1
            for d in s:
                n *= d
            total += n
        return total

    @property
    def dtypes(self) -> dict[str, int]:
        """Tensor count per stored dtype (safetensors only)."""
        return dict(Counter(t.dtype for t in self.tensors.values()))

    def token_id(self, key: str, default: int) -> int:
        """A special token id from config.json (``bos_token_id``, ...): ``default`` when absent or null (as
        transformers reads it); one clear error for anything but an id of the vocabulary."""
        value = self.config.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.shape.vocab_size:
            raise SlmkitError(f"{self.path / 'config.json'}: {key} {value!r} is not a token id of this model's "
                              f"vocabulary (0-{self.shape.vocab_size - 1})")
        return value

    def sha256(self) -> str:
        """sha256 of the weights file (the source model hash in manifests), hashed once per folder object."""
        if self._sha256 is None:
            self._sha256 = sha256_file(self.weights)
        return self._sha256


def check_tensors(path: Path, shape: Gpt2Shape, table: dict[str, TensorEntry]) -> dict[str, TensorEntry]:
    tensors = {canonical_name(n): t for n, t in table.items() if not n.endswith(BUFFER_SUFFIXES)}
    expected = shape.tensor_shapes()
    for name, want in expected.items():
        if name not in tensors:
            raise SlmkitError(f"{path}: weights lack tensor {name} (not a GPT-2 checkpoint, or incomplete)")
        got = tensors[name].shape
        if got != want:
            raise SlmkitError(f"{path}: shape mismatch with config: {name} is {list(got)}, "
                              f"config.json implies {list(want)}")
    extra = sorted(set(tensors) - set(expected) - {"lm_head.weight"})
    if extra:
        raise SlmkitError(f"{path}: weights hold tensors a GPT-2 has not: {', '.join(extra[:3])}")
    return tensors


def open_model_folder(path: str | Path | None = None) -> ModelFolder:
    """Validate a GPT-2 folder (the shipped demo model when ``path`` is None)."""
    folder = Path(path) if path is not None else DEMO_MODEL
    if not folder.exists():
        raise SlmkitError(f"no such model folder: {folder}")
    if not folder.is_dir():
        raise SlmkitError(f"{folder} is a file; expected a Hugging Face model folder (config.json, weights, tokenizer)")
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise SlmkitError(f"{folder}: missing config.json (not a Hugging Face model folder)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SlmkitError(f"{cfg_path}: corrupt config.json (not JSON)") from None
    if not isinstance(cfg, dict):
        raise SlmkitError(f"{cfg_path}: corrupt config.json (not an object)")
    model_type = cfg.get("model_type")
    if model_type != "gpt2":
        raise SlmkitError(f"{folder}: unsupported architecture {model_type!r}; slmkit supports GPT-2 (model_type 'gpt2')")
    shape = Gpt2Shape.from_config(cfg, folder)

    if (folder / SAFETENSORS).is_file():
        weights = folder / SAFETENSORS
        tensors = check_tensors(weights, shape, read_header(weights))
    elif (folder / PYTORCH_BIN).is_file():
        weights, tensors = folder / PYTORCH_BIN, {}
    elif (folder / "model.safetensors.index.json").is_file():
        raise SlmkitError(f"{folder}: sharded checkpoints are not supported; save the model as one model.safetensors")
    else:
        raise SlmkitError(f"{folder}: missing weights (no {SAFETENSORS} or {PYTORCH_BIN})")

    kind = tokenizer_kind(folder)
    if kind is None:
        raise SlmkitError(f"missing tokenizer: {folder} has neither tokenizer.json nor vocab.json + merges.txt")
    return ModelFolder(folder, cfg, shape, weights, kind, tensors)
