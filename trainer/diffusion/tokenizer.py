"""Word-level tokenizer fitted on the captions.

Why not KerasCV's CLIP BPE tokenizer: its `SimpleTokenizer` downloads
`bpe_simple_vocab_16e6.txt.gz` at construction (no network here), and its 49,408-token vocabulary
would make the embedding table the largest part of a small text encoder. The captions use a
closed vocabulary of a few dozen words, so a `keras.layers.TextVectorization` adapted on them
covers every training word, fits in a few hundred bytes of JSON and needs nothing at run time.
Words outside the vocabulary map to the [UNK] token (id 1); id 0 is padding, which is also the
"empty caption" used for classifier-free guidance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class PromptError(ValueError):
    """The prompt cannot be turned into tokens (empty, too long, or not a string)."""


PAD, UNK = 0, 1


def standardize(text: str) -> list[str]:
    """Lower-case words, punctuation dropped; the same rule TextVectorization's default applies."""
    keep = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text.lower())
    return keep.split()


class WordTokenizer:
    """Maps a prompt to a fixed-length int32 row of word ids."""

    def __init__(self, vocabulary: list[str], max_length: int):
        if len(vocabulary) < 2 or vocabulary[PAD] != "" or vocabulary[UNK] != "[UNK]":
            raise ValueError("vocabulary must start with '' (padding) and '[UNK]'")
        if max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        self.vocabulary = [str(w) for w in vocabulary]
        self.max_length = int(max_length)
        self._ids = {w: i for i, w in enumerate(self.vocabulary)}

    @classmethod
    def fit(cls, texts, max_length: int, max_tokens: int | None = None) -> "WordTokenizer":
        """Adapts a TextVectorization layer on the texts and keeps its vocabulary."""
        import keras

        layer = keras.layers.TextVectorization(max_tokens=max_tokens, output_mode="int")
        layer.adapt(list(texts))
        return cls(layer.get_vocabulary(), max_length)

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def words(self, prompt) -> list[str]:
        if not isinstance(prompt, str):
            raise PromptError(f"a prompt must be a string, got {type(prompt).__name__}")
        return standardize(prompt)

    def check(self, prompt) -> list[str]:
        """The prompt's words, or PromptError if it is empty or longer than max_length words."""
        words = self.words(prompt)
        if not words:
            raise PromptError("the prompt is empty: write a few words, e.g. 'a photo of a red truck'")
        if len(words) > self.max_length:
            raise PromptError(f"the prompt has {len(words)} words; this model reads at most "
                              f"{self.max_length} (e.g. 'a photo of a red truck')")
        return words

    def unknown_words(self, prompt) -> list[str]:
        return [w for w in self.words(prompt) if w not in self._ids]

    def encode(self, prompts, check: bool = True) -> np.ndarray:
        """(N, max_length) int32 ids. check=False allows the empty caption (all padding)."""
        rows = np.zeros((len(prompts), self.max_length), np.int32)
        for r, prompt in enumerate(prompts):
            words = self.check(prompt) if check else self.words(prompt)[: self.max_length]
            rows[r, : len(words)] = [self._ids.get(w, UNK) for w in words]
        return rows

    def to_json(self) -> dict:
        return {"type": "word", "max_length": self.max_length, "vocabulary": self.vocabulary}

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def load(cls, path) -> "WordTokenizer":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return cls(data["vocabulary"], data["max_length"])
        except FileNotFoundError:
            raise
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"tokenizer vocabulary {path} is corrupt: {exc}") from exc
