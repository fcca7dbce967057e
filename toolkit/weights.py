"""Load a validated GPT-2 folder's weights as numpy arrays, keyed by canonical HF names.

safetensors files load without torch; ``pytorch_model.bin`` loads only through
``torch.load(weights_only=True)``, which refuses pickled code.
"""
from __future__ import annotations

import numpy as np

from slmkit.errors import SlmkitError, first_line
from slmkit.model_folder import BUFFER_SUFFIXES, ModelFolder, check_tensors, canonical_name
from slmkit.safetensors_header import TensorEntry


def _from_safetensors(folder: ModelFolder) -> dict[str, np.ndarray]:
    if any(t.dtype == "BF16" for t in folder.tensors.values()):
        from safetensors.torch import load_file as load_torch  # numpy has no bfloat16

        return {k: v.float().numpy() for k, v in load_torch(str(folder.weights)).items()}
    from safetensors.numpy import load_file

    try:
        return load_file(str(folder.weights))
    except Exception as e:  # the header was validated; this is a read error
        raise SlmkitError(f"{folder.weights}: unreadable safetensors file ({e})") from None


def _from_pytorch_bin(folder: ModelFolder) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        state = torch.load(folder.weights, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise SlmkitError(f"{folder.weights}: corrupt or unsafe checkpoint (loaded with weights_only=True: "
                          f"{first_line(e, 160)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SlmkitError(f"{folder.weights}: not a state dict of tensors")
    table = {k: TensorEntry(str(v.dtype), tuple(v.shape), 0, 0) for k, v in state.items()}
    check_tensors(folder.weights, folder.shape, table)
    return {k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy() for k, v in state.items()}


def load_weights(folder: ModelFolder) -> dict[str, np.ndarray]:
    """All GPT-2 parameters (buffers dropped, the tied lm_head dropped), names without 'transformer.'."""
    raw = _from_safetensors(folder) if folder.weights_format == "safetensors" else _from_pytorch_bin(folder)
    out = {canonical_name(k): v for k, v in raw.items() if not k.endswith(BUFFER_SUFFIXES)}
    if folder.shape.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out
