"""The fp16 reference: transformers' GPT2LMHeadModel with weights rounded to fp16, computed in fp32.

Every quality figure in slmkit is measured against this backend. It needs torch and transformers
(the ``convert`` extra); nothing on the artifact runtime path imports this module.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slmkit.model_folder import ModelFolder, open_model_folder
from slmkit.runtimes.base import Runtime
from slmkit.tokenizer import TextTokenizer
from slmkit.weights import load_weights


class ReferenceRuntime(Runtime):
    """generate / score with the Hugging Face model itself (fp16-rounded weights, fp32 compute)."""

    backend = "transformers"

    def __init__(self, folder: ModelFolder | str | Path | None = None, threads: int | None = None,
                 n_ctx: int | None = None):
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        folder = folder if isinstance(folder, ModelFolder) else open_model_folder(folder)
        tokenizer = TextTokenizer.from_folder(folder.path)
        if threads:
            torch.set_num_threads(threads)
        config = GPT2Config(**{k: v for k, v in folder.config.items() if not k.startswith("_")})
        model = GPT2LMHeadModel(config)
        state = {k: torch.from_numpy(np.ascontiguousarray(v.astype(np.float16).astype(np.float32)))
                 for k, v in load_weights(folder).items()}
        head = state.pop("lm_head.weight", None)
        model.transformer.load_state_dict(state, strict=False)
        if head is not None:
            model.lm_head.weight.data.copy_(head)
        else:
            model.tie_weights()
        self._torch = torch
        self._model = model.float().eval()
        self._cache = None
        super().__init__(tokenizer, min(n_ctx or folder.shape.n_positions, folder.shape.n_positions),
                         {"format": "hf", "quant": "fp16", "file": str(folder.weights),
                          "threads": torch.get_num_threads(), "model": folder.name})

    def _reset(self) -> None:
        from transformers import DynamicCache

        self._cache = DynamicCache()

    def _save(self):
        return self._cache  # a later call starts a new cache object; this one is left as it is

    def _restore(self, state) -> None:
        self._cache = state

    def _eval(self, ids: Sequence[int], all_logits: bool = True) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self._model(input_ids=torch.tensor([list(ids)]), cache=self._cache, use_cache=True,
                              logits_to_keep=0 if all_logits else 1)
        return out.logits[0].float().numpy()

    def _close(self) -> None:
        self._model = None
        self._cache = None
