"""A keystroke model: turn an essay into the edits a student makes while typing it.

Inter-key gaps are Gaussian (mean 240 ms, sd 110 ms, floored), with longer
pauses at sentence ends and occasional long "thinking" pauses. Latin text
is typed a key at a time with typos that are backspaced and corrected;
Chinese arrives in IME bursts (a committed word of 1–4 characters is one
edit). Now and then a whole sentence is pasted, or the last sentence is
deleted and typed again, or a word is inserted earlier in the text.

Everything is driven by an injected ``random.Random``: the same seed gives
the same keystrokes. The model only describes edits; sending them is the
caller's business.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Keystroke", "TypingModel", "is_cjk_char"]

SENTENCE_ENDS = set("。！？!?.；;…\n")
LATIN_NEIGHBOURS = "qwertyuiopasdfghjklzxcvbnm"


def is_cjk_char(ch: str) -> bool:
    code = ord(ch)
    return 0x3000 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF


@dataclass(frozen=True, slots=True)
class Keystroke:
    """Wait ``delay_s``, then replace ``text[start:end]`` (code points) by ``insert``."""

    delay_s: float
    start: int
    end: int
    insert: str
    kind: str  # type | ime | backspace | paste | delete_sentence | revise | clear


@dataclass(slots=True)
class TypingModel:
    rng: random.Random
    speed: float = 1.0  # >1 types faster
    mean_ms: float = 240.0
    sd_ms: float = 110.0
    min_ms: float = 30.0
    sentence_pause_ms: tuple[float, float] = (400.0, 2000.0)
    think_prob: float = 0.01  # per keystroke
    think_ms: tuple[float, float] = (3000.0, 8000.0)
    typo_prob: float = 0.03  # per Latin keystroke / per IME commit
    paste_prob: float = 0.02  # per sentence
    delete_sentence_prob: float = 0.02  # per sentence
    revise_prob: float = 0.03  # per sentence: insert a word earlier in the text

    def gap(self) -> float:
        ms = max(self.min_ms, self.rng.gauss(self.mean_ms, self.sd_ms))
        if self.rng.random() < self.think_prob:
            ms += self.rng.uniform(*self.think_ms)
        return ms / 1000.0 / self.speed

    def pause(self) -> float:
        return self.rng.uniform(*self.sentence_pause_ms) / 1000.0 / self.speed

    def keystrokes(self, essay: str, start_text: str = "") -> Iterator[Keystroke]:
        """The edits that turn ``start_text`` into ``start_text + essay`` (plus kept revisions).

        The caller's text must follow the yielded edits exactly; the model
        tracks the length to place later edits.
        """
        length = len(start_text)
        for sentence in _sentences(essay):
            roll = self.rng.random()
            if roll < self.paste_prob:
                yield Keystroke(self.gap() + self.pause(), length, length, sentence, "paste")
                length += len(sentence)
                continue
            begin = length
            for ks in self._type_sentence(sentence, length):
                length += len(ks.insert) - (ks.end - ks.start)
                yield ks
            if self.rng.random() < self.delete_sentence_prob and length > begin:
                # select the sentence just typed, delete it, think, type it again
                yield Keystroke(self.pause(), begin, length, "", "delete_sentence")
                length = begin
                for ks in self._type_sentence(sentence, length):
                    length += len(ks.insert) - (ks.end - ks.start)
                    yield ks
            if self.rng.random() < self.revise_prob and begin > 0:
                word = "其实" if is_cjk_char(sentence[0]) else "really "
                at = self.rng.randrange(0, begin)
                yield Keystroke(self.pause(), at, at, word, "revise")
                length += len(word)
            yield Keystroke(self.pause(), length, length, "", "pause")

    def _type_sentence(self, sentence: str, at: int) -> Iterator[Keystroke]:
        i = 0
        while i < len(sentence):
            ch = sentence[i]
            if is_cjk_char(ch) and not ch.isspace():
                n = 1
                limit = self.rng.choice((1, 2, 2, 2, 3, 4))
                while n < limit and i + n < len(sentence) and is_cjk_char(sentence[i + n]):
                    n += 1
                chunk = sentence[i : i + n]
                if self.rng.random() < self.typo_prob:
                    # a wrong candidate committed, then backspaced away
                    wrong = chr(0x4E00 + self.rng.randrange(0x5000))
                    yield Keystroke(self.gap() * n, at, at, wrong, "ime")
                    yield Keystroke(self.gap(), at, at + 1, "", "backspace")
                yield Keystroke(self.gap() * max(1, n // 2 + 1), at, at, chunk, "ime")
            else:
                n, chunk = 1, ch
                if ch.isalpha() and self.rng.random() < self.typo_prob:
                    yield Keystroke(self.gap(), at, at, self.rng.choice(LATIN_NEIGHBOURS), "type")
                    yield Keystroke(self.gap() * 1.5, at, at + 1, "", "backspace")
                yield Keystroke(self.gap(), at, at, chunk, "type")
            at += n
            i += n


def _sentences(text: str) -> list[str]:
    """Split keeping delimiters, so the pieces concatenate back to ``text``."""
    out: list[str] = []
    current: list[str] = []
    for ch in text:
        current.append(ch)
        if ch in SENTENCE_ENDS:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return out
