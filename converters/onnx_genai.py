"""``genai_config.json`` so that onnxruntime-genai runs an slmkit ONNX export unchanged.

onnxruntime-genai's builder has no GPT-2, but its runtime runs our decoder graph when the config
declares model type "llama" (measured: type "gpt2" fails) with our input/output names. The config
must sit beside the model file and the tokenizer, so one folder has one: it points at the smallest
precision the folder holds, from this run or an earlier one (int4, else int8, fp16, fp32), and the
manifest records which.
"""
from __future__ import annotations

import json
from pathlib import Path

from slmkit.files import write_text_atomic
from slmkit.model_folder import ModelFolder
from slmkit.tokenizer import TextTokenizer

PREFERENCE = ("int4", "int8", "fp16", "fp32")
GENAI_CONFIG = "genai_config.json"


def genai_config(folder: ModelFolder, filename: str) -> dict:
    s = folder.shape
    eos = TextTokenizer.from_folder(folder.path).eos_id
    return {
        "model": {
            "type": "llama", "bos_token_id": folder.token_id("bos_token_id", eos), "eos_token_id": eos,
            "pad_token_id": eos, "context_length": s.n_positions, "vocab_size": s.vocab_size,
            "decoder": {
                "filename": filename, "head_size": s.n_embd // s.n_head, "hidden_size": s.n_embd,
                "num_attention_heads": s.n_head, "num_key_value_heads": s.n_head, "num_hidden_layers": s.n_layer,
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask",
                           "position_ids": "position_ids", "past_key_names": "past_key_values.%d.key",
                           "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"},
            },
        },
        "search": {"do_sample": False, "max_length": s.n_positions, "min_length": 0, "num_beams": 1,
                   "num_return_sequences": 1, "past_present_share_buffer": False, "repetition_penalty": 1.0,
                   "temperature": 1.0, "top_k": 1, "top_p": 1.0, "early_stopping": True, "length_penalty": 1.0,
                   "no_repeat_ngram_size": 0, "diversity_penalty": 0.0},
    }


def write_genai_config(folder: ModelFolder, out: Path, written: dict[str, str]) -> str | None:
    """Write the config for the preferred precision among ``written`` (precision → file name)."""
    for precision in PREFERENCE:
        if precision in written:
            write_text_atomic(out / GENAI_CONFIG, json.dumps(genai_config(folder, written[precision]), indent=2) + "\n")
            return written[precision]
    return None
