"""Bilingual tokenizer: one token per CJK character, SentencePiece for everything else.

The SentencePiece model holds every common CJK character as a user-defined piece, plus
sub-word pieces learned on the non-CJK parts of the corpora (punctuation, digits, Latin
script, the English corpora). Byte fallback is on, so no input is ever unknown: a rare CJK
character becomes its UTF-8 byte pieces (all aligned to that one character).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from engines.text import is_cjk, split_runs

__all__ = ["MASK_PIECE", "Encoding", "ZhTokenizer"]

MASK_PIECE = "<mask>"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Encoding:
    ids: list[int]
    # (start, end) code-point span of the source text that each token covers. A CJK token
    # covers exactly its character; a piece of a non-CJK run covers the whole run.
    spans: list[tuple[int, int]]
    # True where the token is (the first token of) a single CJK character.
    is_char: list[bool]


class ZhTokenizer:
    def __init__(self, model_file: str | Path) -> None:
        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_file))
        self.vocab_size: int = self.sp.get_piece_size()
        self.pad_id, self.unk_id = PAD_ID, UNK_ID
        self.mask_id: int = self.sp.piece_to_id(MASK_PIECE)
        self._char_cache: dict[str, list[int]] = {}

    def _char_ids(self, ch: str) -> list[int]:
        ids = self._char_cache.get(ch)
        if ids is None:
            pid = self.sp.piece_to_id(ch)
            ids = [pid] if pid != self.unk_id else list(self.sp.encode(ch))
            self._char_cache[ch] = ids
        return ids

    def encode(self, text: str, max_tokens: int | None = None) -> Encoding:
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        is_char: list[bool] = []
        for start, end, piece in split_runs(text):
            if is_cjk(piece):
                sub = self._char_ids(piece)
                ids.extend(sub)
                spans.extend([(start, end)] * len(sub))
                is_char.extend([True] + [False] * (len(sub) - 1))
            else:
                sub = list(self.sp.encode(piece))
                ids.extend(sub)
                spans.extend([(start, end)] * len(sub))
                is_char.extend([False] * len(sub))
            if max_tokens is not None and len(ids) >= max_tokens:
                break
        if max_tokens is not None:
            ids, spans, is_char = ids[:max_tokens], spans[:max_tokens], is_char[:max_tokens]
        return Encoding(ids, spans, is_char)

    def encode_ids(self, text: str, max_tokens: int | None = None) -> list[int]:
        return self.encode(text, max_tokens).ids

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.sp.decode([int(i) for i in ids]))

    def id_to_piece(self, i: int) -> str:
        return str(self.sp.id_to_piece(int(i)))

    def piece_to_id(self, piece: str) -> int:
        return int(self.sp.piece_to_id(piece))
