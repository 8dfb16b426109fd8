"""Data preparation (CPU): tokenizer, confusion sets, pretokenised training pack.

    python -m engines.prepare --data ../shared/data --pack .pack

Writes into the pack folder everything the GPU training step needs, so that the GPU machine
needs neither the raw data nor jieba / pypinyin:
  tokenizer.model       SentencePiece model (also shipped as engines/zh/tokenizer.model)
  confusion.npy         (V, K) int32 candidate table: row v = [v, similar chars of v...]
  confusion_w.npy       (V, K) float32 P(wrong = slot k | right = v) for synthetic misspellings
  corpus.u16.xz         the pre-training token stream (uint16, lzma): news-capped corpus
  pack.npz              window offsets into that stream, synthetic 病句 pairs (as edits of
                        corpus sentences), token arrays for 病句, spelling and essays
  pack.json             counts, label sets, corpus characters per source
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import importlib.util
import json
import lzma
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engines.corpus import NEWS_SHARE, pretrain_stream, select_documents
from engines.discourse import segment_labels
from engines.essay_features import essay_features, sentence_features
from engines.jsonl import read_jsonl
from engines.synth_faulty import pack_pairs
from engines.synth_spelling import corruption_weights
from engines.text import is_cjk, split_runs
from engines.tokenizer import MASK_PIECE, ZhTokenizer

TYPES = ("IWO", "IWC", "CM", "CR", "SC", "ILL", "AM")
GRADES = ("Bad", "Medium", "Great")  # ordinal 0..2
TRAITS = (
    ("content", "topic"),
    ("structure", "structure"),
    ("logic", "logic"),
    ("language", "language"),
    ("overall", "overall"),
)
MAX_LEN = 128
N_CJK_MAX = 7000
N_OTHER = 3000
N_CAND = 48


def bucket(key: str) -> float:
    return int(hashlib.sha256(f"inkstone-dev|{key}".encode()).hexdigest()[:12], 16) / 16**12


def is_dev(record: dict[str, Any], fraction: float = 0.06) -> bool:
    """Deterministic dev carve-out from train, kept by duplicate cluster (split_group)."""
    return bucket(str(record.get("split_group") or record.get("id"))) < fraction


# ----------------------------------------------------------------------------- text sources
def chinese_train_texts(zh: Path) -> Iterator[tuple[str, str]]:
    """(source, text) for every Chinese training text (train splits only)."""
    for part in sorted((zh / "corpus_modern").glob("part-*.jsonl.gz")):
        for r in read_jsonl(part):
            yield r.get("source", "corpus"), r["text"]
    for r in read_jsonl(zh / "unlabeled_student_essays/train.jsonl.gz"):
        yield "student_essays", r["text"]
    for name in ("sent_fcgec", "sent_nacgec"):
        for r in read_jsonl(zh / name / "train.jsonl"):
            yield name, r["text"]
            for c in r.get("corrections") or []:
                yield name, c
    for name in ("csc_sighan", "csc_lemon_ecspell"):
        for r in read_jsonl(zh / name / "train.jsonl"):
            yield name, r["correct"]


def english_texts(en: Path, max_chars: int = 6_000_000) -> Iterator[str]:
    n = 0
    files = [
        en / "persuade_unlabeled/train.jsonl.gz",
        en / "wi_locness/essays_train.jsonl.gz",
        en / "fce/essays_train.jsonl.gz",
        en / "ellipse/train.jsonl.gz",
        en / "asap_aes/train.jsonl.gz",
    ]
    for f in files:
        if not f.exists():
            continue
        for r in read_jsonl(f):
            t = r.get("text") or ""
            if isinstance(t, str) and t:
                yield t
                n += len(t)
                if n > max_chars:
                    return


# ----------------------------------------------------------------------------- tokenizer
def train_tokenizer(zh: Path, en: Path, out_dir: Path) -> tuple[Path, Counter[str]]:
    import sentencepiece as spm

    char_freq: Counter[str] = Counter()
    other_lines: list[str] = []
    for _, text in chinese_train_texts(zh):
        for line in text.split("\n"):
            for _, _, piece in split_runs(line):
                if is_cjk(piece):
                    char_freq[piece] += 1
                elif piece.strip():
                    other_lines.append(piece.strip())
    random.Random(0).shuffle(other_lines)
    other_lines = other_lines[:1_500_000]
    for text in english_texts(en):
        other_lines.extend(line.strip() for line in text.split("\n") if line.strip())
    chars = [c for c, n in char_freq.most_common(N_CJK_MAX) if n >= 3]
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus_file = out_dir / "sp_other.txt"
    corpus_file.write_text("\n".join(other_lines), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus_file),
        model_prefix=str(out_dir / "tokenizer"),
        model_type="unigram",
        vocab_size=N_OTHER + len(chars) + 256 + 5,
        user_defined_symbols=[MASK_PIECE, *chars],
        byte_fallback=True,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        split_digits=True,
        character_coverage=0.9995,
        hard_vocab_limit=False,
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        num_threads=2,
        max_sentence_length=8192,
        minloglevel=2,
    )
    corpus_file.unlink()
    return out_dir / "tokenizer.model", char_freq


def count_chars(zh: Path) -> Counter[str]:
    freq: Counter[str] = Counter()
    for _, text in chinese_train_texts(zh):
        freq.update(ch for ch in text if is_cjk(ch))
    return freq


# ----------------------------------------------------------------------------- confusion sets
def _pycorrector_data() -> Path | None:
    spec = importlib.util.find_spec("pycorrector")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def mined_pairs(zh: Path) -> Counter[tuple[str, str]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for name in ("csc_sighan", "csc_lemon_ecspell"):
        for r in read_jsonl(zh / name / "train.jsonl"):
            for e in r.get("errors") or []:
                w, c = e.get("wrong", ""), e.get("correct", "")
                if e.get("op") == "replace" and is_cjk(w) and is_cjk(c):
                    pairs[(w, c)] += 1
    return pairs


def build_confusion(tok: ZhTokenizer, char_freq: Counter[str], zh: Path) -> np.ndarray:
    """(V, N_CAND) int32. Slot 0 = the token itself; then candidates by priority:
    confusions mined from the train splits, similar shape (pycorrector same_stroke),
    same pinyin (pycorrector same_pinyin, then pypinyin toneless homophones by frequency).
    Unused slots hold the pad id 0."""
    from pypinyin import Style, lazy_pinyin

    vocab_chars = {
        tok.id_to_piece(i): i for i in range(tok.vocab_size) if is_cjk(tok.id_to_piece(i))
    }
    cands: dict[str, list[str]] = {c: [] for c in vocab_chars}

    def add(a: str, b: str) -> None:
        if a in cands and b in vocab_chars and b != a and b not in cands[a]:
            cands[a].append(b)

    for (w, c), _ in mined_pairs(zh).most_common():
        add(w, c)
    data = _pycorrector_data()
    if data is not None and (data / "same_stroke.txt").exists():
        for line in (data / "same_stroke.txt").read_text(encoding="utf-8").splitlines():
            group = [g for g in line.strip().split() if is_cjk(g)]
            for a in group:
                for b in group:
                    add(a, b)
    if data is not None and (data / "same_pinyin.txt").exists():
        for line in (data / "same_pinyin.txt").read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 2 and is_cjk(cols[0]):
                for col in cols[1:]:
                    for b in col:
                        add(cols[0], b)
    by_pinyin: dict[str, list[str]] = {}
    for c in sorted(vocab_chars, key=lambda ch: -char_freq[ch]):
        by_pinyin.setdefault(lazy_pinyin(c, style=Style.NORMAL)[0], []).append(c)
    for c in vocab_chars:
        for b in by_pinyin.get(lazy_pinyin(c, style=Style.NORMAL)[0], []):
            add(c, b)
    table = np.zeros((tok.vocab_size, N_CAND), dtype=np.int32)
    table[:, 0] = np.arange(tok.vocab_size)
    for c, i in vocab_chars.items():
        row = [vocab_chars[b] for b in cands[c][: N_CAND - 1]]
        table[i, 1 : 1 + len(row)] = row
    return table


# ----------------------------------------------------------------------------- packing
def pad_ids(seqs: list[list[int]], length: int = MAX_LEN) -> np.ndarray:
    out = np.zeros((len(seqs), length), dtype=np.uint16)
    for i, s in enumerate(seqs):
        s = s[:length]
        out[i, : len(s)] = s
    return out


def edit_marks(text: str, correction: str) -> list[int]:
    """Per character of `text`: 1 where the correction replaces/deletes it or inserts next to it."""
    marks = [0] * len(text)
    sm = difflib.SequenceMatcher(None, text, correction, autojunk=False)
    for tag, i1, i2, _, _ in sm.get_opcodes():
        if tag in ("replace", "delete"):
            marks[i1:i2] = [1] * (i2 - i1)
        elif tag == "insert":
            for i in (i1 - 1, i1):
                if 0 <= i < len(text):
                    marks[i] = 1
    return marks


def faulty_split(zh: Path, tok: ZhTokenizer, split: str) -> dict[str, np.ndarray]:
    """病句 records. Train (not dev) also gets each correction as a correct-sentence negative;
    dev keeps the record format of valid, so thresholds tuned there transfer. `ged` holds
    token-level edit marks from the diff to the first correction (-1 = unknown / padding)."""
    texts: list[str] = []
    labels: list[int] = []
    types: list[list[int]] = []
    devs: list[int] = []
    geds: list[list[int]] = []

    def add(text: str, label: int, tys: list[int], dev: int, marks: list[int] | None) -> None:
        enc = tok.encode(text, MAX_LEN)
        texts.append(text)
        labels.append(label)
        types.append(tys)
        devs.append(dev)
        if marks is None:
            geds.append([-1] * len(enc.ids))
        else:
            geds.append([max(marks[s:e]) if e > s else 0 for s, e in enc.spans])

    for name in ("sent_fcgec", "sent_nacgec"):
        for r in read_jsonl(zh / name / f"{split}.jsonl"):
            dev = int(split == "train" and is_dev(r))
            corrections = [c for c in r.get("corrections") or [] if c and c != r["text"]]
            label = int(r["is_error"])
            marks = (
                edit_marks(r["text"], corrections[0])
                if corrections
                else None
                if label
                else [0] * len(r["text"])
            )
            add(
                r["text"],
                label,
                [int(t in (r.get("error_types") or [])) for t in TYPES],
                dev,
                marks,
            )
            if split == "train" and not dev:
                for c in corrections:
                    add(c, 0, [0] * len(TYPES), dev, [0] * len(c))
    ged = np.full((len(geds), MAX_LEN), -1, dtype=np.int8)
    for i, g in enumerate(geds):
        ged[i, : len(g)] = g
    return {
        "ids": pad_ids([tok.encode_ids(t, MAX_LEN) for t in texts]),
        "label": np.array(labels, np.int8),
        "types": np.array(types, np.int8),
        "dev": np.array(devs, np.int8),
        "ged": ged,
    }


def csc_split(zh: Path, tok: ZhTokenizer, split: str) -> dict[str, np.ndarray]:
    """Spelling records (substitution-only): input ids and gold ids per token; for train
    also the correct sentence of every erroneous record as an extra clean example."""
    inputs: list[list[int]] = []
    golds: list[list[int]] = []
    devs: list[int] = []
    for name in ("csc_sighan", "csc_lemon_ecspell"):
        for r in read_jsonl(zh / name / f"{split}.jsonl"):
            if not r.get("substitution_only", True) or len(r["text"]) != len(r["correct"]):
                continue
            ids, gold = csc_token_pair(tok, r["text"], r["correct"])
            dev = int(split == "train" and is_dev(r))
            inputs.append(ids)
            golds.append(gold)
            devs.append(dev)
            if split == "train" and r.get("has_error"):
                cids, cgold = csc_token_pair(tok, r["correct"], r["correct"])
                inputs.append(cids)
                golds.append(cgold)
                devs.append(dev)
    return {"ids": pad_ids(inputs), "gold": pad_ids(golds), "dev": np.array(devs, np.int8)}


def csc_token_pair(tok: ZhTokenizer, text: str, correct: str) -> tuple[list[int], list[int]]:
    """Token ids of `text` and, per token, the gold token id (0 = not a scored character)."""
    enc = tok.encode(text, MAX_LEN)
    gold = []
    for tid, (s, _), is_char in zip(enc.ids, enc.spans, enc.is_char, strict=True):
        g = 0
        if is_char:
            gid = tok.piece_to_id(correct[s])
            g = gid if is_cjk(correct[s]) and gid != tok.unk_id else 0
            if g == 0 and correct[s] == text[s]:
                g = tid
        gold.append(g)
    return enc.ids, gold


def segment_essay(text: str) -> list[tuple[str, int, int, int]]:
    """(text, paragraph, start, end) of each sentence, as the server segments it."""
    from engines.segment import segment

    return [(s.text, s.paragraph, s.start, s.end) for s in segment(text) if s.text.strip()]


def essay_split(
    records: Iterable[dict[str, Any]], tok: ZhTokenizer, kind: str
) -> dict[str, np.ndarray]:
    """Essays flattened: sentence ids + offsets; trait grades (-1 = unlabeled) and coherence."""
    sent_ids: list[list[int]] = []
    sent_feats: list[np.ndarray] = []
    offsets = [0]
    essay_feats: list[np.ndarray] = []
    traits: list[list[int]] = []
    coh_grade: list[int] = []
    coh_score: list[float] = []
    devs: list[int] = []
    disc_sent: list[int] = []
    disc_para: list[int] = []
    for r in records:
        text = r["text"]
        segs = segment_essay(text)
        if not segs:
            continue
        sents = [s[0] for s in segs]
        pars = [s[1] for s in segs]
        ds, dp = segment_labels(r, [(s[2], s[3]) for s in segs])
        disc_sent.extend(ds)
        disc_para.extend(dp)
        sent_ids.extend(tok.encode_ids(s, MAX_LEN) for s in sents)
        sent_feats.append(sentence_features([len(s) for s in sents], pars))
        offsets.append(len(sent_ids))
        essay_feats.append(essay_features(text, sents, pars))
        t = r.get("traits") or {}
        traits.append([GRADES.index(t[src]) if t.get(src) in GRADES else -1 for _, src in TRAITS])
        coh_grade.append(int(r["coherence_grade"]) if kind == "cedcc" else -1)
        coh_score.append(float(r["coherence_score"]) if kind == "cedcc" else -1.0)
        devs.append(int(bucket(str(r.get("id"))) < 0.1))
    return {
        "sent_ids": pad_ids(sent_ids),
        "sent_feats": np.concatenate(sent_feats),
        "offsets": np.array(offsets, np.int64),
        "essay_feats": np.stack(essay_feats),
        "traits": np.array(traits, np.int8),
        "coh_grade": np.array(coh_grade, np.int8),
        "coh_score": np.array(coh_score, np.float32),
        "dev": np.array(devs, np.int8),
        "disc_sent": np.array(disc_sent, np.int8),  # per sentence, engines.discourse labels
        "disc_para": np.array(disc_para, np.int8),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--pack", type=Path, default=Path(".pack"))
    ap.add_argument(
        "--reuse-tokenizer",
        action="store_true",
        help="keep an existing PACK/tokenizer.model (only recount characters)",
    )
    ap.add_argument("--news-share", type=float, default=NEWS_SHARE)
    ap.add_argument("--synth-pairs", type=int, default=600_000)
    args = ap.parse_args(argv)
    zh, en, pack = args.data / "zh", args.data / "en", args.pack
    pack.mkdir(parents=True, exist_ok=True)
    if args.reuse_tokenizer and (pack / "tokenizer.model").exists():
        model_file, char_freq = pack / "tokenizer.model", count_chars(zh)
    else:
        model_file, char_freq = train_tokenizer(zh, en, pack)
    tok = ZhTokenizer(model_file)
    print(f"tokenizer: {tok.vocab_size} pieces")
    table = build_confusion(tok, char_freq, zh)
    np.save(pack / "confusion.npy", table)
    pieces = [tok.id_to_piece(i) for i in range(tok.vocab_size)]
    np.save(pack / "confusion_w.npy", corruption_weights(table, pieces, mined_pairs(zh)))
    docs, corpus_chars = select_documents(zh, news_share=args.news_share)
    flat, offsets, sentences = pretrain_stream(docs, tok)
    (pack / "corpus.u16.xz").write_bytes(lzma.compress(flat.tobytes(), preset=9))
    arrays: dict[str, np.ndarray] = {"pretrain_off": offsets.astype(np.uint32)}
    print(f"pretrain: {len(flat)} tokens, {len(offsets) - 1} windows; {dict(corpus_chars)}")
    pairs = pack_pairs(sentences, flat, tok, random.Random(0), args.synth_pairs)
    arrays.update({f"synfaulty_{k}": v for k, v in pairs.items()})
    print(f"synthetic 病句 pairs: {len(pairs['src'])}")
    for split in ("train", "valid"):
        for key, val in faulty_split(zh, tok, split).items():
            arrays[f"faulty_{split}_{key}"] = val
        for key, val in csc_split(zh, tok, split).items():
            arrays[f"csc_{split}_{key}"] = val
        oe = essay_split(read_jsonl(zh / "essay_oe_traits" / f"{split}.jsonl"), tok, "oe")
        ce = essay_split(read_jsonl(zh / "essay_cedcc_coherence" / f"{split}.jsonl"), tok, "cedcc")
        for key, val in oe.items():
            arrays[f"oe_{split}_{key}"] = val
        for key, val in ce.items():
            arrays[f"cedcc_{split}_{key}"] = val
    np.savez_compressed(pack / "pack.npz", **arrays)
    meta = {
        "vocab_size": tok.vocab_size,
        "max_len": MAX_LEN,
        "types": TYPES,
        "grades": GRADES,
        "traits": TRAITS,
        "n_cand": N_CAND,
        "corpus_tokens": len(flat),
        "corpus_chars": dict(corpus_chars),
        "news_share": args.news_share,
        "shapes": {k: list(v.shape) for k, v in arrays.items()},
    }
    (pack / "pack.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta["shapes"]))


if __name__ == "__main__":
    main()
