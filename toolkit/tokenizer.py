"""The Hugging Face GPT-2 tokenizer, through the `tokenizers` library (no torch, no transformers).

Reads ``tokenizer.json``, or ``vocab.json`` + ``merges.txt`` with added tokens from
``added_tokens.json`` / ``tokenizer_config.json``. Control tokens are special added tokens: they are
recognised in input text and kept whole.
"""
from __future__ import annotations

import functools

import json
from pathlib import Path
from typing import TYPE_CHECKING

from slmkit.errors import SlmkitError, first_line
from slmkit.prompts import EOS

if TYPE_CHECKING:
    import numpy as np
    import tokenizers


def tokenizer_kind(folder: Path) -> str | None:
    """'tokenizer.json', 'vocab.json+merges.txt', or None when the folder has no tokenizer."""
    if (folder / "tokenizer.json").is_file():
        return "tokenizer.json"
    if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        return "vocab.json+merges.txt"
    return None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SlmkitError(f"{path}: corrupt tokenizer file ({type(e).__name__})") from None


def _byte_level(tok: "tokenizers.Tokenizer", add_prefix_space: bool = False) -> "tokenizers.Tokenizer":
    from tokenizers import decoders, pre_tokenizers

    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tok.decoder = decoders.ByteLevel()
    return tok


def _prefix_space_flag(folder: Path) -> bool:
    """tokenizer_config.json's ``add_prefix_space`` (transformers' GPT2Tokenizer honours it); False if unset."""
    if not (folder / "tokenizer_config.json").is_file():
        return False
    data = _read_json(folder / "tokenizer_config.json")
    return isinstance(data, dict) and data.get("add_prefix_space") is True


def _added_tokens(folder: Path) -> dict[int, str]:
    """Added tokens declared beside vocab.json + merges.txt: id -> token."""
    found: dict[int, str] = {}
    if (folder / "added_tokens.json").is_file():
        data = _read_json(folder / "added_tokens.json")
        if isinstance(data, dict):
            found.update({int(i): t for t, i in data.items()})
    if (folder / "tokenizer_config.json").is_file():
        data = _read_json(folder / "tokenizer_config.json")
        if isinstance(data, dict):
            for i, meta in (data.get("added_tokens_decoder") or {}).items():
                found[int(i)] = meta["content"] if isinstance(meta, dict) else str(meta)
    return found


def _add_declared_tokens(tok: "tokenizers.Tokenizer", folder: Path) -> None:
    """Register the declared added tokens (and end-of-text) as special, whether or not vocab.json also
    lists them, as transformers does; each must land on its declared id."""
    declared = _added_tokens(folder)
    if not all(isinstance(t, str) and t for t in declared.values()):
        raise SlmkitError(f"{folder}: an added token is not a non-empty string")
    tokens = [declared[i] for i in sorted(declared)]
    if EOS not in tokens and (tok.token_to_id(EOS) is not None or not tokens):
        tokens.append(EOS)
    tok.add_special_tokens(tokens)
    for i, t in declared.items():
        if tok.token_to_id(t) != i:
            raise SlmkitError(f"{folder}: added token {t[:40]!r} is declared with id {i} but the vocabulary "
                              f"gives it {tok.token_to_id(t)}")


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the printable character that stands for each byte in a token's text."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), ord("\u00ff") + 1)]
    chars = {b: chr(b) for b in kept}
    chars |= {b: chr(256 + n) for n, b in enumerate(b for b in range(256) if b not in chars)}
    return {c: b for b, c in chars.items()}


class TextTokenizer:
    """Encode / decode with a GPT-2 byte-level BPE and its added (control) tokens."""

    def __init__(self, tok: "tokenizers.Tokenizer", kind: str, where: object = ""):
        self._tok = tok
        self.kind = kind
        self.eos_id = tok.token_to_id(EOS)
        if self.eos_id is None:
            raise SlmkitError(f"{where}: tokenizer has no {EOS} token")

    @classmethod
    def from_folder(cls, folder: str | Path) -> "TextTokenizer":
        """The tokenizer of a Hugging Face folder."""
        from tokenizers import Tokenizer, models

        folder = Path(folder)
        kind = tokenizer_kind(folder)
        if kind is None:
            raise SlmkitError(f"missing tokenizer: {folder} has neither tokenizer.json nor vocab.json + merges.txt")
        try:
            if kind == "tokenizer.json":
                _read_json(folder / "tokenizer.json")
                tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
            else:
                _read_json(folder / "vocab.json")
                tok = _byte_level(Tokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt"))),
                                  _prefix_space_flag(folder))
                _add_declared_tokens(tok, folder)
        except SlmkitError:
            raise
        except Exception as e:  # the Rust library raises plain Exceptions for malformed files
            raise SlmkitError(f"{folder}: corrupt tokenizer ({first_line(e)})") from None
        return cls(tok, kind, folder)

    @classmethod
    def from_vocab(cls, tokens: list[str], merges: list[str], special: list[str], where: object) -> "TextTokenizer":
        """A tokenizer from a token list, BPE merges and special tokens (as stored in a GGUF file)."""
        from tokenizers import Tokenizer, models

        try:
            vocab = {t: i for i, t in enumerate(tokens)}
            pairs = [tuple(m.split(" ", 1)) for m in merges]
            tok = _byte_level(Tokenizer(models.BPE(vocab=vocab, merges=pairs)))
            tok.add_special_tokens(special)
        except Exception as e:
            raise SlmkitError(f"{where}: corrupt tokenizer data ({first_line(e)})") from None
        return cls(tok, "gguf", where)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def added_tokens(self) -> list[str]:
        """Special added tokens (end-of-text and control tokens), in id order."""
        decoder = self._tok.get_added_tokens_decoder()
        return [decoder[i].content for i in sorted(decoder) if decoder[i].special]

    @property
    def adds_prefix_space(self) -> bool:
        """Whether a space is put before the text (GPT-2's byte-level "Ġ"), as some fine-tunes configure."""
        pieces = self._tok.encode("a", add_special_tokens=False).tokens
        return bool(pieces) and pieces[0].startswith("\u0120")

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int], skip_special: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self._tok.id_to_token(i)

    def vocab(self) -> dict[str, int]:
        return self._tok.get_vocab(with_added_tokens=True)

    @functools.cached_property
    def token_bytes(self) -> tuple[bytes, ...]:
        """Each token id's bytes in the text (b"" for special tokens, which decode to nothing): a byte-level
        token may hold part of a UTF-8 character, which the sampler's valid-text rule tracks."""
        alphabet, special = _byte_alphabet(), set(self._tok.get_added_tokens_decoder())
        out = []
        for i in range(self.vocab_size):
            text = self._tok.id_to_token(i) or ""
            if i in special or not text:
                out.append(b"")
            elif all(c in alphabet for c in text):
                out.append(bytes(alphabet[c] for c in text))
            else:  # an added, non-special token: its text as written
                out.append(text.encode("utf-8"))
        return tuple(out)

    @functools.cached_property
    def starts_inside_char(self) -> "np.ndarray":
        """Per token id: whether its bytes open with a UTF-8 continuation byte (it can only go on a character)."""
        import numpy as np

        return np.array([bool(b) and 0x80 <= b[0] <= 0xBF for b in self.token_bytes], dtype=bool)
